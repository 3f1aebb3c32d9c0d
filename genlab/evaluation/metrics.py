"""Evaluation: ELBO parts, importance-weighted log p(x), bits/dim.

Units: log-likelihoods are nats per image. Models of binarised pixels give nats on
binarised data; models of dequantised pixels give densities on [0, 1]-scaled pixels,
which :func:`bits_per_dim` turns into bits/dim on the 8-bit data. What is computed for
a model follows its declared ``caps`` (see :class:`genlab.models.base.Capabilities`).
"""
from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

from .. import distributed
from ..data import ImageData, batches, load_split, prepare, preprocess
from ..device import pick_device
from ..nn import bits_per_dim  # noqa: F401  (the one formula; evaluation's import point)
from ..models.base import GenerativeModel
from ..runs import store
from .fid import (INCEPTION_NOTE, FeatureNetError, check_features, features_id, fid_model,
                  is_inception)
from .posterior import can_integrate, exact_eval_entries, exact_log_px, iw_convergence


CLASSIFIER_K = 20
"""Importance samples per class in the generative classifier's pass of a latent-variable
model (K x CLASSIFIER_K decoder rows an image; exact flows need none): see
:func:`evaluate_run` for what it costs."""
ECE_BINS = 15  # equal-width bins of the expected calibration error (Guo et al. 2017)


def data_kind(preprocess_how: str) -> str:
    """What the model's numbers are measured on."""
    return "8-bit" if preprocess_how == "dequantize" else "binarised"


DEQUANTIZATION_BOUNDS = {
    "uniform": "log p(x + u) at the data pipeline's u ~ U[0, 1)^D (pixels (x + u)/256): its "
               "mean over u is a lower bound on log P(x) of the 8-bit data (Theis et al. 2016)",
    "variational": "log p(x + u) - log q(u|x) at u ~ q(u|x), the model's learned dequantiser: "
                   "its mean is a lower bound on log P(x) of the 8-bit data, tight where "
                   "q(u|x) = p(u|x) (Ho et al. 2019)",
}
"""What the log p(x) of a model of 8-bit data bounds, by how it fills each pixel's bin
(eval.json's ``dequantization`` and ``dequantization_bound``)."""


def dequantization_entries(model: GenerativeModel) -> dict:
    """eval.json's statement of the bound a model of 8-bit data reports, from its declared
    ``dequantization`` (GenerativeModel: the data pipeline's uniform noise; the flows say
    which of theirs, genlab.models.flow.FlowModel)."""
    kind = model.dequantization
    return {"dequantization": kind, "dequantization_bound": DEQUANTIZATION_BOUNDS[kind]}


@torch.inference_mode()
def log_prob_split(model: GenerativeModel, data: ImageData, *, k: int, batch_size: int = 100,
                   seed: int = 0, progress: Callable[[int], object] | None = None,
                   given: bool = False) -> torch.Tensor:
    """log p(x) per image over a split (nats): exact for flows, IWAE(k) for latent models;
    ``given``: log p(x|y) with the split's own labels y (a class-conditional model; the
    others ignore labels, so it is their log p(x)).

    Images go at most ``batch_size`` at a time; for an importance-sampled model, few
    enough that the batch's k samples fill about one of its passes (SAMPLES_PER_PASS
    decoder rows: one image a batch at k=1000), so each image is encoded once and memory
    stays bounded for k up to 5000. The results go into one preallocated tensor: a
    list of thousands of small tensors kept between the passes' large temporaries
    fragments the C heap, and memory grew by gigabytes over the test split. The
    preprocessing noise is seeded."""
    def one(x: torch.Tensor, y: torch.Tensor, _) -> torch.Tensor:
        return model.log_prob(x, k=k, **(model.label_kwargs(y) if given else {}))
    return _per_image(model, data, one, (), k=k, batch_size=batch_size, seed=seed,
                      progress=progress)


@torch.inference_mode()
def class_log_prob_split(model: GenerativeModel, data: ImageData, *, k: int,
                         batch_size: int = 100, seed: int = 0,
                         progress: Callable[[int], object] | None = None) -> torch.Tensor:
    """log p(x|y) of every class y for each image of a split (N, K) in nats, for a
    class-conditional model (``caps.conditional``): K likelihoods an image, each exact (flows)
    or from k importance samples; images and noise as :func:`log_prob_split`'s."""
    return _per_image(model, data, lambda x, y, idx: model.class_log_probs(x, k),
                      (model.num_classes,), k=k, batch_size=batch_size, seed=seed,
                      progress=progress)


def _per_image(model: GenerativeModel, data: ImageData, fn, width: tuple[int, ...], *, k: int,
               batch_size: int, seed: int, progress) -> torch.Tensor:
    """fn(x, y, idx) of every batch of a split (its images preprocessed with seeded noise, its
    labels, its indices in the split) into one preallocated (N, *width) float64 tensor (see
    :func:`log_prob_split`)."""
    model.eval()
    if model.caps.likelihood == "importance":
        batch_size = max(1, min(batch_size, model.SAMPLES_PER_PASS // k))
    data = prepare(data, model.preprocess)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    out, i = torch.empty((len(data), *width), dtype=torch.float64), 0
    for idx in batches(len(data), batch_size, shuffle=False):
        x = preprocess(data.x[idx], model.preprocess, generator=g).to(model.device)
        out[i:i + len(idx)] = fn(x, data.y[idx].to(model.device), idx)
        i += len(idx)
        if progress:
            progress(len(idx))
    return out


def classifier_metrics(log_px_y: torch.Tensor, log_prior: torch.Tensor, y: torch.Tensor, *,
                       bins: int = ECE_BINS) -> dict:
    """The generative classifier of a class-conditional model, from log p(x|c) of every class
    (N, K), log p(y) (K,) and the true labels y (N,): Bayes' rule p(c|x) = softmax_c
    [log p(x|c) + log p(c)], its prediction argmax_c. ``accuracy``; ``ece``, the expected
    calibration error over ``bins`` equal-width bins of the top probability (Guo et al.
    2017: sum over bins of |accuracy - mean confidence| weighted by the bin's share of the
    images; bins (lo, hi], the first [0, 1/bins]); ``nll``, the mean -log p(y|x) of the true
    labels (nats); and per image: log p(x) = logsumexp_c [log p(x|c) + log p(c)] and
    log p(x|y) of the true class."""
    joint = log_px_y.double() + log_prior.double().to(log_px_y.device)  # (N, K)
    log_px = torch.logsumexp(joint, dim=-1)  # (N,)
    log_post = joint - log_px[:, None]
    y = y.to(log_px_y.device).long()
    conf, pred = log_post.max(dim=-1)
    conf = conf.exp()
    right = (pred == y).double()
    which = (torch.ceil(conf * bins).long() - 1).clamp(0, bins - 1)  # (N,) bin of each image
    n_b = torch.bincount(which, minlength=bins).double()
    gap = (torch.bincount(which, right, minlength=bins)
           - torch.bincount(which, conf, minlength=bins)).abs()  # |sum right - sum conf| a bin
    return {"accuracy": float(right.mean()), "ece": float(gap.sum() / len(y)),
            "nll": float(-log_post.gather(1, y[:, None]).mean()), "bins": bins,
            "bin_counts": [int(c) for c in n_b], "log_px": log_px,
            "log_px_given": log_px_y.double().gather(1, y[:, None])[:, 0]}


@torch.no_grad()
def latent_stats(model: GenerativeModel, data: ImageData, *, batch_size: int = 500, seed: int = 0,
                 threshold: float = 0.01) -> dict:
    """Active units (Burda et al. 2016: Cov_x(E_q[z]) > 0.01) and, for models that declare
    ``caps.kl_per_dim``, the KL of each latent unit averaged over the split (one value per
    unit; they sum to the split's mean "kl")."""
    model.eval()
    data = prepare(data, model.preprocess)
    g = torch.Generator().manual_seed(seed)
    codes, kls = [], []
    for idx in batches(len(data), batch_size, shuffle=False):
        x = preprocess(data.x[idx], model.preprocess, generator=g).to(model.device)
        given = model.label_kwargs(data.y[idx].to(model.device))  # q(z|x, y): its own label
        codes.append(model.encode(x, **given).double().cpu())  # (B, d)
        if model.caps.kl_per_dim:
            kls.append(model.kl_per_dim(x, **given).double().cpu())  # (B, d)
    var = torch.cat(codes).var(0)  # Cov_x(E_q[z]) diagonal
    out = {"active_units": int((var > threshold).sum()), "latent_dim": int(var.numel()),
           "code_variance": [round(float(v), 5) for v in var]}
    if kls:
        out["kl_per_dim"] = [round(float(v), 5) for v in torch.cat(kls).mean(0)]
    return out


def evaluate_run(run_dir: str | Path, *, k: int = 1, split: str = "test",
                 data_root: str | os.PathLike | None = None,
                 device: str = "auto", limit: int | None = None, progress: bool = False,
                 fid_n: int = 10000, exact_n: int | None = None, command: str | None = None,
                 fid_features: str = "genlab", classifier_k: int = CLASSIFIER_K) -> dict:
    """Evaluate a run on a split and write eval.json (atomically); returns its contents.

    eval.json: split, n_images, epoch, data ("binarised" or "8-bit"), k, the loss parts
    (``elbo`` etc.), ``nll_nats`` (exact for flows, IWAE(k) for latent models) with the
    ``proposal`` of its importance sampling ("exact (change of variables)" for flows), ``bpd``
    for models of 8-bit data, latent statistics (latent-variable models only), ``fid`` of ``fid_n`` samples against the
    split (0 skips it) in ``fid_features``' space (genlab.evaluation.fid: "genlab", the shipped feature
    nets, or "inception", Inception-v3 from torch's hub cache, whose missing weights are an
    InceptionWeightsMissing before anything runs), named by ``fid_features`` in eval.json,
    and the seconds it took.
    ``nll_sem`` is the standard error of ``nll_nats`` over the images (their spread / sqrt N),
    not an error of the estimator. An importance-weighted estimate at k >= 10 also records
    the estimate at k/10 and a warning when the two still differ by more than 0.2 nats
    (posterior.iw_convergence). A VAE with a 2-D latent also gets log p(x) by quadrature
    (posterior.exact_eval_entries) on the first ``exact_n`` images (None: all, 0: skip),
    with the importance-weighted figure on the same images beside it.

    A class-conditional model (``caps.conditional``) with a likelihood
    (:func:`_conditional_nll`): first one pass computes log p(x|c) of every class c for each
    image, exact for flows, from ``classifier_k`` importance samples each for a
    latent-variable model (K x classifier_k decoder rows an image), which gives the
    generative classifier (Bayes' rule, argmax_c log p(x|c) + log p(c), p(c) the training
    labels' frequencies): ``classifier_accuracy``, ``classifier_ece`` (expected calibration
    error over ``classifier_ece_bins`` = 15 equal-width bins of the top probability),
    ``classifier_nll`` (mean -log p(y|x) of the true labels), ``classifier_k`` (None when
    exact) and ``classifier_seconds``, and beside them ``fid_net_accuracy``, the test accuracy
    of the dataset's FID feature network (a discriminative classifier) where genlab ships
    one. ``nll_given_nats`` (``nll_given_sem``, ``bpd_given``) is -log p(x|y) with the test
    labels; ``nll_nats`` (``nll_sem``, ``bpd``) the marginal -log p(x) = -log sum_c p(x|c)
    p(c), as for any model. Flows: both exact, from that pass. A latent-variable model: both
    at k, log p(x|y) with q(z|x, y) as proposal (and the k/10 check, in nll_given_... keys),
    log p(x) from k draws of (c, z) with c from the classifier's p(c|x) mixed with 5 % of p(c)
    (``log_prob_marginal``).

    Under torchrun (``torchrun --nproc-per-node N -m genlab eval RUN``) the log p(x) passes
    are sharded: each process takes a contiguous share of the images (its own seeded
    noise), the per-image values are gathered in order and ``images_per_s`` is summed over
    the processes; rank 0 does the rest and writes eval.json, the others return {}.

    Provenance: ``genlab_commit`` (the git commit of the code that evaluated, "+dirty" when
    genlab/ had uncommitted changes; None outside a git checkout) and ``command`` (the
    command line, when the caller gives it)."""
    if exact_n is not None and exact_n < 0:
        raise ValueError(f"exact_n must be >= 0 (0 skips the quadrature; got {exact_n})")
    if fid_n:  # missing Inception weights: said now, not after the log p(x) passes
        check_features(fid_features)
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    dist = distributed.setup(pick_device(device))  # one process, or this one's torchrun place
    dev = dist.device
    progress = progress and dist.is_main
    model, ckpt, rc = store.load_model(run_dir, map_location=dev)
    data = load_split(rc.train.dataset, split, data_root or rc.train.data_root or None,
                      limit=limit)
    torch.manual_seed(0)
    result = {"model": rc.model, "dataset": rc.train.dataset, "split": split,
              "n_images": len(data), "epoch": ckpt.get("epoch"),
              "data": data_kind(model.preprocess), "k": k, "device": str(dev),
              "processes": dist.world}
    result.update(evaluate(model, data))  # loss parts: loss, elbo, recon, kl, bpd, ...
    if model.caps.likelihood and model.caps.conditional:  # log p(x|y), log p(x), the classifier
        res, lp = _conditional_nll(model, data, k=k, classifier_k=classifier_k,
                                   progress=progress, dist=dist)
        result.update(res)
    elif model.caps.likelihood:
        nll, lp = _nll_per_image(model, data, k=k, progress=progress, dist=dist)
        result.update(nll)
        if model.caps.likelihood == "importance" and k >= 10:
            result.update(_iw_tenth(model, data, lp, k, dist))
    distributed.teardown(dist)  # the other processes are done: rank 0 goes on alone
    if not dist.is_main:
        return {}
    if model.caps.likelihood:
        if can_integrate(model) and exact_n != 0:
            result.update(_exact(model, data, lp, exact_n, progress=progress))
    if model.caps.latent_stats:  # not flows: their "code" is x transformed, every unit active
        result.update(latent_stats(model, data))
    if fid_n:
        result.update(_fid(model, data, fid_n, fid_features))
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["genlab_commit"] = code_version()
    if command:
        result["command"] = command
    store.atomic_write_json(run_dir / store.EVAL, result)
    return result


def code_version() -> str | None:
    """The git commit of this genlab checkout, "+dirty" if genlab/ has uncommitted changes;
    None when it is not a git checkout (an installed copy) or git is missing."""
    src = Path(__file__).resolve().parents[1]  # genlab/
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True,
                              text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=src,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def _fid(model, data, n: int, fid_features: str = "genlab") -> dict:
    """FID of n samples against the split, for every model that samples (GANs included),
    with the features that made it."""
    t0, n = time.perf_counter(), min(n, len(data))
    made_by = {"fid_features": features_id(fid_features, data.dataset)}
    if is_inception(made_by["fid_features"]):
        made_by["fid_note"] = INCEPTION_NOTE
    try:
        score = fid_model(model, data, n=n, fid_features=fid_features)
    except FeatureNetError as e:  # no shipped feature network for this dataset
        return {"fid": None, "fid_error": str(e), **made_by}
    return {"fid": score, "fid_n": n, **made_by, "fid_seconds": round(time.perf_counter() - t0, 2)}


def _iw_tenth(model, data, lp: torch.Tensor, k: int, dist=None, *, given: bool = False) -> dict:
    """The estimate at k/10 on the same images and noise, beside the one at k (``given``:
    of log p(x|y), its keys named nll_given_...)."""
    t0 = time.perf_counter()
    dist = dist or distributed.Dist()
    lp_tenth = dist.gather(log_prob_split(model, dist.shard(data), k=k // 10, given=given))
    out = {**iw_convergence(lp, lp_tenth, k), "nll_k_tenth_seconds": round(time.perf_counter() - t0, 2)}
    return _given(out) if given else out


def _given_key(key: str) -> str:
    """eval.json's name of a log p(x) figure when it is log p(x|y) instead (nll_nats ->
    nll_given_nats, bpd -> bpd_given)."""
    if key == "bpd":
        return "bpd_given"
    return key.replace("nll_", "nll_given_", 1) if key.startswith("nll_") else key


PROPOSAL_PRIOR_SHARE = 0.05  # of p(c) in the class proposal of log p(x): no class left out


def _conditional_nll(model, data, *, k: int, classifier_k: int, progress: bool,
                     dist=None) -> tuple[dict, torch.Tensor]:
    """A class-conditional model's log p(x|y), log p(x) and generative classifier (see
    :func:`evaluate_run`), and the per-image log p(x) (N,)."""
    from .fid import FeatureNetError, net_info

    dist = dist or distributed.Dist()
    exact = model.caps.likelihood == "exact"
    mine = dist.shard(data)
    t0 = time.perf_counter()
    per_class = dist.gather(class_log_prob_split(
        model, mine, k=classifier_k, progress=_bar(progress, len(mine),
                                                   f"log p(x|y) of all {model.num_classes} classes")))
    seconds = time.perf_counter() - t0
    log_prior = model.log_class_prior.double().cpu()
    m = classifier_metrics(per_class, log_prior, data.y.cpu())
    out = {"classifier_accuracy": m["accuracy"], "classifier_ece": m["ece"],
           "classifier_ece_bins": m["bins"], "classifier_nll": m["nll"],
           "classifier_k": None if exact else classifier_k,
           "classifier_method": "Bayes' rule: argmax_y log p(x|y) + log p(y), log p(y) the "
                                "training labels' frequencies, log p(x|y) "
                                + ("exact" if exact else f"from {classifier_k} importance "
                                   "samples of q(z|x, y) a class"),
           "classifier_seconds": round(seconds, 2)}
    try:
        out["fid_net_accuracy"] = net_info(data.dataset).get("test_accuracy")
    except FeatureNetError:  # no feature network shipped for this dataset
        out["fid_net_accuracy"] = None
    if exact:  # log p(x|y) and log p(x) are in that pass already
        given, lp = m["log_px_given"], m["log_px"]
        out.update(_given(_nll_entries(model, given, seconds, len(mine), dist)))
        out.update(_nll_entries(model, lp, seconds, len(mine), dist))
        out["nll_method"] = (f"exact: logsumexp over the {model.num_classes} classes of "
                             "log p(x|y) + log p(y), each by change of variables")
    else:
        res, given = _nll_per_image(model, data, k=k, progress=progress, dist=dist, given=True)
        out.update(res)
        if k >= 10:
            out.update(_iw_tenth(model, data, given, k, dist, given=True))
        post = torch.log_softmax(per_class + log_prior, dim=-1).exp()
        log_r = torch.log((1 - PROPOSAL_PRIOR_SHARE) * post + PROPOSAL_PRIOR_SHARE * log_prior.exp())
        t1 = time.perf_counter()
        lp = dist.gather(_per_image(
            model, mine, lambda x, _, idx: model.log_prob_marginal(
                x, k, dist.part(log_r)[idx].to(model.device)), (), k=k, batch_size=100, seed=0,
            progress=_bar(progress, len(mine), f"log p(x), k={k} over (y, z)")))
        out.update(_nll_entries(model, lp, time.perf_counter() - t1, len(mine), dist))
        out["nll_method"] = ("importance sampling over (y, z) with r(y|x) q(z|x, y) as "
                             f"proposal, r the classifier's p(y|x) mixed with "
                             f"{PROPOSAL_PRIOR_SHARE:.0%} of p(y)")
    return out, lp


def _exact(model, data, lp: torch.Tensor, n: int | None, *, progress: bool) -> dict:
    """log p(x) by quadrature on the first n images (eval's own binarisation), and the
    importance-weighted figure of the same images."""
    n = len(data) if n is None else min(n, len(data))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n, unit="img", desc="log p(x) by quadrature")
    q = exact_log_px(model, data, limit=n, progress=bar.update if bar else None)
    if bar:
        bar.close()
    return {**exact_eval_entries(q), "nll_exact_n_images": n,
            "nll_nats_same_images": float(-lp[:n].mean())}


def eval_lines(res: dict) -> list[str]:
    """What the CLI prints after eval.json's fields: each log p(x) figure with what its
    ``±`` is, and the warnings."""
    lines = []
    if "nll_nats" in res:
        k = "exact" if res.get("proposal", "").startswith("exact") else f"IW k={res['k']}"
        lines.append(f"-log p(x) ({k}): {res['nll_nats']:.2f} ± {res['nll_sem']:.2f} nats "
                     f"(± = standard error over {res['n_images']} images, their spread, not the "
                     "estimator's error)")
    if "nll_nats_k_tenth" in res:
        lines.append(f"-log p(x) (IW k={res['k_tenth']}): {res['nll_nats_k_tenth']:.2f} nats, "
                     f"{res['nll_gap_k_tenth']:+.2f} from k={res['k']}")
    if "nll_exact_nats" in res:
        lines.append(f"-log p(x) (quadrature, first {res['nll_exact_n_images']} images): "
                     f"{res['nll_exact_nats']:.2f} ± {res['nll_exact_sem']:.2f} nats, against "
                     f"{res['nll_nats_same_images']:.2f} by IW k={res['k']} on the same images; "
                     f"KL(q || p(z|x)) {res['kl_q_posterior']:.2f} nats")
    if "classifier_accuracy" in res:
        k_c = "exact" if res.get("classifier_k") is None else f"IW k={res['classifier_k']} a class"
        fid_acc = res.get("fid_net_accuracy")
        lines.append(f"-log p(x|y) ({k}): {res['nll_given_nats']:.2f} ± {res['nll_given_sem']:.2f} "
                     f"nats with the test labels, beside -log p(x) {res['nll_nats']:.2f}")
        lines.append(f"generative classifier (Bayes' rule, {k_c}): accuracy "
                     f"{res['classifier_accuracy']:.2%}, expected calibration error "
                     f"{res['classifier_ece']:.4f} ({res['classifier_ece_bins']} equal-width bins)"
                     + (f"; the FID feature network's accuracy {fid_acc:.2%}" if fid_acc else ""))
    if "nll_given_nats_k_tenth" in res:
        lines.append(f"-log p(x|y) (IW k={res['k_tenth']}): {res['nll_given_nats_k_tenth']:.2f} "
                     f"nats, {res['nll_given_gap_k_tenth']:+.2f} from k={res['k']}")
    if res.get("nll_given_warning"):
        lines.append(f"warning: {res['nll_given_warning']}")
    if res.get("nll_warning"):
        lines.append(f"warning: {res['nll_warning']}")
    return lines


def _nll(model, data, *, k: int, progress: bool) -> dict:
    return _nll_per_image(model, data, k=k, progress=progress)[0]


def _nll_per_image(model, data, *, k: int, progress: bool,
                   dist=None, given: bool = False) -> tuple[dict, torch.Tensor]:
    """eval.json's log p(x) entries and the per-image log p(x) (N,) they come from
    (each process of ``dist`` its share of the images, gathered in order); ``given``:
    log p(x|y) with the split's labels, in entries named nll_given_... and bpd_given."""
    dist = dist or distributed.Dist()
    mine = dist.shard(data)
    bar = _bar(progress, len(mine), f"log p(x{'|y' if given else ''}), k={k}")
    t0 = time.perf_counter()
    lp = log_prob_split(model, mine, k=k, progress=bar, given=given)
    seconds = time.perf_counter() - t0
    if bar:
        bar.close()
    lp = dist.gather(lp)
    out = _nll_entries(model, lp, seconds, len(mine), dist)
    return (_given(out) if given else out), lp


def _nll_entries(model, lp: torch.Tensor, seconds: float, n_mine: int, dist) -> dict:
    """eval.json's log p(x) entries of the per-image log p(x) (N,) that took ``seconds``
    on this process's ``n_mine`` images."""
    rate = dist.sum(n_mine / max(seconds, 1e-9))  # images/s of all processes together
    out = {"nll_nats": float(-lp.mean()), "nll_sem": float(lp.std() / math.sqrt(len(lp))),
           "nll_seconds": round(seconds, 2), "images_per_s": round(rate, 1),
           "nll_method": model.log_prob_method, "proposal": model.proposal}
    if model.preprocess == "dequantize":
        out["bpd"] = bits_per_dim(out["nll_nats"], math.prod(model.cfg.image_shape))
        out.update(dequantization_entries(model))
    return out


def _given(entries: dict) -> dict:
    """log p(x) entries renamed as log p(x|y)'s (:func:`_given_key`)."""
    return {_given_key(key): v for key, v in entries.items()}


class _Bar:
    """A tqdm bar called with the images of each batch (``bar(n)``)."""

    def __init__(self, total: int, desc: str):
        from tqdm.auto import tqdm
        self.tqdm = tqdm(total=total, unit="img", desc=desc)

    def __call__(self, n: int) -> None:
        self.tqdm.update(n)
        if self.tqdm.n >= self.tqdm.total:
            self.tqdm.close()

    def close(self) -> None:
        self.tqdm.close()


def _bar(progress: bool, total: int, desc: str) -> _Bar | None:
    return _Bar(total, desc) if progress else None


@torch.no_grad()
def evaluate(model: GenerativeModel, data: ImageData, *, batch_size: int = 500, seed: int = 0) -> dict[str, float]:
    """Mean of ``model.eval_metrics`` (the loss parts) over a split, each batch with its
    labels (which only class-conditional models read), with seeded preprocessing noise: the
    validation records of training and eval.json's loss parts."""
    model.eval()
    data = prepare(data, model.preprocess)
    g = torch.Generator(device=data.x.device).manual_seed(seed)
    sums: dict[str, torch.Tensor] = {}
    for idx in batches(len(data), batch_size, shuffle=False, device=data.x.device):
        x = preprocess(data.x[idx], model.preprocess, generator=g).to(model.device)
        for k, v in model.eval_metrics(x, data.y[idx].to(model.device)).items():
            sums[k] = sums.get(k, 0.0) + v.double() * len(idx)
    return {k: float(v) / len(data) for k, v in sums.items()}
