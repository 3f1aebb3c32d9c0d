"""What the Latent explorer, Clusters and Interpolation pages share (not a page itself):
a run picker that lists only runs whose model can do what the page needs, the run's test
images (or how to get them), its codes, projections and mixtures (cached in pages/ui/cache.py
per run and checkpoint), and image display."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import streamlit as st
import torch

from genlab.data import DATASETS, DatasetError, ImageData, data_root
from genlab.device import one_thread
from genlab.evaluation import explore
from genlab.models import model_entry
from genlab.models.mixture import Mixture
from genlab.runs import store
from genlab.runs.status import checkpoint_damage, checkpoint_stamp, order_key, runs_roots
from pages.ui import cache

TEST_SIZES = (500, 1000, 2000, 5000, 10000)  # 10,000: encoded on the page (the stored projections hold 5,000)
TRAIN_CMD = "python -m genlab train --model vae --latent-dim 2 --dataset mnist --epochs 10"


class Run(NamedTuple):
    path: str
    stamp: int | None  # checkpoint stamp: every cache is keyed on it
    model: torch.nn.Module
    model_name: str
    dataset: str
    ref: explore.LatentRef | None  # None: no prior to scale sliders and grids by
    key: str  # short id of (run, checkpoint) for widget keys

    @property
    def classes(self) -> tuple[str, ...] | None:
        info = DATASETS.get(self.dataset)
        return info.classes if info else None


def _sync_run() -> None:
    st.session_state["run"] = st.session_state["pick_run"]


def _candidates(need: Callable) -> tuple[list[str], dict[str, str], int]:
    """Runs with a readable config whose model class passes ``need``, ordered as
    everywhere (dataset, family, name), with their labels, and how many other runs were
    left out. Runs without a checkpoint, or with a damaged one, come last."""
    roots = st.session_state.get("runs_roots") or runs_roots()
    found, labels, other = [], {}, 0
    for p in store.find_runs(*roots):
        try:
            rc = store.read_config_dict(p)
        except store.RunError:
            other += 1  # Home shows why
            continue
        if not need(model_entry(rc["model"])[0]):
            other += 1
            continue
        ds = rc["train"].get("dataset", "?")
        ready = (p / store.CHECKPOINT).exists()
        damaged = ready and checkpoint_damage(p) is not None
        labels[str(p)] = (f"{p.name} · {rc['model']} · {ds}"
                          f"{' · damaged checkpoint' if damaged else '' if ready else ' · no checkpoint yet'}")
        two_d = rc["model_config"].get("latent_dim") == 2
        found.append(((not ready or damaged, not two_d, *order_key(rc["model"], ds, p.name)), str(p)))
    return [p for _, p in sorted(found)], labels, other


def pick_run(need: Callable, what: str) -> Run:
    """The run picker (shared with the other pages through st.session_state["run"]);
    it opens on a healthy run with a 2-D latent (quick to draw, and the clearest picture)
    unless another page chose one. Stops the page with a message saying what to do when
    there is nothing to show, or the run cannot be loaded."""
    paths, labels, other = _candidates(need)
    if not paths:
        st.info(f"**No run to show here.** This page needs a run of {what}"
                f"{f'; none of the {other} run(s) in the run folders has one' if other else ''}. "
                f"Train one from a terminal:\n\n```\n{TRAIN_CMD}\n```\n\nor change *Run folders* "
                "in the sidebar.", icon=":material/info:")
        st.stop()
    if st.session_state.get("run") in paths:
        st.session_state["pick_run"] = st.session_state["run"]
    path = st.selectbox("Run", paths, key="pick_run", format_func=labels.get, on_change=_sync_run)
    st.session_state["run"] = path
    stamp = checkpoint_stamp(path)
    damage = checkpoint_damage(path)
    got, err = (None, damage) if damage else cache.load(path, stamp)
    if err:
        cache.load_error(Path(path).name, err, damaged=bool(damage))
        st.stop()
    key = hashlib.md5(f"{path}:{stamp}".encode()).hexdigest()[:8]
    return Run(path, stamp, got.model, got.model_name, got.dataset, got.ref, key)


# -- test images, codes, projections ------------------------------------------------------
def test_images(run: Run, n: int, purpose: str) -> ImageData | None:
    """The first n test images of the run's dataset, or None after saying how to get them
    (a button downloads them with torchvision when the machine is online). ``purpose``: what
    needs them, as it reads after "needed for" ("the posterior view")."""
    root = str(data_root())
    try:
        return cache.test_images(run.dataset, n, root)
    except DatasetError as e:
        st.warning(f"**The {run.dataset} test images are not in the data root**; they are needed "
                   f"for {purpose}. {str(e).rstrip('.')}.", icon=":material/database:")
    if st.button(f"Download {run.dataset} with torchvision", icon=":material/download:",
                 key=f"download-{run.dataset}"):
        try:
            with st.spinner(f"Downloading {run.dataset} ..."):
                cache.test_images(run.dataset, n, root, download=True)
            st.rerun()
        except DatasetError as e:
            st.error(str(e), icon=":material/cloud_off:")
    return None


def codes(run: Run, n: int) -> np.ndarray:
    """Codes (n, d) of the first n test images (read-only: shared by every session)."""
    with st.spinner(f"Encoding {n} test images ..."):
        return cache.codes(run.path, run.stamp, run.dataset, str(data_root()), n)


def projection(run: Run, n: int, method: str) -> np.ndarray:
    """2-D points (n, 2) of the codes by ``method`` (cached per run and checkpoint)."""
    with st.spinner(f"Projecting {n} codes with {method.upper()} (once per checkpoint) ..."):
        return cache.projection(run.path, run.stamp, run.dataset, str(data_root()), n, method)


class CodesView(NamedTuple):
    """What the Latent explorer draws of the first n test codes: 2-D points by method
    (n, 2), the codes' variance per dimension (d,) and their principal directions, from
    the checkpoint's stored projections of ``of`` codes when there are some."""
    xy: dict
    variance: np.ndarray
    axes: explore.PrincipalAxes
    of: int
    stored: bool


def codes_view(run: Run, n: int) -> CodesView:
    """The stored projections (projections.npz beside the checkpoint, or computed in the
    background in this server) when they cover n codes: nothing is encoded then. Else the
    codes of n images are encoded and PCA'd here, and the stored ones are computed in the
    background for next time (written beside the checkpoint unless the run is shipped).
    A flow's file written before the principal directions were robust keeps its UMAP, but
    its PCA and directions (the flow's sliders) are computed here from n codes."""
    proj = cache.stored_projections(run.path, run.stamp)
    covers = proj is not None and proj.n >= n
    if covers and (proj.robust or not run.model.caps.bijective):
        return CodesView({m: v[:n] for m, v in proj.xy.items()}, proj.variance, proj.axes, proj.n, True)
    root = str(data_root())
    c = codes(run, n)
    xy = {"pca": projection(run, n, "pca")}
    if covers:
        xy |= {m: v[:n] for m, v in proj.xy.items() if m != "pca"}
    else:
        cache.projection_job(run.path, run.stamp, root, ("pca",))
    return CodesView(xy, c.var(0), cache.axes(run.path, run.stamp, run.dataset, root, n), n, False)


def umap_job(run: Run):
    """The background job computing the checkpoint's PCA and UMAP (started once)."""
    return cache.projection_job(run.path, run.stamp, str(data_root()), ("pca", "umap"))


@st.fragment(run_every=2.0)
def wait_for(job) -> None:
    """Poll a background job every 2 s; rerun the page when it is done."""
    if job.done():
        st.rerun()


def server_time(where, t0: float) -> None:
    ms = 1e3 * (time.perf_counter() - t0)
    st.session_state["latent_decode_ms"] = ms
    where.caption(f"server time {ms:.1f} ms (sliders to image)")


def first_code(run: Run) -> torch.Tensor | None:
    """The code of the first test image (where the sliders start), or None without data."""
    try:
        data = cache.test_images(run.dataset, 1, str(data_root()))
    except DatasetError:
        return None
    with one_thread():
        return explore.encode_images(run.model, data.x)[0]


def encode_few(run: Run, x: torch.Tensor) -> torch.Tensor:
    """Codes (n, d) of a few uint8 images, on one thread."""
    with one_thread():
        return explore.encode_images(run.model, x)


def mixture(run: Run, n: int, k: int, seed: int = 0) -> Mixture:
    """A k-component mixture fitted on the codes of n test images (cached)."""
    with st.spinner(f"Fitting {k} components to {n} codes ..."):
        return cache.mixture(run.path, run.stamp, run.dataset, str(data_root()), n, k, seed)


# -- images ---------------------------------------------------------------------------------
def decode_few(run: Run, z: torch.Tensor) -> torch.Tensor:
    """Images (n, C, H, W) of a few latents z (n, d), decoded on one thread (one_thread)."""
    with one_thread():
        return explore.decode_latents(run.model, z)


def decoded_grid(run: Run, z: torch.Tensor, nrow: int, scale: int = 2) -> np.ndarray:
    """An image grid (H, W, 3) uint8 of the decoded latents z (n, d), cached."""
    return cache.decoded_grid(run.path, run.stamp, z.numpy(), nrow, scale)


def show(images: torch.Tensor, nrow: int, caption: str | None = None, scale: int = 2) -> None:
    """An image grid at its own size in pixels (a long caption would otherwise widen the
    element and stretch the images with it), or the page's width when that is narrower."""
    grid = explore.grid_image(images, nrow, scale=scale)
    st.image(grid, caption=caption, width=int(grid.shape[1]))
