"""Clusters: a Gaussian mixture over a model's codes, drawn as 2-sigma ellipses (the
autoencoder + GMM's own mixture, or one fitted on the test codes on demand), its weights,
and samples from one component (genlab.evaluation.explore)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from genlab.evaluation import explore
from genlab.figures.latent_figures import mixture_figure, weights_figure
from genlab.models.mixture import Mixture
from genlab.runs import views
from pages import via_router
from pages.ui import explore_ui as ui
from pages.ui.widgets import draw

via_router()

MAX_DIM = 64  # full-covariance mixtures beyond this need far more codes than a test set


def mixture_ui(run: ui.Run, codes: np.ndarray | None, n: int) -> Mixture | None:
    stored = explore.model_mixture(run.model)
    k = st.slider("Components", 1, 50, stored.n_components if stored else 10, key=f"k-{run.key}",
                  help="Moving it refits scikit-learn's GaussianMixture (full covariances).")
    if stored is not None and k == stored.n_components:
        st.caption(f"The run's own mixture: {k} components fitted on the training codes "
                   "at the end of its last epoch.")
        return stored
    if codes is None:
        st.warning("Refitting needs the test codes (see above).", icon=":material/database:")
        return stored
    seed = st.session_state.get(f"refit-{run.key}", 0)
    mix = ui.mixture(run, n, k, seed)
    st.caption(f"A mixture of {k} components fitted on {n} test codes (seed {seed}).")
    if st.button("Refit with another seed", icon=":material/refresh:"):
        st.session_state[f"refit-{run.key}"] = seed + 1
        st.rerun()
    return mix


def view_ui(run: ui.Run, mix: Mixture, codes: np.ndarray | None, labels) -> None:
    d = mix.means.shape[1]
    mean, comps = explore.pca_basis(codes if codes is not None else mix.means)
    flat = mix.project(mean, comps)  # exact 2-D marginals of the components
    by_weight = np.argsort(-mix.weights).tolist()
    left, right = st.columns([3, 2])
    comp = right.selectbox("Component", by_weight, key=f"comp-{run.key}-{mix.n_components}",
                           format_func=lambda c: f"{c} · weight {mix.weights[c]:.3f}")
    xy = None if codes is None else (codes - mean) @ comps.T
    axes = ("z1", "z2") if d <= 2 else ("PCA 1", "PCA 2")
    fig = mixture_figure(flat.means, [explore.ellipse(m, c) for m, c in zip(flat.means, flat.covariances)],
                         xy=xy, labels=labels, class_names=run.classes, highlight=comp, axes=axes)
    draw(fig, key=f"mix-{run.key}", where=left)
    left.caption(f"**{mix.n_components} components**, each drawn as its 2-sigma ellipse"
                 + ("" if d <= 2 else f" (exact PCA projection of the {d}-D Gaussians)") + ".")
    draw(weights_figure(mix.weights, highlight=comp), key=f"weights-{run.key}", where=right)
    with right:
        z = explore.component_latents(mix, comp, 16, seed=comp)
        ui.show(ui.decode_few(run, z), 8,
                f"16 samples from component {comp}: z ~ N(mu, Sigma), x = decode(z)")


st.title("Clusters")
run = ui.pick_run(views.clusters,
                  "a model with an encoder (the autoencoder + GMM, a VAE or a flow)")
d = run.ref.dim if run.ref is not None else 0
if d > MAX_DIM:
    st.info(f"This {run.model_name}'s latent has {d} dimensions: a full-covariance mixture there "
            "needs far more codes than a test set. Pick a run with a small latent (the "
            "autoencoder + GMM or a VAE), or look at its codes in the Latent explorer.",
            icon=":material/info:")
    st.stop()
n = st.select_slider("Test images", ui.TEST_SIZES, value=2000, key=f"n-{run.key}")
data = ui.test_images(run, n, "the codes and refitting the mixture")
codes = ui.codes(run, n) if data is not None else None
mix = mixture_ui(run, codes, n)
if mix is None:
    st.info("No mixture to show: this model carries none, and fitting one needs the test codes.",
            icon=":material/info:")
    st.stop()
view_ui(run, mix, codes, data.y.numpy() if data is not None else None)
