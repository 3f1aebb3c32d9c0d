"""Training speed of genlab's fit() against a bare hand-written loop (issue 2), and of its
fused optimiser step against the plain per-parameter Adam step it replaced (issue 12).

    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/train_speed.py

A VAE 784-512-512-20 (MLP, Bernoulli decoder) on dynamically binarised MNIST, all
55,000 training images, batch 128, Adam. Both contestants use the same model class,
the same in-memory uint8 tensors on the same device, and the same batch size; the
bare loop is what one would write by hand (randperm indexing, bernoulli, loss,
backward, step). They alternate in one process (bare, fit, bare, fit, ...) after a
warm-up epoch each, so drifts in machine load hit both; the script prints the
median images/s of each, the ratio fit/bare and the spread, and writes them to
benchmarks/results/train_speed-<device>.json. fit() runs without validation and
without a run directory: what is timed is the loop itself (wall clock of the fit()
call, setup included). Goal: ratio >= 0.9.

The optimiser step (issue 12): fit() now builds its optimisers with
genlab.models.base.build_optimizers, which takes PyTorch's fused Adam kernel where the device has
one (CPU and CUDA), else the foreach one. A third contestant, "fit-forloop", is fit() given
the optimiser it used before (``torch.optim.Adam(params, lr)``: on CPU PyTorch's default is
the for-loop step, one small kernel per parameter tensor), alternated with the other two in
the same rounds; the script prints fused/for-loop (ratio of medians and median of paired
ratios). Goal: >= 1.15 on this VAE.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab.config import TrainConfig  # noqa: E402
from genlab.data import ImageData, load_split  # noqa: E402
from genlab.device import device_name, pick_device  # noqa: E402
from genlab.models import build_model  # noqa: E402
from genlab.models.base import step_kind  # noqa: E402
from genlab.training.loop import fit  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODEL_CFG = {"latent_dim": 20, "hidden": [512, 512], "arch": "mlp", "preprocess": "dynamic"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed epochs of each loop")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=0, help="use only N training images (0 = all 55k)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="JSON file [default: results/train_speed-<device>.json]")
    return p.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def new_model(device: torch.device):
    torch.manual_seed(0)
    return build_model("vae", MODEL_CFG).to(device)


def bare_epoch(train: ImageData, batch_size: int, device: torch.device) -> tuple[float, float]:
    """The hand-written loop: (wall, CPU) seconds for one epoch."""
    model = new_model(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    perm = torch.randperm(len(train)).to(device)
    for i in range(0, len(train), batch_size):
        x = torch.bernoulli(train.x[perm[i:i + batch_size]].float() / 255.0)  # (B, 1, 28, 28)
        loss = model.loss(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def fit_epoch(train: ImageData, batch_size: int, device: torch.device) -> tuple[float, float]:
    """genlab's fit() for one epoch, no validation, no run directory: (wall, CPU) seconds."""
    model = new_model(device)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-3, log_every=50)
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fit(model, train, None, cfg)
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def fit_forloop_epoch(train: ImageData, batch_size: int, device: torch.device) -> tuple[float, float]:
    """fit() with the optimiser it had before issue 12: Adam's default step (for-loop on CPU)."""
    model = new_model(device)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-3, log_every=50)
    opt = [torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)]
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fit(model, train, None, cfg, optimizers=opt)
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def step_kind_of(train: ImageData, batch_size: int, device: torch.device) -> str:
    """How fit()'s optimiser steps on this device ("fused" or "foreach")."""
    return step_kind(new_model(device).configure_optimizers(1e-3, TrainConfig())[0])


def step_costs(train: ImageData, batch_size: int, device: torch.device, n: int = 100) -> dict:
    """Milliseconds per call of what a training step is made of, timed alone: the loss
    forward + backward at ``batch_size``, the for-loop Adam step and fit()'s step (fused or
    foreach) on this VAE's parameters. The optimiser step's share of a step bounds what any
    faster step can gain: at most 1 / (1 - share)."""
    model = new_model(device)
    x = torch.bernoulli(train.x[:batch_size].float() / 255.0)
    def timed(fn) -> float:
        fn()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync(device)
        return 1000 * (time.perf_counter() - t0) / n

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        model.loss(x)["loss"].backward()
    out = {"forward_backward_ms": timed(fwd_bwd)}
    for name, opt in (("forloop_step_ms", torch.optim.Adam(model.parameters(), lr=1e-6, foreach=False)),
                      ("fit_step_ms", model.configure_optimizers(1e-6, TrainConfig())[0])):
        out[name] = timed(opt.step)
    out["forloop_share"] = out["forloop_step_ms"] / (out["forward_backward_ms"] + out["forloop_step_ms"])
    out["bound_if_step_free"] = 1 / (1 - out["forloop_share"])
    out["expected_ratio"] = ((out["forward_backward_ms"] + out["forloop_step_ms"])
                             / (out["forward_backward_ms"] + out["fit_step_ms"]))
    return out


def spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"median {med:8.0f} img/s  (min {min(values):.0f}, max {max(values):.0f}, " \
           f"range {100 * (max(values) - min(values)) / med:.0f}% of median)"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    load0 = os.getloadavg()[0]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    train = load_split("mnist", "train", args.data_root, limit=args.limit or None).to(device)
    n = len(train)
    print(f"{n} images, batch {args.batch_size}, device {device_name(device)}, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    bare_epoch(train, args.batch_size, device)  # warm-up: allocator, kernels, caches
    fit_epoch(train, args.batch_size, device)
    fit_forloop_epoch(train, args.batch_size, device)
    bare, fitted, loop, bare_cpu, fit_cpu, loop_cpu = [], [], [], [], [], []
    contestants = ((bare, bare_cpu, bare_epoch), (fitted, fit_cpu, fit_epoch),
                   (loop, loop_cpu, fit_forloop_epoch))
    for r in range(args.repeats):
        for wall_list, cpu_list, epoch in contestants if r % 2 == 0 else contestants[::-1]:
            wall, cpu = epoch(train, args.batch_size, device)
            wall_list.append(n / wall)
            cpu_list.append(n / cpu)
        print(f"repeat {r + 1}: bare {bare[-1]:.0f} img/s, fit {fitted[-1]:.0f} img/s, "
              f"fit with the for-loop Adam step {loop[-1]:.0f} img/s (per CPU-second: "
              f"{bare_cpu[-1]:.0f}, {fit_cpu[-1]:.0f}, {loop_cpu[-1]:.0f})", flush=True)
    ratios = [f / b for f, b in zip(fitted, bare)]
    step_ratios = [f / b for f, b in zip(fitted, loop)]
    result = {
        "model": "vae 784-512-512-20 mlp, dynamic binarisation", "images": n,
        "batch_size": args.batch_size, "repeats": args.repeats, "device": device_name(device),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "bare_img_s": bare, "fit_img_s": fitted, "pair_ratios": ratios,
        "bare_median_img_s": statistics.median(bare), "fit_median_img_s": statistics.median(fitted),
        "ratio_of_medians": statistics.median(fitted) / statistics.median(bare),
        "median_pair_ratio": statistics.median(ratios),
        # images per CPU-second of this process: less sensitive to other processes on a
        # shared machine than wall-clock figures (threads summed)
        "bare_img_per_cpu_s": bare_cpu, "fit_img_per_cpu_s": fit_cpu,
        "cpu_ratio_of_medians": statistics.median(fit_cpu) / statistics.median(bare_cpu),
        "optimizer_step": step_kind_of(train, args.batch_size, device),
        "fit_forloop_img_s": loop, "fit_forloop_img_per_cpu_s": loop_cpu,
        "step_pair_ratios": step_ratios,
        "step_ratio_of_medians": statistics.median(fitted) / statistics.median(loop),
        "step_median_pair_ratio": statistics.median(step_ratios),
        "step_cpu_ratio_of_medians": statistics.median(fit_cpu) / statistics.median(loop_cpu),
        "load_average_at_start": load0, "load_average_at_end": os.getloadavg()[0],
        "step_costs": step_costs(train, args.batch_size, device),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"bare loop: {spread(bare)}")
    print(f"fit():     {spread(fitted)}")
    print(f"fit/bare:  {result['ratio_of_medians']:.3f} (ratio of medians), "
          f"{result['median_pair_ratio']:.3f} (median of paired ratios)  [goal >= 0.9]")
    print(f"per CPU-second: bare {statistics.median(bare_cpu):.0f}, fit {statistics.median(fit_cpu):.0f}, "
          f"ratio {result['cpu_ratio_of_medians']:.3f}")
    print(f"fit with the for-loop Adam step: {spread(loop)}")
    print(f"{result['optimizer_step']}/for-loop step: {result['step_ratio_of_medians']:.3f} (ratio of "
          f"medians), {result['step_median_pair_ratio']:.3f} (median of paired ratios), per "
          f"CPU-second {result['step_cpu_ratio_of_medians']:.3f}  [goal >= 1.15]; load average "
          f"{load0:.2f} at the start, {result['load_average_at_end']:.2f} at the end")
    c = result["step_costs"]
    print(f"alone, per step: forward+backward {c['forward_backward_ms']:.2f} ms, for-loop Adam "
          f"{c['forloop_step_ms']:.2f} ms ({100 * c['forloop_share']:.0f}% of a step: a free step "
          f"would give at most {c['bound_if_step_free']:.3f}x), {result['optimizer_step']} Adam "
          f"{c['fit_step_ms']:.2f} ms (expected {c['expected_ratio']:.3f}x)")
    out = Path(args.out) if args.out else RESULTS / f"train_speed-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    return result


if __name__ == "__main__":
    main()
