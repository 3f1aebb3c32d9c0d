"""Evaluation speed: log p(x) with k importance samples on the full MNIST test split (issue 4).

    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/eval_speed.py

What ``python -m genlab eval checkpoints/vae-20d-mnist --k 1000`` does, timed: the shipped
784-512-512-20 MLP VAE on dynamically binarised MNIST, all 10,000 test images, k=1000
samples per image (10 million decoder passes), plus the ELBO, latent statistics and FID
that eval also computes. The run folder is copied to a temporary directory first, so the
shipped eval.json is left alone. Goal: within 5 minutes on the 2-core CPU.

Reports the IWAE estimate (nats per image, with its standard error), the wall seconds of
the whole evaluation and of the log p(x) part alone, images/s and images per CPU-second
of log p(x) (less sensitive to other processes on a shared machine), the device, the
torch threads, and the 1-minute load average before and after (the machine is shared:
a load above the thread count means the figures are slower than on an idle machine).
Writes benchmarks/results/eval_speed-<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab.device import device_name, pick_device  # noqa: E402
from genlab.evaluation.metrics import evaluate_run  # noqa: E402
from genlab.runs import store  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(REPO / "checkpoints" / "vae-20d-mnist"), help="run folder")
    p.add_argument("--k", type=int, default=1000, help="importance samples per image")
    p.add_argument("--limit", type=int, default=0, help="only the first N test images (0 = all)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--fid-n", type=int, default=10000, help="FID samples, as eval's default (0 skips)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="JSON file [default: results/eval_speed-<device>.json]")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    src = Path(args.run)
    with tempfile.TemporaryDirectory(prefix="genlab-eval-speed-") as tmp:
        run = Path(tmp) / src.name
        shutil.copytree(src, run, ignore=shutil.ignore_patterns(store.EVAL, "samples"))
        load_before = os.getloadavg()
        print(f"{src.name}, k={args.k}, device {device_name(device)}, {torch.get_num_threads()} "
              f"threads, load average {load_before[0]:.2f}", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        res = evaluate_run(run, k=args.k, device=str(device), limit=args.limit or None,
                           data_root=args.data_root, progress=True, fid_n=args.fid_n)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        load_after = os.getloadavg()
    n = res["n_images"]
    result = {
        "run": src.name, "model": res["model"], "dataset": res["dataset"], "data": res["data"],
        "split": res["split"], "n_images": n, "k": args.k, "proposal": res.get("proposal"),
        "nll_nats": res["nll_nats"], "nll_sem": res["nll_sem"], "elbo": res["elbo"],
        "eval_seconds": round(wall, 2), "eval_cpu_seconds": round(cpu, 2),
        "nll_seconds": res["nll_seconds"], "nll_img_s": round(n / res["nll_seconds"], 2),
        "samples_per_s": round(n * args.k / res["nll_seconds"]),
        "fid": res.get("fid"), "fid_seconds": res.get("fid_seconds"),
        "device": device_name(device), "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "processor": _cpu_model(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "goal_seconds": 300,
    }
    print(f"log p(x) >= {-result['nll_nats']:.3f} +- {result['nll_sem']:.3f} nats (IWAE, k={args.k}), "
          f"ELBO {result['elbo']:.3f}")
    print(f"eval {wall:.1f} s wall ({cpu:.1f} CPU s), of which log p(x) {res['nll_seconds']:.1f} s = "
          f"{result['nll_img_s']:.1f} img/s; load average {load_before[0]:.2f} -> {load_after[0]:.2f} "
          f"on {os.cpu_count()} cores [goal: <= 300 s]")
    out = Path(args.out) if args.out else RESULTS / f"eval_speed-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    return result


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
