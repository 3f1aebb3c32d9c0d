"""The Latent explorer's sections for flows (not a page itself). A flow's latent has one
dimension per pixel, so one coordinate moves the image by a few grey levels at most: the
sliders and grids here move along the leading principal directions of the test codes
instead, and random draws at a temperature and an interpolation between two encoded
images show what a flow's latent space holds (genlab.evaluation.explore)."""
from __future__ import annotations

import time

import streamlit as st
import torch

from genlab.evaluation import explore
from pages.ui import explore_ui as ui

SLIDERS = 10


def note_ui(run: ui.Run) -> None:
    st.info(f"**This flow's latent has {run.ref.dim} dimensions, one per pixel**, and each one "
            "moves about one pixel of the image by a few grey levels, so a slider per coordinate "
            "would barely change the picture. The sliders and grids below move along the leading "
            "principal directions of the test codes (PC 1 the widest) instead; below them, random "
            "draws at a temperature and an interpolation between two encoded images.",
            icon=":material/lightbulb:")


@st.fragment
def sliders_ui(run: ui.Run, axes: explore.PrincipalAxes, base: torch.Tensor) -> None:
    """Sliders over the first principal directions, in standard deviations of the test
    codes; only this fragment reruns when one moves."""
    t0 = time.perf_counter()
    gen = st.session_state.get(f"gen-{run.key}", 0)
    c0 = axes.coords(base).clamp(-3, 3)
    c = axes.coords(base)
    left, right = st.columns([3, 1])
    cols = left.columns(2)
    for i in range(min(SLIDERS, axes.k)):
        c[i] = cols[i % 2].slider(f"PC {i + 1}", -3.0, 3.0, float(c0[i]), step=0.05, format="%.2f",
                                  key=f"pc-{run.key}-{gen}-{i}",
                                  help=f"standard deviations of the test codes along principal "
                                       f"direction {i + 1} (sd {float(axes.sd[i]):.3g})")
    z = axes.place(base, c)
    right.image(explore.grid_image(ui.decode_few(run, z[None]), 1, scale=6), caption="decode(z)")
    ui.server_time(right, t0)


def grids_ui(run: ui.Run, axes: explore.PrincipalAxes, base: torch.Tensor) -> None:
    st.header("Grids", anchor=False)
    left, right = st.columns(2)
    with left:
        st.subheader("Manifold", anchor=False)
        n = st.slider("Grid size", 5, 15, 9, key=f"grid-{run.key}")
        z = explore.axes_manifold(axes, base, n)
        st.image(ui.decoded_grid(run, z, n, 1),
                 caption="PC 1 left to right, PC 2 bottom to top, through the inverse normal CDF "
                         "in standard deviations of the test codes, around the slider code")
    with right:
        st.subheader("Traversals", anchor=False)
        steps = st.slider("Steps", 5, 15, 9, key=f"steps-{run.key}")
        dims = list(range(min(6, axes.k)))
        z = explore.axes_traversals(axes, base, dims, steps)
        st.image(ui.decoded_grid(run, z, steps, 1),
                 caption=f"row r moves along PC r + 1 (r = 0..{len(dims) - 1}), -2.5 to +2.5 "
                         "standard deviations, around the slider code")


def interpolation_ui(run: ui.Run) -> None:
    st.subheader("Between two encoded test images", anchor=False)
    data = ui.test_images(run, 1000, "the interpolation")
    if data is None:
        return
    c1, c2, _ = st.columns([1, 1, 2])
    a = c1.number_input("First test image", 0, len(data) - 1, 0, key=f"fa-{run.key}")
    b = c2.number_input("Second test image", 0, len(data) - 1, 1, key=f"fb-{run.key}")
    z = ui.encode_few(run, data.x[[a, b]])  # (2, d)
    path = explore.interpolate(z[0], z[1], 10, "linear")
    st.image(ui.decoded_grid(run, path, 10, 2),
             caption="10 frames on the straight line between the two codes: a flow inverts "
                     "exactly, so the ends are the images themselves")
