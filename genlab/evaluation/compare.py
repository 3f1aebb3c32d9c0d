"""What the Compare page computes from several runs, without streamlit: which runs can
be compared, reconstructions of the same test images, the importance-weighted
bound on log p(x) as the number of samples k grows, and a class-conditional run beside the
runs of its unconditional family (:func:`conditional_pairs`, :func:`likelihoods`).

Reference for the bound:
> Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
  log p(x) >= L_k = E log (1/k) sum_i p(x, z_i) / q(z_i | x); L_1 is the ELBO,
  L_k <= L_{k+1}, and L_k -> log p(x) as k -> infinity (Theorem 1).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..data import DATASETS, ImageData
from ..models import unconditional_family
from ..models.base import GenerativeModel
from ..runs.status import ACTIVE, Job, RunSummary
from .images import grid_image, model_inputs
from .metrics import (CLASSIFIER_K, _given_key, class_log_prob_split, classifier_metrics,
                      log_prob_split)
from .ood import in_unit, score_unit

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


# -- a class-conditional run beside its unconditional family (issue 28) -------------------
@dataclass(frozen=True)
class ConditionalPair:
    """A class-conditional run, the family it is the variant of (the registry's
    ``unconditional_family``) and that family's runs on the same dataset."""
    conditional: RunSummary
    family: str
    unconditional: tuple[RunSummary, ...]


def conditional_pairs(summaries: list[RunSummary]) -> list[ConditionalPair]:
    """Each class-conditional run among ``summaries`` (``caps.conditional``), in their order,
    with the runs of its unconditional family among them on its dataset (perhaps none)."""
    pairs = []
    for s in summaries:
        if not (s.model_class and s.model_class.caps.conditional):
            continue
        base = unconditional_family(s.model)
        pairs.append(ConditionalPair(s, base, tuple(
            u for u in summaries if u.model == base and u.dataset == s.dataset)))
    return pairs


@dataclass
class Likelihoods:
    """Per-image log-likelihoods of n images, nats (N,) float64 (:func:`likelihoods`).

    Every model with a likelihood: ``log_px``, log p(x). A class-conditional one also:
    ``log_px_given``, log p(x|y) of each image's own label y; ``log_px_best``,
    max_y log p(x|y); ``log_py``, log p(y) of its label. Its ``log_px`` is then computed
    here, logsumexp_y [log p(x|y) + log p(y)], from the same K likelihoods an image, which
    bounds it: log p(x|y) + log p(y) <= log p(x) <= max_y log p(x|y) (a mixture with
    weights p(y) holds at least each of its weighted parts and at most its largest part);
    :meth:`bounds_hold` checks both (for a latent-variable model each log p(x|y) is a k-sample
    estimate, and so is the logsumexp: the bounds hold for those numbers alike). By Bayes' rule the gap log p(x|y) - log p(x) is
    log p(y|x) - log p(y), so at most -log p(y) (log K for K equal classes) and below 0
    where the model's classifier gives the label less than its prior.

    ``nll`` and ``nll_given`` are -log p(x) and -log p(x|y) in ``unit``, the run's
    (ood.score_unit: nats per image on binarised pixels, bits/dim on 8-bit ones)."""
    unit: str
    k: int | None  # importance samples (a class each, for a conditional model); None: exact
    log_px: torch.Tensor
    nll: torch.Tensor
    log_px_given: torch.Tensor | None = None
    log_px_best: torch.Tensor | None = None
    log_py: torch.Tensor | None = None
    nll_given: torch.Tensor | None = None
    accuracy: float | None = None  # Bayes' rule argmax_y log p(x|y) + log p(y) on these images
    num_classes: int | None = None  # K

    @property
    def conditional(self) -> bool:
        return self.log_px_given is not None

    def gap(self) -> torch.Tensor:
        """log p(x|y) - log p(x) of each image (N,), nats: log p(y|x) - log p(y)."""
        return self.log_px_given - self.log_px

    def bounds_hold(self, tol: float = 1e-9) -> bool:
        """log p(x|y) + log p(y) <= log p(x) <= max_y log p(x|y) for every image (to ``tol``
        nats; True for a model without labels, which has nothing to bound)."""
        if not self.conditional:
            return True
        return bool((self.log_px_given + self.log_py <= self.log_px + tol).all()
                    and (self.log_px <= self.log_px_best + tol).all())

    def summary(self) -> dict:
        """Means over the images in ``unit`` (-log p, lower is more likely): "nll", and for a
        conditional model "nll_given" and "gap" (log p(x|y) - log p(x) in the unit, that is
        nll - nll_given), with "n", "unit", "k" and "accuracy"."""
        out = {"n": len(self.nll), "unit": self.unit, "k": self.k, "nll": float(self.nll.mean())}
        if self.conditional:
            out.update(nll_given=float(self.nll_given.mean()),
                       gap=float((self.nll - self.nll_given).mean()), accuracy=self.accuracy)
        return out


def likelihoods(model: GenerativeModel, data: ImageData, *, k: int = CLASSIFIER_K,
                seed: int = 0) -> Likelihoods:
    """:class:`Likelihoods` of ``data`` under ``model``: exact for flows, from k importance
    samples for latent-variable models (a class-conditional one: k for each class). A
    class-conditional model's come from one pass of log p(x|c) of every class c
    (metrics.class_log_prob_split), its log p(x) the logsumexp over them; another model's
    log p(x) from metrics.log_prob_split. Preprocessing noise is seeded, so two models of
    the same pixels see the same inputs. A model without a likelihood (a GAN) is a
    one-line ValueError."""
    if model.caps.likelihood is None:
        raise ValueError(f"a {model.kind!r} model has no likelihood to compare")
    k_used = None if model.caps.likelihood == "exact" else k
    if not model.caps.conditional:
        lp = log_prob_split(model, data, k=k, seed=seed)  # (N,)
        return Likelihoods(score_unit(model), k_used, lp, in_unit(model, -lp))
    per_class = class_log_prob_split(model, data, k=k, seed=seed)  # (N, K)
    log_prior = model.log_class_prior.detach().double().cpu()
    m = classifier_metrics(per_class, log_prior, data.y)
    given, marginal = m["log_px_given"], m["log_px"]
    return Likelihoods(score_unit(model), k_used, marginal, in_unit(model, -marginal),
                       log_px_given=given, log_px_best=per_class.max(dim=-1).values,
                       log_py=log_prior[data.y.long()], nll_given=in_unit(model, -given),
                       accuracy=m["accuracy"], num_classes=model.num_classes)


GIVEN, MARGINAL, STORED, GAP = ("−log p(x | y)", "−log p(x), computed", "−log p(x), eval.json",
                                "log p(x | y) − log p(x)")
PAIR_FORMATS = {GIVEN: ".3f", MARGINAL: ".3f", STORED: ".3f", GAP: ".3f"}
"""The columns of :func:`pair_row` that hold figures, and how they are shown."""


def eval_nll(ev: dict | None, unit: str, *, given: bool = False) -> float | None:
    """eval.json's -log p(x) (``given``: -log p(x|y)) in ``unit`` ("nats": nll_nats,
    "bits/dim": bpd), None where it has none."""
    key = "bpd" if unit == "bits/dim" else "nll_nats"
    v = (ev or {}).get(_given_key(key) if given else key)
    return v if isinstance(v, (int, float)) else None


def pair_row(s: RunSummary, got: Likelihoods | str) -> dict:
    """One row of the conditional against unconditional table: the run, whether it is
    class-conditional, the means over the images of -log p(x|y) (its own labels) and of
    -log p(x) computed here, -log p(x) from its eval.json (on eval's images), the mean gap
    log p(x|y) - log p(x), their unit, the number of images and how log p(x) was got.
    ``got``: the run's :class:`Likelihoods`, or why it has none ("no likelihood")."""
    conditional = bool(s.model_class and s.model_class.caps.conditional)
    row = {"run": s.name, "model": s.model,
           "labels": "class-conditional" if conditional else "unconditional",
           GIVEN: None, MARGINAL: None, STORED: None, GAP: None, "unit": None, "images": None,
           "log p(x)": got if isinstance(got, str) else None}
    if isinstance(got, str):
        return row
    m = got.summary()
    how = "exact" if got.k is None else f"IW, k = {got.k}" + (" per class" if got.conditional else "")
    row.update({GIVEN: m.get("nll_given"), MARGINAL: m["nll"], STORED: eval_nll(s.eval, got.unit),
                GAP: m.get("gap"), "unit": got.unit, "images": m["n"], "log p(x)": how})
    return row
