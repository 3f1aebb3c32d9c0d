"""Latent explorer: test-set codes (UMAP / PCA for d > 2) with click and box selection,
live sliders over the latent, the 2-D manifold and traversals (genlab.explore)."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st
import torch

from genlab import explore
from genlab.figures import latent_scatter_figure
from pages import explore_ui as ui, via_router

via_router()

MAX_SLIDERS = 16


def base_code(run: ui.Run, codes: np.ndarray | None = None) -> torch.Tensor:
    """The code the sliders start from: the first test image's, else the prior centre."""
    if f"base-{run.key}" not in st.session_state:
        set_base(run, torch.as_tensor(codes[0]) if codes is not None else run.ref.center)
    return st.session_state[f"base-{run.key}"]


def set_base(run: ui.Run, z: torch.Tensor) -> None:
    """Centre the sliders (and the grids) on z, clamped into the sliders' range."""
    z = torch.maximum(torch.minimum(torch.as_tensor(z).float(), run.ref.hi), run.ref.lo)
    st.session_state[f"base-{run.key}"] = z
    for j, v in enumerate(z.tolist()):
        st.session_state[f"z-{run.key}-{j}"] = float(v)


def codes_ui(run: ui.Run) -> np.ndarray | None:
    st.header("Codes of test images", anchor=False)
    if not explore.can_encode(run.model):
        st.info(f"A {run.model_name} has no encoder, so there are no codes of test images; the "
                "sliders and grids below decode latents from its prior.", icon=":material/info:")
        return None
    c1, c2 = st.columns(2)
    n = c1.select_slider("Test images", ui.TEST_SIZES, value=2000, key=f"n-{run.key}")
    data = ui.test_images(run, n, "The codes and reconstructions")
    if data is None:
        return None
    codes = ui.codes(run, n)
    d = codes.shape[1]
    method = c2.radio("Projection", explore.PROJECTIONS, horizontal=True, key=f"proj-{run.key}",
                      format_func=lambda m: {"umap": "UMAP", "pca": "PCA (fast)"}[m],
                      disabled=d <= 2, help="Only for latents of more than 2 dimensions.")
    xy = ui.projection(run, n, method if d > 2 else "pca")
    axes = ("z1", "z2") if d <= 2 else (f"{method.upper()} 1", f"{method.upper()} 2")
    event = st.plotly_chart(latent_scatter_figure(xy, data.y.numpy(), run.classes, axes=axes,
                                                  equal=d <= 2 or method == "pca"),
                            on_select="rerun", selection_mode=("points", "box", "lasso"),
                            key=f"scatter-{run.key}-{n}-{method}")
    idx = explore.selection_indices(event.selection.points)[:16]
    if not idx:
        st.caption(f"{n} codes of {d} dimensions. Click a point or drag a box or lasso to see "
                   "those images and their reconstructions.")
        return codes
    x = explore.model_inputs(run.model, data.x[idx])
    rec = ui.decode_few(run, torch.as_tensor(codes[idx]))
    ui.show(torch.cat([x, rec]), len(idx), f"{len(idx)} selected: the inputs as the model sees "
            "them (top) and decode(encode(x)) (bottom)", scale=3)
    st.button("Put the first selected code in the sliders", icon=":material/tune:",
              on_click=set_base, args=(run, torch.as_tensor(codes[idx[0]])))
    return codes


@st.fragment
def sliders_ui(run: ui.Run, dims: list[int]) -> None:
    """Only this fragment reruns when a slider moves: the sliders and one decode of one z
    (kept small: every element in it goes to the browser again on each move)."""
    t0 = time.perf_counter()
    ref = run.ref
    base = base_code(run)
    z = base.clone()
    left, right = st.columns([3, 1])
    cols = left.columns(2)
    for i, j in enumerate(dims):
        key = f"z-{run.key}-{j}"
        st.session_state.setdefault(key, float(base[j]))
        lo, hi = float(ref.lo[j]), float(ref.hi[j])
        z[j] = cols[i % 2].slider(f"z{j + 1}", lo, hi, step=(hi - lo) / 200, key=key, format="%.2f")
    image = explore.grid_image(ui.decode_few(run, z[None]), 1, scale=6)  # one z
    right.image(image, caption="decode(z)")
    ms = 1e3 * (time.perf_counter() - t0)
    st.session_state["latent_decode_ms"] = ms
    right.caption(f"server time {ms:.1f} ms (sliders to image)")


def base_ui(run: ui.Run, order: list[int]) -> list[int]:
    """Where the sliders start, and which dimensions get one."""
    d = run.ref.dim
    dims = st.multiselect("Dimensions with a slider (highest variance first)", order,
                          default=order[:min(10, d)], max_selections=MAX_SLIDERS,
                          format_func=lambda j: f"z{j + 1}", key=f"dims-{run.key}")
    b1, b2, _ = st.columns([1, 1, 2])
    b1.button("Prior centre", icon=":material/center_focus_strong:", on_click=set_base,
              args=(run, run.ref.center))
    b2.button("Random prior draw", icon=":material/casino:", on_click=random_base, args=(run,))
    return dims


def random_base(run: ui.Run) -> None:
    seed = st.session_state[f"seed-{run.key}"] = st.session_state.get(f"seed-{run.key}", 0) + 1
    set_base(run, explore.prior_latents(run.model, 1, seed=seed)[0])


def grids_ui(run: ui.Run, order: list[int]) -> None:
    ref, d, base = run.ref, run.ref.dim, base_code(run)
    left, right = st.columns(2)
    with left:
        st.subheader("Manifold", anchor=False)
        n = st.slider("Grid size", 5, 25, 15, key=f"grid-{run.key}")
        if d >= 2:
            c1, c2 = st.columns(2)
            i = c1.selectbox("x", range(d), index=order[0], format_func=lambda j: f"z{j + 1}", key=f"mx-{run.key}")
            j = c2.selectbox("y", range(d), index=order[1], format_func=lambda j: f"z{j + 1}", key=f"my-{run.key}")
            if i != j:
                z = explore.manifold_latents(ref, (i, j), n, base if d > 2 else None)
                how = "uniform on [0, 1]" if ref.bounded else "through the inverse normal CDF"
                where = "" if d == 2 else ", the other dimensions at the slider code"
                st.image(ui.decoded_grid(run, z, n, 1),
                         caption=f"z{i + 1} left to right, z{j + 1} bottom to top: a uniform grid "
                                 f"on the unit square {how}{where}")
            else:
                st.caption("Pick two different dimensions.")
    with right:
        st.subheader("Traversals", anchor=False)
        steps = st.slider("Steps", 5, 15, 9, key=f"steps-{run.key}")
        dims = st.session_state.get(f"dims-{run.key}") or order[:10]
        z = explore.traversal_latents(ref, base, dims, steps)
        span = "0 to 1" if ref.bounded else "-2.5 to +2.5 prior standard deviations"
        st.image(ui.decoded_grid(run, z, steps, 1),
                 caption=f"row r varies {', '.join(f'z{j + 1}' for j in dims[:6])}"
                         f"{' ...' if len(dims) > 6 else ''} in turn ({span}) around the slider code")


st.title("Latent explorer")
run = ui.pick_run(lambda c: explore.can_decode(c) and explore.has_prior(c),
                  "a model with a latent space (a VAE, the autoencoder + GMM, a flow or a GAN)")
codes = codes_ui(run)
order = explore.variance_order(codes) if codes is not None else \
    torch.argsort(run.ref.scale, descending=True, stable=True).tolist()
st.header("Sliders", anchor=False)
base_code(run, codes)
sliders_ui(run, base_ui(run, order))
st.header("Grids", anchor=False)
grids_ui(run, order)
