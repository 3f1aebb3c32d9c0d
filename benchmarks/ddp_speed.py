"""Training images/s of 1 process against 2 (one thread each, gloo) for the VAE and RealNVP.

    OMP_NUM_THREADS=1 python benchmarks/ddp_speed.py [--rounds 5] [--steps 20]

Paired in one run: the script starts two processes once; each round times one phase on
rank 0 alone (a plain model, the whole global batch, rank 1 idle in a barrier) and then
one phase on both ranks (genlab.distributed's synced step, half the batch each), so both
figures of a round share the machine's state at that moment. A third phase is the ceiling:
both ranks step a plain model on half the batch at once with no communication at all (two
independent processes; images/s summed), so "ratio" against "ceiling" separates the cost
of the all-reduce from what two processes on this machine can do at best. Reported: the median of
each over the rounds and the median of the per-round ratios (issue 14's goal: >= 1.6x on
two cores). Steps are timed after warm-up steps; images/s counts the global batch.
Data: the first images of MNIST's training split ($GENLAB_DATA or --data-root), else
random images of the same shape (said in the output).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab import distributed  # noqa: E402
from genlab.data import load_split, preprocess  # noqa: E402
from genlab.models import build_model  # noqa: E402

RUNS = "vae:100,vae:512,vae:2048,vae:4096,realnvp:32,realnvp:64,realnvp:256"
"""(model:global batch): each family at its default batch (genlab.training.optim; RealNVP's was 32
before it became 64), and larger ones. The VAE's 5.4 MB gradient all-reduce (1.36 M float32
parameters) weighs against a 50-image half-batch step of ~5 ms; RealNVP has a sixth of the
parameters and ~10x the compute per image, and larger batches shift both towards compute."""


def _images(root: str | None, n: int) -> tuple[torch.Tensor, str]:
    try:
        return load_split("mnist", "train", root, download=False, limit=n).x, "MNIST"
    except Exception:  # no dataset here: the speed does not depend on the pixels
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8), "random images"


def _time_steps(step, model, x_all, batch, steps, warmup, dist, optimizers) -> float:
    """images/s of ``steps`` steps (after ``warmup``) on global batches of ``batch``."""
    g = torch.Generator().manual_seed(1)
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            if dist.active:
                tdist.barrier()
            t0 = time.perf_counter()
        idx = torch.randint(len(x_all), (batch,), generator=g)
        x = preprocess(x_all[idx], model.preprocess, generator=g)
        step(dist.part(x), optimizers, of=batch)
    if dist.active:
        tdist.barrier()  # the slower rank sets the pace
    return steps * batch / (time.perf_counter() - t0)


def _worker(rank: int, port: int, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist = distributed.setup("cpu")
    single = distributed.Dist()
    x_all, source = _images(args.data_root, 2048)
    results = {}
    for name, batch in ((r.split(":")[0], int(r.split(":")[1])) for r in args.runs.split(",")):
        torch.manual_seed(0)
        alone = build_model(name, {"image_shape": (1, 28, 28)})
        torch.manual_seed(0)
        both = build_model(name, {"image_shape": (1, 28, 28)})
        alone.train(), both.train()
        alone_opt, both_opt = alone.configure_optimizers(1e-3), both.configure_optimizers(1e-3)
        torch.manual_seed(0)
        apart = build_model(name, {"image_shape": (1, 28, 28)})
        apart.train()
        apart_opt = apart.configure_optimizers(1e-3)
        synced = dist.wrap(both)
        one, two, free = [], [], []
        for _ in range(args.rounds):
            if dist.is_main:
                one.append(_time_steps(single.wrap(alone), alone, x_all, batch, args.steps,
                                       args.warmup, single, alone_opt))
            tdist.barrier()  # rank 1 waits (blocked, not spinning) while rank 0 runs alone
            two.append(_time_steps(synced, both, x_all, batch, args.steps, args.warmup, dist,
                                   both_opt))
            # the ceiling: both ranks step on half the batch each at the same time, with no
            # communication at all (two independent processes); images/s summed
            tdist.barrier()
            mine = torch.tensor(_time_steps(single.wrap(apart), apart, x_all, batch // 2, args.steps,
                                            args.warmup, single, apart_opt))
            tdist.all_reduce(mine)
            free.append(float(mine))
        results[name, batch] = (one, two, free)
    if dist.is_main:
        print(f"data: {source}; {args.rounds} paired rounds of {args.steps} timed steps "
              f"(+{args.warmup} warm-up), one thread per process, gloo")
        print(f"{'model':8} {'batch':>5} {'1 proc img/s':>13} {'2 proc img/s':>13} {'ratio':>6} "
              f"{'2 apart img/s':>14} {'ceiling':>8}")
        rows = []
        for (name, batch), (one, two, free) in results.items():
            ratio = statistics.median(b / a for a, b in zip(one, two))
            ceiling = statistics.median(c / a for a, c in zip(one, free))
            rows.append(dict(model=name, global_batch=batch, one_img_s=statistics.median(one),
                             two_img_s=statistics.median(two), ratio=ratio,
                             apart_img_s=statistics.median(free), ceiling=ceiling,
                             rounds=dict(one=one, two=two, apart=free)))
            print(f"{name:8} {batch:5d} {statistics.median(one):13.1f} "
                  f"{statistics.median(two):13.1f} {ratio:6.2f}x {statistics.median(free):14.1f} "
                  f"{ceiling:7.2f}x")
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(dict(data=source, rounds=args.rounds, steps=args.steps,
                                           warmup=args.warmup, load_at_end=os.getloadavg(),
                                           torch=torch.__version__, rows=rows), indent=1))
    distributed.teardown(dist)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    p.add_argument("--runs", default=RUNS, help=f"model:global batch, comma-separated (default {RUNS})")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, args), nprocs=2, start_method="spawn")


if __name__ == "__main__":
    main()
