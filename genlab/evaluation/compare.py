"""What the Compare page computes from several runs, without streamlit: which runs can
be compared, reconstructions of the same test images, and the importance-weighted
bound on log p(x) as the number of samples k grows.

Reference for the bound:
> Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
  log p(x) >= L_k = E log (1/k) sum_i p(x, z_i) / q(z_i | x); L_1 is the ELBO,
  L_k <= L_{k+1}, and L_k -> log p(x) as k -> infinity (Theorem 1).
"""
from __future__ import annotations

import io
import math

from typing import Callable

import torch

from ..data import DATASETS, ImageData
from ..models.base import GenerativeModel
from ..runs.status import ACTIVE, Job, RunSummary
from .images import grid_image, model_inputs
from .metrics import log_prob_split

K_CHOICES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Importance-sample counts on the page's log-scale slider."""


def comparable(summaries: list[RunSummary]) -> dict[str, list[RunSummary]]:
    """Runs that have a model and a dataset (broken folders left out), by dataset."""
    out: dict[str, list[RunSummary]] = {}
    for s in summaries:
        if s.model and s.dataset in DATASETS:
            out.setdefault(s.dataset, []).append(s)
    return out


@torch.no_grad()
def reconstruct(model: GenerativeModel, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """decode(encode(x)) of uint8 images (B, C, H, W) -> images in [0, 1], (B, C, H, W):
    the posterior mean's decoding for VAEs, the exact inverse for flows."""
    model.eval()
    inputs = model_inputs(model, x, seed=seed).to(model.device)  # (B, C, H, W)
    return model.decode(model.encode(inputs)).float().cpu().clamp(0, 1)


def image_row_png(images: torch.Tensor, nrow: int | None = None, *, scale: int = 2) -> bytes:
    """Images (B, C, H, W) in [0, 1] (or uint8) as one PNG grid, ``scale`` times larger."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid_image(images, nrow or len(images), scale=scale)).save(buf, format="PNG")
    return buf.getvalue()


def is_exact(model: GenerativeModel) -> bool:
    """Does ``log_prob`` of this model (or model class) give log p(x) exactly (flows),
    so that k changes nothing?"""
    return model.caps.likelihood == "exact"


def bound_at_k(model: GenerativeModel, data: ImageData, k: int, *, seed: int = 0,
               progress: Callable[[int], object] | None = None) -> dict:
    """The k-sample importance-weighted bound L_k on log p(x), averaged over ``data``
    (nats per image): its mean, standard error and the number of images."""
    lp = log_prob_split(model, data, k=k, batch_size=100, seed=seed, progress=progress)  # (N,)
    return {"mean": float(lp.mean()), "sem": float(lp.std() / math.sqrt(len(lp))) if len(lp) > 1
            else 0.0, "n": len(lp), "k": k}


def eval_plan(todo: list[RunSummary], job_of: dict[str, Job | None]) -> dict[str, list]:
    """What the Compare page's eval button can do for runs without eval.json. ``todo``:
    run summaries (name, state, ckpt); ``job_of``: name -> the run's job.json as
    ``status.read_job`` gives it (None for none). Returns names "evaluating", "training"
    (a process is at work: evaluate later), "no_ckpt" (nothing to evaluate), and the
    summaries it "can" evaluate now and those whose eval job to "show"."""
    evaluating = sorted(n for n, j in job_of.items() if j and j.alive and j.kind == "eval")
    training = sorted({n for n, j in job_of.items() if j and j.alive and j.kind != "eval"}
                      | {s.name for s in todo if s.state in ACTIVE})
    busy = set(evaluating) | set(training)
    return {"evaluating": evaluating, "training": training,
            "no_ckpt": [s.name for s in todo if not s.ckpt and s.name not in training],
            "can": [s for s in todo if s.ckpt and s.name not in busy],
            "show": [s for s in todo if (j := job_of.get(s.name)) and j.kind == "eval"]}


def bound_candidates(summaries: list[RunSummary]) -> list[RunSummary]:
    """Runs with a checkpoint whose model class has an importance-weighted bound
    (``caps.likelihood == "importance"``): VAEs and ae-gmm, not GANs or flows."""
    return [s for s in summaries if s.model_class and s.model_class.caps.likelihood == "importance"
            and s.ckpt]


def bound_rows(by_group: dict[str, dict[str, dict[int, float]]], k: int) -> list[dict]:
    """Table rows from {data group: {run: {k: L_k}}}: L_1 (the ELBO), L_k and the gain."""
    return [{"run": name, "data": g, "L_1 = ELBO": pts[1],
             **({f"L_{k}": pts[k], "gain": pts[k] - pts[1]} if k > 1 else {})}
            for g, group in by_group.items() for name, pts in group.items()]
