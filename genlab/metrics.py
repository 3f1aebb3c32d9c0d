"""Evaluation: ELBO parts, importance-weighted log p(x), bits/dim.

Units: log-likelihoods are nats per image. Models of binarised pixels give nats on
binarised data; models of dequantised pixels give densities on [0, 1]-scaled pixels,
which :func:`bits_per_dim` turns into bits/dim on the 8-bit data.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from . import runs
from .data import load_split, prepare, preprocess, batches
from .train import evaluate, pick_device


def bits_per_dim(nll_nats: float, num_dims: int) -> float:
    """bits/dim on 8-bit data from -log p(x) in nats of a density on [0,1]-scaled pixels:
    bpd = (nll + D ln 256) / (D ln 2)."""
    return (nll_nats + num_dims * math.log(256)) / (num_dims * math.log(2))


def data_kind(preprocess_how: str) -> str:
    """What the model's numbers are measured on."""
    return "8-bit" if preprocess_how == "dequantize" else "binarised"


@torch.no_grad()
def log_prob_split(model, data, *, k: int, batch_size: int = 100, seed: int = 0,
                   progress=None) -> torch.Tensor:
    """log p(x) per image over a split (nats): exact for flows, IWAE(k) for latent models."""
    model.eval()
    data = prepare(data, model.preprocess)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    out = []
    for idx in batches(len(data), batch_size, shuffle=False):
        x = preprocess(data.x[idx], model.preprocess, generator=g).to(model.device)
        out.append(model.log_prob(x, k=k).double().cpu())
        if progress:
            progress(len(idx))
    return torch.cat(out)


def evaluate_run(run_dir: str | Path, *, k: int = 1, split: str = "test", data_root=None,
                 device: str = "auto", limit: int | None = None, progress: bool = False) -> dict:
    """Evaluate a run on a split and write eval.json (atomically); returns its contents."""
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    dev = pick_device(device)
    model, ckpt, rc = runs.load_model(run_dir, map_location=dev)
    data = load_split(rc.train["dataset"], split, data_root or rc.train.get("data_root") or None,
                      limit=limit)
    torch.manual_seed(0)
    parts = evaluate(model, data)
    result = {"split": split, "n_images": len(data), "epoch": ckpt.get("epoch"),
              "data": data_kind(model.preprocess), "k": k,
              **{f"test_{n}" if split == "test" else f"{split}_{n}": v for n, v in parts.items()}}
    if "elbo" in parts:
        result["elbo"] = parts["elbo"]
    if model.has_likelihood:
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(data), unit="img", desc=f"log p(x), k={k}")
        lp = log_prob_split(model, data, k=k, progress=bar.update if bar else None)
        if bar:
            bar.close()
        result["nll_nats"] = float(-lp.mean())
        result["nll_sem"] = float(lp.std() / math.sqrt(len(lp)))
        if model.preprocess == "dequantize":
            result["bpd"] = bits_per_dim(result["nll_nats"], math.prod(model.cfg.image_shape))
    result["seconds"] = round(time.perf_counter() - t0, 2)
    runs.atomic_write_json(run_dir / runs.EVAL, result)
    return result
