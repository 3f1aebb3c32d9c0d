"""Train genlab's FID feature networks, one small CNN classifier per dataset.

    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/train_fid_nets.py

Trains :class:`genlab.evaluation.fid.FeatureNet` on the training split (the validation images are
held out as usual), measures its test accuracy and writes ``checkpoints/fid/<dataset>.pt``
(weights, loaded with ``weights_only=True``) and ``<dataset>.json`` (accuracy, feature
dim, training seconds, ...). Datasets whose files are absent (SVHN here) are skipped.
"""
from __future__ import annotations

import argparse
import io
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab.data import DATASETS, ImageData, batches, dataset_info, dataset_present, load_split  # noqa: E402
from genlab.evaluation.fid import FID_DIR, FeatureNet, accuracy, as_unit_images, net_paths  # noqa: E402
from genlab.runs.store import atomic_write_bytes, atomic_write_json  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak of the one-cycle schedule")
    p.add_argument("--feature-dim", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(FID_DIR))
    return p.parse_args(argv)


def train_epoch(net: FeatureNet, data, opt, sched, batch_size: int, g: torch.Generator) -> float:
    """One pass over the training images; returns the mean cross-entropy."""
    net.train()
    total = 0.0
    for idx in batches(len(data), batch_size, shuffle=True, generator=g):
        x = as_unit_images(data.x[idx])  # (B, C, H, W) in [0, 1]
        loss = F.cross_entropy(net(x), data.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(idx)
    return total / len(data)


def train_one(name: str, args: argparse.Namespace) -> dict:
    info = dataset_info(name)
    train = load_split(name, "train", args.data_root, download=False)
    val = load_split(name, "val", args.data_root, download=False)
    test = load_split(name, "test", args.data_root, download=False)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    net = FeatureNet(info.shape, len(info.classes), feature_dim=args.feature_dim)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(train) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(net, train, opt, sched, args.batch_size, g)
        print(f"{name} epoch {epoch}: train loss {loss:.4f}, val acc {accuracy(net, val):.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    seconds = (time.perf_counter() - t0, time.process_time() - c0)
    return save(net, name, args, seconds=seconds, test=test, val=val, train_size=len(train))


def save(net: FeatureNet, name: str, args: argparse.Namespace, *, seconds: tuple[float, float],
         test, val, train_size: int) -> dict:
    """Write the weights and the metrics json; returns the metrics. ``seconds`` is
    (wall, process CPU) time of training: wall time grows when the CPU is shared."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pt, js = net_paths(name, out)
    net.eval()
    config = {"shape": list(net.shape), "num_classes": net.head.out_features,
              "feature_dim": net.feature_dim}
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "config": config, "dataset": name}, buf)
    atomic_write_bytes(pt, buf.getvalue())
    first = ImageData(test.x[:2000], test.y[:2000], name, "test")  # re-measured by the tests
    metrics = {
        "dataset": name, "test_accuracy": accuracy(net, test), "val_accuracy": accuracy(net, val),
        "test_accuracy_first_2000": accuracy(net, first),
        "n_test": len(test), "n_train": train_size, "feature_dim": net.feature_dim,
        "feature_layer": "ReLU(Linear(9*128 -> feature_dim)), penultimate layer",
        "params": sum(p.numel() for p in net.parameters()), "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "train_seconds": round(seconds[0], 1), "train_cpu_seconds": round(seconds[1], 1),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "file_bytes": pt.stat().st_size,
        "note": "genlab FID features; not comparable with Inception FID",
    }
    atomic_write_json(js, metrics)
    return metrics


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.datasets:
        if not dataset_present(name, args.data_root):
            print(f"{name}: data not found, skipped")
            continue
        m = train_one(name, args)
        print(f"{name}: test accuracy {m['test_accuracy']:.4f}, {m['train_seconds']} s, "
              f"{m['file_bytes'] / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()
