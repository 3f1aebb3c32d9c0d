"""Latent explorer: test-set codes (PCA at once, UMAP on request, both stored beside the
checkpoint) with click and box selection, live sliders over the latent, the 2-D manifold
and traversals (genlab.evaluation.explore), and random draws at a temperature. Flows get their own
sliders and grids (flow_ui.py); class-conditional models a class for the draws, a grid of
one row per class and, for the CVAE, the analogies (conditional_ui.py)."""
from __future__ import annotations

import time

import streamlit as st
import torch

from genlab.evaluation import explore
from genlab.figures.latent_figures import (FENCE, latent_scatter_figure, outside_codes,
                                           selected_codes)
from genlab.runs import views
from pages import via_router
from pages.ui import cache, conditional_ui, explore_ui as ui, flow_ui, live_decoder
from pages.ui.widgets import TEMPERATURE_HELP, draw

via_router()

MAX_SLIDERS = 16
SHOWN = 16  # selected images shown
SELECTION_PX = 960  # the row of selected images at most this wide: one image 168 px (x6), 16 at x2
NAMES = {"umap": "UMAP", "pca": "PCA"}
N_DRAWS = 32


def codes_ui(run: ui.Run) -> ui.CodesView | None:
    st.header("Codes of test images", anchor=False)
    if not run.model.caps.encode:
        st.info(f"A {run.model_name} has no encoder, so there are no codes of test images; the "
                "sliders and grids below decode latents from its prior.", icon=":material/info:")
        return None
    c1, c2 = st.columns(2)
    n = c1.select_slider("Test images", ui.TEST_SIZES, value=2000, key=f"n-{run.key}")
    data = ui.test_images(run, n, "the codes and reconstructions")
    if data is None:
        return None
    view = ui.codes_view(run, n)
    d = len(view.variance)
    method = "pca"
    if d > 2:
        method = c2.radio("Projection", ("pca", "umap"), horizontal=True, key=f"proj-{run.key}",
                          format_func=lambda m: {"pca": "PCA", "umap": "UMAP (on request)"}[m],
                          help="PCA is instant; UMAP is computed once per checkpoint in the "
                               "background and stored beside it (the shipped runs carry theirs).")
        if method == "umap" and "umap" not in view.xy:
            umap_wait_ui(run)
            method = "pca"
    axes = ("z1", "z2") if d <= 2 else (f"{NAMES[method]} 1", f"{NAMES[method]} 2")
    fig = latent_scatter_figure(view.xy[method], data.y.numpy(), run.classes, axes=axes,
                                equal=d <= 2 or method == "pca")
    event = draw(fig, key=f"scatter-{run.key}-{n}-{method}", on_select="rerun",
                 selection_mode=("points", "box", "lasso"))
    outside = outside_codes(fig)
    if outside:
        st.caption(f"▲ {len(outside):,} of {n:,} codes lie outside the view, so far out (beyond "
                   f"{FENCE:g} IQR from the quartiles) that they would more than double its width "
                   "and squeeze the others into a dot; they are drawn at its edge as triangles "
                   "(hover one for its coordinates).")
    picked = selected_codes(fig, event.selection)
    where = f" ({NAMES[method]} of the first {view.of:,} test codes)" if d > 2 else ""
    if not picked:
        st.caption(f"{n:,} codes of {d} dimensions{where}. Click points to see their images and "
                   "reconstructions (a second click lets one go); for a box or a lasso, pick its "
                   "tool in the chart's toolbar (top right) and drag. Double-click clears the selection.")
        return view
    idx = explore.spread_sample(picked, data.y.numpy(), SHOWN)
    z = ui.encode_few(run, data.x[idx])
    rec = ui.decode_few(run, z)
    x = explore.model_inputs(run.model, data.x[idx])
    shown = f"; {len(idx)} shown, spread over their classes" if len(picked) > len(idx) else ""
    ui.show(torch.cat([x, rec]), len(idx), f"{len(picked)} of {n:,} codes selected{shown}: the "
            "inputs as the model sees them (top) and decode(encode(x)) (bottom)",
            scale=max(2, min(6, SELECTION_PX // (len(idx) * x.shape[-1]))))
    st.button("Put the first code shown in the sliders", icon=":material/tune:",
              on_click=set_base, args=(run, z[0]))
    return view


def umap_wait_ui(run: ui.Run) -> None:
    job = ui.umap_job(run)
    if job.done() and job.exception() is not None:
        st.error(f"UMAP failed: {str(job.exception()).splitlines()[0]}", icon=":material/error:")
        return
    st.info(f"UMAP of the first {explore.PROJ_N:,} test codes is being computed in the background, "
            "once for this checkpoint (about a minute on two busy cores); PCA is shown meanwhile, "
            "and the chart switches when UMAP is ready.", icon=":material/hourglass_top:")
    ui.wait_for(job)


def base_code(run: ui.Run, start: torch.Tensor | None) -> torch.Tensor:
    """The code the sliders start from: the first test image's, else the prior centre."""
    if f"base-{run.key}" not in st.session_state:
        set_base(run, start if start is not None else run.ref.center)
    return st.session_state[f"base-{run.key}"]


def set_base(run: ui.Run, z: torch.Tensor) -> None:
    """Centre the sliders (and the grids) on z, clamped into the coordinate sliders' range
    (a flow's sliders are along principal directions: z is kept whole)."""
    z = torch.as_tensor(z).float()
    if not run.model.caps.bijective:
        z = torch.maximum(torch.minimum(z, run.ref.hi), run.ref.lo)
    st.session_state[f"base-{run.key}"] = z
    st.session_state[f"gen-{run.key}"] = st.session_state.get(f"gen-{run.key}", 0) + 1


@st.fragment
def sliders_ui(run: ui.Run, dims: list[int]) -> None:
    """Only this fragment reruns when a slider moves: the sliders and one decode of one z
    (kept small: every element in it goes to the browser again on each move)."""
    t0 = time.perf_counter()
    ref, base = run.ref, st.session_state[f"base-{run.key}"]
    gen = st.session_state.get(f"gen-{run.key}", 0)
    z = base.clone()
    left, right = st.columns([3, 1])
    cols = left.columns(2)
    for i, j in enumerate(dims):
        lo, hi = float(ref.lo[j]), float(ref.hi[j])
        z[j] = cols[i % 2].slider(f"z{j + 1}", lo, hi, float(base[j]), step=(hi - lo) / 200,
                                  key=f"z-{run.key}-{gen}-{j}", format="%.2f")
    image = explore.grid_image(ui.decode_few(run, z[None]), 1, scale=6)  # one z
    right.image(image, caption="decode(z)")
    ui.server_time(right, t0)


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


def grids_ui(run: ui.Run, order: list[int], base: torch.Tensor) -> None:
    ref, d = run.ref, run.ref.dim
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


def draws_ui(run: ui.Run) -> None:
    """Samples drawn now at the temperature of a slider whose range the model's caps set
    (flows default to 0.7, the GAN stops at 1), with a button for new draws; a
    class-conditional model's of the class picked, then a grid of one row per class."""
    st.subheader("Random draws at a temperature", anchor=False)
    rng = run.model.temperature_range()
    conditional = run.model.caps.conditional
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    if rng is None:
        t = 1.0
        c1.caption(f"{run.model_name} samples at T = 1 only: its {run.model.caps.prior} prior has "
                   "no scale to temper.")
    else:
        lo, hi, default = rng
        t = c1.slider("Temperature T", lo, hi, default, step=0.05, key=f"temp-{run.key}",
                      help=TEMPERATURE_HELP)
    if c2.button("New draws", icon=":material/casino:", key=f"redraw-{run.key}"):
        st.session_state[f"draws-{run.key}"] = st.session_state.get(f"draws-{run.key}", 0) + 1
    label = conditional_ui.class_picker(run, c3) if conditional else None
    seed = st.session_state.get(f"draws-{run.key}", 0)
    own = run.model.caps.temperature  # the family's grid temperature beside T = 1 (flows: 0.7)
    stored = f" and {own:g}" if own not in (None, 1.0) else ""
    if conditional:
        grid = cache.class_sample_grid(run.path, run.stamp, N_DRAWS, t, seed, 8, label)
        which = f", {conditional_ui.draws_caption(run, label)}"
    else:
        grid, which = cache.sample_grid(run.path, run.stamp, N_DRAWS, t, seed, 8), ""
    st.image(grid, caption=f"{N_DRAWS} samples drawn now at T = {t:.2f} (seed {seed}){which}; the "
                           f"grids written during training are at T = 1{stored}")
    if conditional:
        conditional_ui.class_grid_ui(run, t, seed)
        if explore.can_analogise(run.model):
            conditional_ui.analogy_ui(run)


st.title("Latent explorer")
run = ui.pick_run(views.latent_explorer,
                  "a model with a latent space (a VAE, the autoencoder + GMM, a flow or a GAN)")
flow = run.model.caps.bijective
if flow:
    flow_ui.note_ui(run)
view = codes_ui(run)
base = base_code(run, ui.first_code(run) if view is not None else None)
st.header("Sliders", anchor=False)
if flow and view is not None:
    flow_ui.sliders_ui(run, view.axes, base)
    st.button("Back to the first test image", icon=":material/restart_alt:", on_click=set_base,
              args=(run, ui.first_code(run)))
    flow_ui.grids_ui(run, view.axes, base)
    draws_ui(run)
    flow_ui.interpolation_ui(run)
else:
    spread = torch.as_tensor(view.variance) if view is not None else run.ref.scale
    order = torch.argsort(spread, descending=True, stable=True).tolist()  # highest variance first
    dims = base_ui(run, order)  # an MLP decoder decodes in the browser as its sliders move
    if not live_decoder.live_sliders(run, dims, st.session_state[f"base-{run.key}"],
                                     st.session_state.get(f"gen-{run.key}", 0)):
        sliders_ui(run, dims)
    st.header("Grids", anchor=False)
    grids_ui(run, order, base)
    draws_ui(run)
