"""True posterior: for a test image and a VAE with a 2-D latent, p(z|x) on a grid
(normalised by quadrature) with q(z|x)'s contours over it, and the numbers that tie them:
log p(x) by quadrature, the ELBO, KL(q || p(z|x)) and the importance-weighted estimate as k
grows (genlab.evaluation.posterior)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from genlab.data import data_root
from genlab.figures.latent_figures import latent_scatter_figure, selected_codes
from genlab.figures.likelihood_figures import iw_figure, posterior_figure
from genlab.models import MODELS
from genlab.runs import views
from pages import via_router
from pages.ui import cache, explore_ui as ui, likelihood_ui as lui
from pages.ui.widgets import draw

via_router()

TRAIN_CMD = "python -m genlab train --model vae --latent-dim 2 --hidden 256,256 --dataset mnist --epochs 10"


def _plain_vae(path: str) -> bool:
    s = cache.summary(path)  # a Gaussian q(z|x), an N(0, I) prior, trained on the ELBO
    caps = s.model_class.caps if s.model_class else None
    return bool(caps and caps.q_density == "gaussian" and caps.prior == "normal"
                and s.config.get("iwae_k", 1) == 1)


def pick_run() -> ui.Run:
    paths, labels = lui.candidates(views.posterior)
    if not paths:
        fams = ", ".join(n for n, (cls, _) in MODELS.items() if views.posterior(cls, {"latent_dim": 2}))
        lui.no_runs(f"a VAE with a 2-D latent ({fams}; --latent-dim 2)", TRAIN_CMD)
    if st.session_state.get("run") in paths:
        st.session_state["posterior_run"] = st.session_state["run"]
    elif st.session_state.get("posterior_run") not in paths:  # first visit: the plain VAE's
        # grid is the cheapest (a Gaussian q, a compact posterior), so the page opens fast
        st.session_state["posterior_run"] = next((p for p in paths if _plain_vae(p)), paths[0])
    path = st.selectbox("Run (VAEs with a 2-D latent)", paths, key="posterior_run", format_func=labels.get,
                        on_change=lambda: st.session_state.update(run=st.session_state["posterior_run"]))
    st.session_state["run"] = path
    run = lui.open_run(path)
    if run is None:
        st.stop()
    return run


def set_index(key: str, codes_key: str, fig) -> None:
    picked = selected_codes(fig, st.session_state[codes_key].selection)
    if picked:
        st.session_state[key] = picked[0]


def pick_image(run: ui.Run, data) -> int:
    key = f"post-index-{run.key}"
    n = len(data)
    left, right = st.columns([1, 2])
    index = left.number_input(f"Test image (0-{n - 1})", 0, n - 1, key=key, step=1)
    codes_key = f"post-codes-{run.key}-{index}"  # a new chart per image: one point selected at a time
    with right:
        codes = ui.codes(run, n)
        fig = latent_scatter_figure(codes, data.y.numpy(), run.classes, height=300, mark=int(index))
        draw(fig, key=codes_key, on_select=lambda: set_index(key, codes_key, fig), selection_mode="points")
        st.caption("Codes (q's means) of the first 500 test images: click one to look at its posterior.")
    lui.image_row(data.x[index:index + 1].numpy(), f"test image {index} (class {int(data.y[index])})", 4)
    return int(index)


def numbers(v: dict) -> None:
    c = st.columns(4)
    c[0].metric("log p(x), quadrature", f"{v['log_px']:.2f} nats")
    c[1].metric("ELBO (quadrature over q)", f"{v['elbo']:.2f} nats")
    c[2].metric("KL(q ‖ p(z|x)) = log p(x) − ELBO", f"{v['kl']:.3f} nats")
    c[3].metric("IW, k = 5000 (mean of 5 draws)", f"{np.mean(v['iw'][5000]):.2f} nats")
    st.caption(
        f"Grid {v['n']}×{v['n']} ({'converged' if v['converged'] else 'NOT converged'}: halving the "
        f"step moved log p(x) by {v['change']:.1e} nats). The KL integrated directly on the grid, "
        f"E_q[log q − log p(z|x)], is {v['kl_direct']:.3f}; the model's Monte Carlo ELBO "
        f"{v['elbo_mc']:.2f} ± {v['elbo_mc_sem']:.2f} (2000 draws). The mean of p(z|x) lies "
        f"{v['separation']:.1f} of q's standard deviations from q's mean.")


def eval_note(run: ui.Run) -> None:
    """What eval.json says of the whole split: the IW estimate and, beside it, the quadrature."""
    ev = cache.summary(run.path).eval or {}
    if "nll_exact_nats" not in ev:
        st.caption("eval.json has no log p(x) by quadrature yet: `python -m genlab eval RUN --k 1000` "
                   "adds it for a 2-D latent.")
        return
    tenth = (f"; {ev['nll_nats_k_tenth']:.2f} at k={ev['k_tenth']}" if "k_tenth" in ev else "")
    st.caption(f"eval.json ({ev['split']} split): −log p(x) {ev['nll_nats']:.2f} ± {ev['nll_sem']:.2f} "
               f"nats by IW at k={ev['k']} over {ev['n_images']} images (± = standard error over the "
               f"images){tenth}. By quadrature on the first {ev['nll_exact_n_images']}: "
               f"**{ev['nll_exact_nats']:.2f}** nats against {ev['nll_nats_same_images']:.2f} by IW "
               f"on the same images; mean KL(q ‖ p(z|x)) {ev['kl_q_posterior']:.2f} nats.")
    if ev.get("nll_warning"):
        st.warning(ev["nll_warning"], icon=":material/warning:")


st.title("True posterior")
st.caption("With a 2-D latent, p(x) = ∫ p(x|z) p(z) dz is an integral over the plane: the grid "
           "computes it, and with it the true posterior p(z|x) that q(z|x) approximates.")
run = pick_run()
eval_note(run)
data = ui.test_images(run, cache.POSTERIOR_IMAGES, "the posterior view")
if data is None:
    st.stop()
index = pick_image(run, data)
with st.spinner("Integrating over z (once per run and image) ..."):
    view = cache.posterior(run.path, run.stamp, run.dataset, str(data_root()), index)
st.session_state["posterior_view"] = {k: view[k] for k in ("log_px", "elbo", "kl", "kl_direct")}
numbers(view)
left, right = st.columns(2)
with left:
    st.subheader("p(z|x) and q(z|x)", anchor=False)
    post = posterior_figure(view["z1"], view["z2"], view["post"], view["q"], code=view["code"])
    draw(post, key=f"post-fig-{run.key}")
    st.caption("Heatmap: the true posterior p(z|x) = p(x|z) p(z) / p(x). White lines: q(z|x)'s "
               "density at the levels of 1, 2 and 3 standard deviations of a Gaussian; the cross: the "
               "encoder's mean, encode(x).")
with right:
    st.subheader("The importance-weighted estimate as k grows", anchor=False)
    draw(iw_figure(view["iw"], view["log_px"], view["elbo"]), key=f"iw-fig-{run.key}")
    st.caption("log p(x) ≥ E[IW(k)] ≥ ELBO: each dot one seeded estimate from k samples of q. "
               "Where q misses part of p(z|x), the climb is slow and a single estimate can land "
               "on either side of the exact value.")
