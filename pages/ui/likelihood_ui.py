"""What the Posterior and Out-of-distribution pages share (not a page itself): run lists
filtered on a run's model class and its config (a 2-D latent, a likelihood), opening a
run as explore_ui.Run, and rows of images."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st
import torch

from genlab.evaluation import explore
from genlab.models import model_entry
from genlab.runs import store
from genlab.runs.status import checkpoint_damage, checkpoint_stamp, order_key, runs_roots
from pages.ui import cache
from pages.ui.explore_ui import Run


def candidates(need: Callable[[type, dict], bool]) -> tuple[list[str], dict[str, str]]:
    """Runs with a checkpoint whose (model class, model_config) pass ``need``, their labels,
    in the order every page lists runs (dataset, family, name: status.order_key), damaged
    checkpoints last."""
    roots = st.session_state.get("runs_roots") or runs_roots()
    found, labels = [], {}
    for p in store.find_runs(*roots):
        try:
            rc = store.read_config_dict(p)
            cls = model_entry(rc["model"])[0]
        except (store.RunError, KeyError, ValueError):
            continue  # Home says why
        if (p / store.CHECKPOINT).exists() and need(cls, rc.get("model_config", {})):
            ds = rc["train"].get("dataset", "?")
            found.append(((checkpoint_damage(p) is not None, *order_key(rc["model"], ds, p.name)), str(p)))
            labels[str(p)] = f"{p.name} · {rc['model']} · {ds}"
    return [p for _, p in sorted(found)], labels


def no_runs(what: str, train_cmd: str) -> None:
    st.info(f"**No run to show here.** This page needs a run of {what}. Train one from a "
            f"terminal:\n\n```\n{train_cmd}\n```\n\nor change *Run folders* in the sidebar.",
            icon=":material/info:")
    st.stop()


def open_run(path: str) -> Run | None:
    """The run as explore_ui.Run, or None after a one-line error."""
    stamp = checkpoint_stamp(path)
    got, err = cache.load(path, stamp)
    if err:
        cache.load_error(Path(path).name, err)
        return None
    key = hashlib.md5(f"{path}:{stamp}".encode()).hexdigest()[:8]
    return Run(path, stamp, got.model, got.model_name, got.dataset, got.ref, key)


def image_row(images: np.ndarray, caption: str, scale: int = 2) -> None:
    """uint8 (n, C, H, W) or [0, 1] float images in one row."""
    x = torch.as_tensor(np.asarray(images))
    st.image(explore.grid_image(x, len(x), scale=scale), caption=caption)
