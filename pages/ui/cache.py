"""Everything the pages cache, in one place (not a page itself): run summaries and Home's
cards, models with their latent scale, test images, codes, projections, mixtures, decoded
grids, grids of samples drawn at a temperature, reconstructions and bound points.

Anything computed from a run's weights is keyed by the run's path and its checkpoint
stamp (checkpoint.pt's modification time in ns, None without one), so a new checkpoint is
a new entry; summaries by the stamp of the small files they read. Models, images and
codes are shared by every session (read-only, ``st.cache_resource``); what is copied out
is ``st.cache_data``. One error rule: a run that cannot be loaded is one line, its reason,
shown by :func:`load_error` and cached like a model (a broken checkpoint is read once)."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import streamlit as st
import torch

from genlab.data import ImageData, load_split
from genlab.device import one_thread
from genlab.errors import first_line
from genlab.evaluation import compare, explore
from genlab.evaluation.images import test_images as load_test_images
from genlab.evaluation.mlp_export import export_decoder
from genlab.models.mixture import fit_mixture
from genlab.runs import store, status
from pages.ui.widgets import Card, read_image, run_card


class Loaded(NamedTuple):
    model: torch.nn.Module
    model_name: str  # the registry name, e.g. "vae"
    dataset: str
    ref: explore.LatentRef | None  # None: no prior to scale sliders and grids by


# -- runs -------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=512)
def _summary(path: str, stamp: tuple) -> status.RunSummary:
    return status.summarize(path)


def summary(path) -> status.RunSummary:
    """A run's summary, cached until one of its files changes, with its state read afresh
    (a training process may have died without touching its files)."""
    return status.refresh(_summary(str(path), status.run_stamp(path)))


def sample_png(path: str, sample) -> tuple[bytes | None, str | None]:
    """A run's latest sample grid as checked PNG bytes (or why not), cached per file."""
    if sample is None:
        return None, None
    try:
        st_ = sample.stat()
    except OSError:
        return None, f"{sample.name}: missing"
    return _sample_png(str(sample), st_.st_mtime_ns, st_.st_size)


@st.cache_data(show_spinner=False, max_entries=512)
def _sample_png(sample: str, mtime: int, size: int) -> tuple[bytes | None, str | None]:
    return read_image(sample)


@st.cache_data(show_spinner=False, max_entries=512)
def _card(path: str, stamp: tuple) -> Card:
    return run_card(path)


def card(path) -> Card:
    """Home's card of a run, cached like :func:`summary`, its state read afresh."""
    c = _card(str(path), status.run_stamp(path))
    return c._replace(summary=status.refresh(c.summary))


@st.cache_resource(show_spinner=False, max_entries=12)
def _load(path: str, stamp: int | None) -> Loaded | str:
    try:
        model, _, rc = store.load_model(path, map_location="cpu")
    except Exception as e:  # a corrupt checkpoint, a config that no longer fits: one line
        return first_line(e)
    ok = explore.has_prior(model) and model.caps.decode
    return Loaded(model, rc.model, rc.train.dataset, explore.latent_reference(model) if ok else None)


def load(path: str, stamp: int | None) -> tuple[Loaded | None, str | None]:
    """(the run's model and what goes with it, None) or (None, why it cannot be loaded)."""
    got = _load(path, stamp)
    return (None, got) if isinstance(got, str) else (got, None)


def load_error(name: str, why: str, *, damaged: bool = False) -> None:
    """A run that cannot be loaded, in one line; a damaged checkpoint cannot be resumed
    either, so only retraining is offered then."""
    what = ("Retrain it (the Train page or `python -m genlab train`): its checkpoint cannot be "
            "read, so it cannot be resumed." if damaged else
            "Retrain it, or resume it from the Train page if it has a checkpoint.")
    st.error(f"**{name} cannot be loaded.** {why.rstrip('.')}. {what}", icon=":material/error:")


# -- test images and what is computed from them -------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=8)
def test_images(dataset: str, n: int, root: str, download: bool = False) -> ImageData:
    """The first n test images (uint8); DatasetError saying what to do when they are missing
    (``download``: let torchvision fetch them)."""
    if download:
        return load_split(dataset, "test", root, download=True, limit=n)
    return load_test_images(dataset, n, root)


def _model(path: str, stamp: int | None) -> torch.nn.Module:
    return _load(path, stamp).model  # callers have loaded it without error first


@st.cache_resource(show_spinner=False, max_entries=16)
def codes(path: str, stamp: int | None, dataset: str, root: str, n: int) -> np.ndarray:
    """Codes (n, d) of the first n test images (read-only: shared by every session)."""
    return explore.encode_images(_model(path, stamp), test_images(dataset, n, root).x).numpy()


@st.cache_resource(show_spinner=False, max_entries=16)
def projection(path: str, stamp: int | None, dataset: str, root: str, n: int, method: str) -> np.ndarray:
    return explore.project(codes(path, stamp, dataset, root, n), method)


@st.cache_resource(show_spinner=False, max_entries=16)
def axes(path: str, stamp: int | None, dataset: str, root: str, n: int) -> explore.PrincipalAxes:
    return explore.principal_axes(codes(path, stamp, dataset, root, n), explore.PROJ_AXES)


@st.cache_resource(show_spinner=False, max_entries=16)
def decoder_json(path: str, stamp: int | None) -> dict | None:
    """The run's MLP decoder as the live decoder component's JSON (None: not an MLP), once
    per checkpoint (read-only: shared by every session)."""
    export = export_decoder(_model(path, stamp))
    return None if export is None else export.to_json()


@st.cache_resource(show_spinner=False, max_entries=64)
def digest(path: str, stamp: int | None) -> str | None:
    """The checkpoint's SHA-1 (what its stored projections belong to), read once."""
    return None if stamp is None else explore.checkpoint_digest(f"{path}/{store.CHECKPOINT}")


@st.cache_resource(show_spinner=False)
def _background() -> tuple[ThreadPoolExecutor, dict]:
    """One worker thread for the projections the pages ask for, and its jobs by key."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="genlab-projections"), {}


def stored_projections(path: str, stamp: int | None) -> explore.Projections | None:
    """The checkpoint's projections: what a background job computed in this server, else
    projections.npz beside the checkpoint when it belongs to this checkpoint, else None."""
    done = [f.result() for (p, s, _), f in _background()[1].items()
            if p == path and s == stamp and f.done() and f.exception() is None]
    if done:
        return max(done, key=lambda pr: len(pr.xy))
    return _stored(path, stamp, digest(path, stamp))


@st.cache_resource(show_spinner=False, max_entries=32)
def _stored(path: str, stamp: int | None, dig: str | None) -> explore.Projections | None:
    return explore.load_projections(path, dig)


def projection_job(path: str, stamp: int | None, root: str, methods: tuple[str, ...]) -> Future:
    """Start (once) the projections of a checkpoint's test codes by ``methods`` in the
    background; written beside the checkpoint unless the run is read-only (shipped)."""
    pool, jobs = _background()
    key = (path, stamp, methods)
    if key not in jobs:
        jobs[key] = pool.submit(explore.run_projections, path, methods, root=root,
                                write=not status.read_only(path))
    return jobs[key]


@st.cache_resource(show_spinner=False, max_entries=32)
def mixture(path: str, stamp: int | None, dataset: str, root: str, n: int, k: int, seed: int):
    return fit_mixture(codes(path, stamp, dataset, root, n), k, seed=seed)


@st.cache_data(show_spinner=False, max_entries=64)
def decoded_grid(path: str, stamp: int | None, z: np.ndarray, nrow: int, scale: int = 2) -> np.ndarray:
    """An image grid (H, W, 3) uint8 of the decoded latents z (n, d)."""
    images = explore.decode_latents(_model(path, stamp), torch.as_tensor(z))
    return explore.grid_image(images, nrow, scale=scale)


@st.cache_data(show_spinner=False, max_entries=64)
def sample_grid(path: str, stamp: int | None, n: int, temperature: float, seed: int, nrow: int,
                scale: int = 2) -> np.ndarray:
    """An image grid (H, W, 3) uint8 of n samples drawn now at ``temperature`` with ``seed``
    (the model's ``seeded_sample``), on one thread like every decode on a page."""
    with one_thread():
        images = _model(path, stamp).seeded_sample(n, temperature, seed=seed)
    return explore.grid_image(images, nrow, scale=scale)  # clamps, on the CPU


@st.cache_data(show_spinner=False, max_entries=64)
def recon_png(path: str, stamp: int | None, dataset: str, n: int, root: str) -> bytes:
    x = test_images(dataset, n, root).x
    return compare.image_row_png(compare.reconstruct(_model(path, stamp), x))


@st.cache_resource(show_spinner=False)
def _bounds() -> dict:
    return {}


def bound(path: str, stamp: int | None, k: int, n: int, dataset: str, root: str, _progress=None) -> dict:
    """L_k over the first n test images, computed once per run, checkpoint, k and n and
    kept for every session; ``_progress(images done)`` is called while it is computed (a
    plain dict, not st.cache_data: that would replay the progress bar's updates)."""
    key = (path, stamp, k, n, dataset, root)
    kept = _bounds()
    if key not in kept:
        kept[key] = compare.bound_at_k(_model(path, stamp), test_images(dataset, n, root), k,
                                       progress=_progress)
    return kept[key]


# -- the true posterior of one test image, likelihoods on two datasets (issue 15) ----------
POSTERIOR_IMAGES = 500  # test images the Posterior page picks from


@st.cache_data(show_spinner=False, max_entries=256)
def posterior(path: str, stamp: int | None, dataset: str, root: str, index: int) -> dict:
    """One test image's true posterior beside q(z|x) on a grid (densities, numpy), the
    quadrature's log p(x), ELBO and KL, and 5 IW draws at each k (genlab.evaluation.posterior)."""
    from genlab.evaluation import posterior as P

    model = _model(path, stamp)
    x = explore.model_inputs(model, test_images(dataset, POSTERIOR_IMAGES, root).x[index:index + 1])
    v = P.posterior_view(model, x.to(model.device), elbo_samples=2000)
    return {"z1": v.z1.numpy(), "z2": v.z2.numpy(), "post": v.log_post.exp().numpy(),
            "q": v.log_q.exp().numpy(), "log_px": v.log_px, "elbo": v.elbo, "kl": v.kl,
            "kl_direct": v.kl_direct, "elbo_mc": v.elbo_mc, "elbo_mc_sem": v.elbo_mc_sem,
            "code": v.code.numpy(), "n": int(v.grid.n[0]), "converged": bool(v.grid.converged[0]),
            "change": float(v.grid.change[0]), "separation": float(v.grid.separation[0]),
            "iw": P.iw_repeats(model, x.to(model.device)), "image": x[0].cpu().numpy()}


@st.cache_data(show_spinner=False, max_entries=64)
def ood(path: str, stamp: int | None, dataset: str, other: str, root: str, n: int, k: int) -> dict:
    """-log p(x) of the first n test images of the run's dataset and of ``other``'s (matched
    to the model's shape), the AUROC and the extremes (genlab.evaluation.ood), as numpy and numbers."""
    from genlab.evaluation import ood as O

    model = _model(path, stamp)
    in_data = load_split(dataset, "test", root, download=False, limit=n)
    out_data, note = O.load_matched(other, model.cfg.image_shape, root, limit=n)
    r = O.ood_compare(model, in_data, out_data, note=note, k=k)
    pick = (lambda data, idx: data.x[idx].numpy())
    return {"summary": r.summary(), "score_in": r.score_in.numpy(), "score_out": r.score_out.numpy(),
            "most_in": pick(in_data, r.most_likely_in), "least_in": pick(in_data, r.least_likely_in),
            "most_out": pick(out_data, r.most_likely_out), "least_out": pick(out_data, r.least_likely_out)}


# -- class-conditional models (issue 28, views) ------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def class_sample_grid(path: str, stamp: int | None, n: int, temperature: float, seed: int,
                      nrow: int, label: int | None, scale: int = 2) -> np.ndarray:
    """Like :func:`sample_grid`, of one class (``label``; None: y ~ p(y))."""
    with one_thread():
        images = _model(path, stamp).seeded_sample(n, temperature, seed=seed, y=label)
    return explore.grid_image(images, nrow, scale=scale)


@st.cache_data(show_spinner=False, max_entries=64)
def class_grid(path: str, stamp: int | None, n_per_class: int, temperature: float, seed: int,
               scale: int = 2) -> np.ndarray:
    """An image grid (H, W, 3) uint8 of explore.class_grid: one row per class."""
    with one_thread():
        images = explore.class_grid(_model(path, stamp), n_per_class, temperature, seed=seed)
    return explore.grid_image(images, n_per_class, scale=scale)


@st.cache_data(show_spinner=False, max_entries=32)
def analogy_grid(path: str, stamp: int | None, dataset: str, root: str, first: int, n: int,
                 scale: int = 2) -> np.ndarray:
    """An image grid (H, W, 3) uint8 of explore.analogy of test images first..first+n-1."""
    model = _model(path, stamp)
    data = test_images(dataset, first + n, root)
    with one_thread():
        images = explore.analogy(model, data.x[first:first + n], data.y[first:first + n])
    return explore.grid_image(images, model.num_classes + 1, scale=scale)
