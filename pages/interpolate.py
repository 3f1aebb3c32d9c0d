"""Interpolation: between the codes of two test images (a flow encodes and inverts them
exactly) or two random latents (as in Goodfellow et al. 2014, Fig. 3), linearly, along a great circle
or through the normal CDF; a strip of frames and a GIF (genlab.evaluation.explore)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from genlab.evaluation import explore
from genlab.runs import views
from pages import via_router
from pages.ui import explore_ui as ui

via_router()

IMAGES, RANDOM = "two test images", "two random latents"
PATHS = {"linear": "linear", "spherical": "spherical (slerp)",
         "normal-cdf": "equidistant in the normal CDF (equal steps of probability mass between the two codes)"}
SHORT = {"linear": "linear", "spherical": "spherical", "normal-cdf": "normal-CDF"}
N_CHOICE = 1000  # test images to pick the endpoints from
PER_ROW = 12  # frames a row of the strip


def gif_name(run: ui.Run, method: str, frames: int) -> str:
    """The download's file name: the run's folder name (two runs of one model differ)."""
    return f"{Path(run.path).name}-{method}-{frames}.gif"


def shuffle(key: str, n: int) -> None:
    g = torch.Generator().manual_seed(st.session_state.get(f"{key}-draws", 0))
    st.session_state[f"{key}-draws"] = st.session_state.get(f"{key}-draws", 0) + 1
    a, b = torch.randperm(n, generator=g)[:2].tolist()
    st.session_state[f"{key}-a"], st.session_state[f"{key}-b"] = a, b


def norm_caption(path: torch.Tensor, ends: tuple[torch.Tensor, torch.Tensor], method: str) -> str:
    """|z| along the path shown, and the other paths' lowest |z| between the same two
    latents: N(0, I) puts little mass near the origin, so a path that dips towards it
    passes through latents the prior rarely draws."""
    norms, d = path.norm(dim=1), path.shape[1]
    low = float(norms.min())
    dip = 1 - low / max(float(min(norms[0], norms[-1])), 1e-12)
    shape = (f"this path dips {dip:.0%} below its lower end, towards the origin" if dip > 0.05
             else "this path keeps |z| near its ends")
    others = [f"{float(explore.interpolate(*ends, len(path), m).norm(dim=1).min()):.2f} on the {SHORT[m]} path"
              for m in explore.INTERPOLATIONS if m != method]
    return (f"|z| along the {SHORT[method]} path: {float(norms[0]):.2f} → min {low:.2f} → "
            f"{float(norms[-1]):.2f}; N(0, I) draws in {d} dimensions have |z| ≈ {d ** 0.5:.1f}, "
            f"and {shape}. Between the same two latents the lowest |z| is {' and '.join(others)}.")


def image_ends(run: ui.Run) -> tuple[torch.Tensor, torch.Tensor] | None:
    data = ui.test_images(run, N_CHOICE, "interpolating between test images")
    if data is None:
        return None
    key = f"ends-{run.key}"
    # the inputs and the button in one row of their own (beside the endpoint images,
    # bottom-aligned, they sat under a tall empty gap)
    c1, c2, c3, c4 = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
    a = c1.number_input("First test image", 0, len(data) - 1, 0, key=f"{key}-a")
    b = c2.number_input("Second test image", 0, len(data) - 1, 1, key=f"{key}-b")
    c3.button("Random pair", icon=":material/shuffle:", on_click=shuffle, args=(key, len(data)))
    x = explore.model_inputs(run.model, data.x[[a, b]])  # (2, C, H, W)
    with c4.popover("Endpoints", icon=":material/image:"):
        ui.show(x, 2, "the endpoints as the model sees them", scale=3)
    z = explore.encode_images(run.model, data.x[[a, b]])  # (2, d)
    if run.model.caps.bijective:
        err = (explore.decode_latents(run.model, z) - x).abs().max()
        st.caption(f"A flow encodes exactly: decode(encode(x)) differs from x by at most {err:.1e}.")
    return z[0], z[1]


def random_ends(run: ui.Run) -> tuple[torch.Tensor, torch.Tensor]:
    c1, _ = st.columns([1, 3])
    seed = c1.number_input("Seed of the two latents", 0, 10**6, 0, key=f"seed-{run.key}")
    z = explore.prior_latents(run.model, 2, seed=int(seed))  # (2, d)
    return z[0], z[1]


st.title("Interpolation")
run = ui.pick_run(views.interpolation,
                  "a model that decodes latents (a VAE, the autoencoder + GMM, a flow or a GAN)")
sources = ([IMAGES] if run.model.caps.encode else []) + \
          ([RANDOM] if run.ref is not None else [])
methods = ["linear", "spherical"] + (["normal-cdf"] if run.ref is not None and run.ref.standard else [])
c1, c2, c3 = st.columns([1, 2, 1])
source = c1.radio("Endpoints", sources, key=f"source-{run.key}")
default = "normal-cdf" if source == RANDOM and "normal-cdf" in methods and not run.model.caps.encode \
    else "spherical" if source == RANDOM and run.ref.standard else "linear"
method = c2.radio("Path", methods, index=methods.index(default), format_func=PATHS.get,
                  key=f"path-{run.key}-{source}", horizontal=True)
frames = c3.slider("Frames", 3, 24, 10, key=f"frames-{run.key}")
with ui.one_thread():
    ends = image_ends(run) if source == IMAGES else random_ends(run)
    if ends is None:
        st.stop()
    path = explore.interpolate(*ends, frames, method)  # (frames, d)
    images = explore.decode_latents(run.model, path)  # (frames, C, H, W)
per_row = min(frames, PER_ROW)  # longer strips wrap instead of shrinking each frame
rows = -(-frames // per_row)
st.image(explore.grid_image(images, per_row, scale=3),
         caption=f"{frames} frames, {PATHS[method]} from the first latent to the second"
                 + (f" (in {rows} rows of {per_row}, left to right, top to bottom)" if rows > 1 else ""))
gif = explore.gif_bytes(images, scale=4)
g1, g2 = st.columns([1, 4])
g1.image(gif, caption="the strip as a GIF (back and forth)")
# the bytes handed over on the click (a callable), not stored as a media file on every run,
# whose URL a rerun retires while a busy browser may still be fetching it (a 404 in the console)
g2.download_button("Download the GIF", lambda: gif, file_name=gif_name(run, method, frames),
                   mime="image/gif", icon=":material/download:")
if run.ref is not None and run.ref.standard:
    g2.caption(norm_caption(path, ends, method))
