"""What does a model think is likely? Per-image likelihoods on its own test set and on
another dataset's, and how well -log p(x) separates them (out-of-distribution detection).

Reference:
> E. Nalisnick, A. Matsukawa, Y. W. Teh, D. Gorur, B. Lakshminarayanan. Do Deep
> Generative Models Know What They Don't Know? ICLR 2019.

Scores are -log p(x) per image: nats for models of binarised pixels, bits/dim for models
of 8-bit (dequantised) pixels (metrics.bits_per_dim), exact for flows and the
importance-weighted estimate at k for latent models. The AUROC treats the other dataset as
the positive class and the score as its detector: 1 means every out-of-distribution image
gets a lower likelihood than every in-distribution one, 0.5 no separation, below 0.5 the
model prefers the other dataset (what Nalisnick et al. found for Fashion-MNIST -> MNIST).
Images of another shape are matched first: RGB to grey (ITU-R 601-2 luma), grey to three
equal channels, then an antialiased bilinear resize; the note says which was done.

A class-conditional model (``caps.conditional``) is also scored by its best class,
-max_y log p(x|y): an image of the other dataset need not look like any one class even
where the mixture over classes gives it a high log p(x). Both scores come from the same K
per-class likelihoods of each image (metrics.class_log_prob_split), the marginal as
log p(x) = logsumexp_y [log p(x|y) + log p(y)], computed, as the model's log_prob does.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

from ..data import ImageData, dataset_present, load_split
from ..models.base import GenerativeModel
from .metrics import bits_per_dim, class_log_prob_split, data_kind, log_prob_split

# the other datasets each one is compared with, in the order a page offers them
OOD_PARTNERS: dict[str, tuple[str, ...]] = {
    "mnist": ("fashion-mnist", "svhn"),
    "fashion-mnist": ("mnist", "svhn"),
    "svhn": ("mnist", "fashion-mnist"),
}


def score_unit(model: GenerativeModel) -> str:
    """"bits/dim" for models of 8-bit (dequantised) pixels, "nats" for binarised ones."""
    return "bits/dim" if data_kind(model.preprocess) == "8-bit" else "nats"


def _check_scorable(model: GenerativeModel, data: ImageData) -> None:
    """One-line ValueErrors: a model without a likelihood, or images of another shape."""
    if model.caps.likelihood is None:
        raise ValueError(f"a {model.kind!r} model has no likelihood; out-of-distribution scores "
                         "need a flow or a latent-variable model with log_prob")
    if tuple(data.x.shape[1:]) != tuple(model.cfg.image_shape):
        raise ValueError(f"images of shape {tuple(data.x.shape[1:])} for a model of "
                         f"{tuple(model.cfg.image_shape)}; match them first (match_images)")


def per_image_scores(model: GenerativeModel, data: ImageData, *, k: int = 100, seed: int = 0) -> torch.Tensor:
    """-log p(x) of each image (N,) float64, in :func:`score_unit` (see the module docstring),
    on the images eval scores (metrics.log_prob_split, seeded)."""
    _check_scorable(model, data)
    return in_unit(model, -log_prob_split(model, data, k=k, seed=seed))


def in_unit(model: GenerativeModel, nll: torch.Tensor) -> torch.Tensor:
    """-log p in nats per image (N,) -> :func:`score_unit`'s."""
    if score_unit(model) == "bits/dim":
        return bits_per_dim(nll, math.prod(model.cfg.image_shape))
    return nll


@dataclass
class ClassScores:
    """A class-conditional model's scores of each image (N,), in :func:`score_unit`:
    ``marginal`` -log p(x), ``best`` -max_y log p(x|y), and ``best_class`` that argmax y."""
    marginal: torch.Tensor
    best: torch.Tensor
    best_class: torch.Tensor


def class_scores(model: GenerativeModel, data: ImageData, *, k: int = 100, seed: int = 0) -> ClassScores:
    """Both scores of a class-conditional model from one pass of K likelihoods an image
    (log p(x|y) (N, K), exact for flows, k importance samples each for the CVAE; images and
    noise as :func:`per_image_scores`'): the marginal logsumexp_y [log p(x|y) + log p(y)]
    (what ``log_prob(x)`` returns, so :func:`per_image_scores`' figure) and the best class's."""
    if not model.caps.conditional:
        raise ValueError(f"a {model.kind!r} model is not class-conditional: it has no "
                         "log p(x|y) to take the best class of")
    _check_scorable(model, data)
    per_class = class_log_prob_split(model, data, k=k, seed=seed)  # (N, K) float64
    log_py = model.log_class_prior.detach().double().cpu()
    marginal = torch.logsumexp(per_class + log_py, dim=-1)
    best, best_class = per_class.max(dim=-1)
    return ClassScores(in_unit(model, -marginal), in_unit(model, -best), best_class)


def match_images(data: ImageData, shape: tuple[int, int, int]) -> tuple[ImageData, str]:
    """Another dataset's uint8 images brought to ``shape`` (C, H, W), and a note of what was
    done ("" when nothing was)."""
    c, h, w = shape
    x, notes = data.x, []
    c0, h0, w0 = x.shape[1:]
    if c0 != c:
        if (c0, c) == (3, 1):
            x = TF.rgb_to_grayscale(x)
            notes.append("greyscaled")
        elif (c0, c) == (1, 3):
            x = x.expand(-1, 3, -1, -1)
            notes.append("grey copied to 3 channels")
        else:
            raise ValueError(f"cannot match {c0}-channel images to {c} channels; "
                             "only RGB <-> grey is supported")
    if (h0, w0) != (h, w):
        x = TF.resize(x, [h, w], antialias=True)
        notes.append(f"resized from {h0}x{w0} to {h}x{w}")
    return ImageData(x.contiguous(), data.y, data.dataset, data.split), ", ".join(notes)


def ood_partners(dataset: str, root: str | os.PathLike | None = None) -> list[tuple[str, bool]]:
    """The datasets ``dataset`` is compared with and whether each is present under root."""
    if dataset not in OOD_PARTNERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(OOD_PARTNERS)}")
    return [(name, dataset_present(name, root)) for name in OOD_PARTNERS[dataset]]


def load_matched(name: str, shape: tuple[int, int, int], root: str | os.PathLike | None = None, *, split: str = "test",
                 limit: int | None = None) -> tuple[ImageData, str]:
    """A dataset's split (no download) matched to ``shape``, and the note of what was done."""
    return match_images(load_split(name, split, root, download=False, limit=limit), shape)


def auroc(score_in: torch.Tensor, score_out: torch.Tensor) -> float:
    """Area under the ROC curve of ``score`` detecting the out-of-distribution images:
    P(score_out > score_in) + P(tie) / 2 (the Mann-Whitney statistic), by scikit-learn."""
    from sklearn.metrics import roc_auc_score

    if not len(score_in) or not len(score_out):
        raise ValueError("the AUROC needs at least one image of each set")
    s_in = torch.as_tensor(score_in, dtype=torch.float64).cpu()
    s_out = torch.as_tensor(score_out, dtype=torch.float64).cpu()
    labels = torch.cat([torch.zeros(len(s_in)), torch.ones(len(s_out))]).numpy()
    return float(roc_auc_score(labels, torch.cat([s_in, s_out]).numpy()))


def extremes(scores: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the n most likely images (lowest -log p(x) first) and the n least likely
    (highest first); ties keep the split's order."""
    order = torch.argsort(scores, stable=True)
    n = min(n, len(scores))
    return order[:n], order.flip(0)[:n]


@dataclass
class OODResult:
    """One model on its own test set (in) and another dataset's (out)."""
    in_dataset: str
    out_dataset: str
    unit: str  # "nats" or "bits/dim"
    note: str  # what was done to the out images to match the model ("" if nothing)
    k: int  # importance samples (ignored by flows)
    score_in: torch.Tensor  # (N_in,) -log p(x)
    score_out: torch.Tensor  # (N_out,)
    auroc: float
    most_likely_in: torch.Tensor  # indices into the in set, most likely first
    least_likely_in: torch.Tensor  # least likely first
    most_likely_out: torch.Tensor
    least_likely_out: torch.Tensor
    # a class-conditional model: -max_y log p(x|y) of each image and its AUROC (else None)
    best_in: torch.Tensor | None = None
    best_out: torch.Tensor | None = None
    best_auroc: float | None = None

    def summary(self) -> dict:
        med_in, med_out = float(self.score_in.median()), float(self.score_out.median())
        prefers = self.out_dataset if med_out < med_in else self.in_dataset
        best = {} if self.best_in is None else {
            "auroc_best": self.best_auroc, "median_best_in": float(self.best_in.median()),
            "median_best_out": float(self.best_out.median())}
        return {**best, "in": self.in_dataset, "out": self.out_dataset, "unit": self.unit, "note": self.note,
                "k": self.k, "n_in": len(self.score_in), "n_out": len(self.score_out),
                "mean_in": float(self.score_in.mean()), "mean_out": float(self.score_out.mean()),
                "median_in": med_in, "median_out": med_out, "auroc": self.auroc,
                "prefers": prefers,
                "share_out_more_likely_than_median_in": float((self.score_out < med_in).double().mean())}


def ood_compare(model: GenerativeModel, in_data: ImageData, out_data: ImageData, *, note: str = "", k: int = 100,
                seed: int = 0, n_extremes: int = 8) -> OODResult:
    """Scores of both sets (same seed), the AUROC of -log p(x) for the out set, and the most
    and least likely images of each; for a class-conditional model also the best class's
    score, -max_y log p(x|y), and its AUROC (:func:`class_scores`: one pass gives both).
    ``out_data`` must already match the model's shape (:func:`match_images`; pass its note on)."""
    best = {}
    if model.caps.conditional:
        c_in = class_scores(model, in_data, k=k, seed=seed)
        c_out = class_scores(model, out_data, k=k, seed=seed)
        s_in, s_out = c_in.marginal, c_out.marginal
        best = {"best_in": c_in.best, "best_out": c_out.best,
                "best_auroc": auroc(c_in.best, c_out.best)}
    else:
        s_in = per_image_scores(model, in_data, k=k, seed=seed)
        s_out = per_image_scores(model, out_data, k=k, seed=seed)
    ml_in, ll_in = extremes(s_in, n_extremes)
    ml_out, ll_out = extremes(s_out, n_extremes)
    return OODResult(in_data.dataset, out_data.dataset, score_unit(model), note, k, s_in, s_out,
                     auroc(s_in, s_out), ml_in, ll_in, ml_out, ll_out, **best)


def ood_for_model(model: GenerativeModel, dataset: str, root: str | os.PathLike | None = None, *, k: int = 100,
                  limit: int | None = None, seed: int = 0, n_extremes: int = 8) -> dict[str, OODResult]:
    """A model trained on ``dataset``: its test split against each partner present under
    root (absent ones are left out; :func:`ood_partners` says which), keyed by partner."""
    in_data = load_split(dataset, "test", root, download=False, limit=limit)
    out = {}
    for name, present in ood_partners(dataset, root):
        if present:
            other, note = load_matched(name, model.cfg.image_shape, root, limit=limit)
            out[name] = ood_compare(model, in_data, other, note=note, k=k, seed=seed,
                                    n_extremes=n_extremes)
    return out


BEST_AUROC = "AUROC, best class"  # a class-conditional model's column (table_row)
TABLE_FORMATS = {"AUROC": ".3f", "median -log p(x), own test set": ".2f",
                 "median -log p(x), other set": ".2f", "other set more likely than own median": "{:.0%}"}


def table_row(run: str, model_name: str, s: dict, *, exact: bool) -> dict:
    """One row of the table across runs (format it with TABLE_FORMATS) from an
    :meth:`OODResult.summary`: the run, the sets, the AUROC (a class-conditional model's
    also by the best class, -max_y log p(x|y), as BEST_AUROC), the median scores and their
    unit (a column of its own: nats and bits/dim runs share the table), the share of the
    other set more likely than the own median, and how log p(x) was got."""
    return {"run": run, "model": model_name, "trained on": s["in"], "other set": s["out"],
            "AUROC": s["auroc"],
            **({BEST_AUROC: s["auroc_best"]} if "auroc_best" in s else {}),
            "median -log p(x), own test set": s["median_in"],
            "median -log p(x), other set": s["median_out"], "unit": s["unit"],
            "other set more likely than own median": s["share_out_more_likely_than_median_in"],
            "images per set": s["n_in"], "log p(x)": "exact" if exact else f"IWAE, k = {s['k']}"}


def table_rows(rows: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """Rows of :func:`table_row` for one table, and their formats: when a class-conditional
    model's row is among them, every row gets its BEST_AUROC column beside AUROC (None,
    shown empty, for the others)."""
    if not any(BEST_AUROC in r for r in rows):
        return rows, TABLE_FORMATS
    out = []
    for r in rows:
        row = {}
        for key, v in r.items():
            if key != BEST_AUROC:
                row[key] = v
            if key == "AUROC":
                row[BEST_AUROC] = r.get(BEST_AUROC)
        out.append(row)
    return out, {**TABLE_FORMATS, BEST_AUROC: ".3f"}


# the direction Nalisnick et al. reported: trained on the first, the second got higher likelihood
NALISNICK_PAIRS = {("fashion-mnist", "mnist")}


def verdict(model_name: str, s: dict) -> str:
    """One sentence on what ``model_name`` does with another dataset, from an
    :meth:`OODResult.summary`, set against Nalisnick et al. where they tested that pair."""
    a, share = s["auroc"], s["share_out_more_likely_than_median_in"]
    if a < 0.5:
        what = (f"gives {s['out']} *higher* likelihood than its own {s['in']} test images "
                f"(AUROC {a:.3f}; {share:.0%} of the {s['out']} images are more likely than the "
                f"median {s['in']} image)")
    else:
        what = (f"gives {s['out']} lower likelihood than its own {s['in']} test images "
                f"(AUROC {a:.3f}; {share:.0%} of the {s['out']} images are more likely than the "
                f"median {s['in']} image)")
    if (s["in"], s["out"]) in NALISNICK_PAIRS:
        agree = "as" if a < 0.5 else "unlike what"
        what += f", {agree} Nalisnick et al. (ICLR 2019) found for models trained on {s['in']}"
    return f"{model_name} {what}."
