"""Rebuild the shipped runs in checkpoints/ from the line-up (benchmarks/lineup.py), each on
a CPU budget: what checkpoints/recipe.sh runs.

    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/recipe.py [--datasets mnist]
    ... --commit            # commit each run as it ships (checkpoints/<run> only)
    ... --dry-run           # what would train, resume, ship or be skipped

Each run trains on one thread with `--max-minutes BUDGET --budget-clock cpu` (the loop
stops before an epoch that would end past BUDGET minutes of the process's CPU time, so a
busy machine slows a run but does not shorten it) and --jobs runs (2) train side by side,
one per core. A run trains in runs/recipe/<run>, is shipped compactly (no optimiser state, float16 weights, the last
sample grid of each temperature and a few evenly spaced before it) to
checkpoints/<run>, and the shipped copy is evaluated on the full test split (importance-
weighted with --k 1000 for latent models, exact for flows, FID on 10,000 samples; eval.json
records the genlab commit and the command) and its test projections stored (Latent
explorer). checkpoints/<run>/recipe.json records the options, the budget, and the CPU and
wall seconds of training and of shipping + evaluation.

Idempotent and resumable: a run whose recipe.json holds the line-up's current options is
skipped; one whose scratch folder is unfinished (a stop, a killed process) resumes from its
last epoch for what is left of its budget; a run trained but not shipped is shipped.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import lineup  # noqa: E402

RECIPE = "recipe.json"
GIT_LOCK = threading.Lock()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(lineup.DATASETS),
                   help=f"comma-separated [default: {','.join(lineup.DATASETS)}]")
    p.add_argument("--only", help="comma-separated run names (e.g. nice-mnist) [default: all]")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each [default: 2]")
    p.add_argument("--k", type=int, default=1000, help="importance samples of eval [default: 1000]")
    p.add_argument("--keep-grids", type=int, default=2,
                   help="sample grids kept per temperature, evenly spaced, the first and last "
                        "included (2: the first epoch's and the last; checkpoints/ must stay "
                        "within 75 MB: tests/test_shipped.py) [default: 2]")
    p.add_argument("--scratch", default="runs/recipe", help="where runs train [default: runs/recipe]")
    p.add_argument("--dest", default="checkpoints", help="where runs ship [default: checkpoints]")
    p.add_argument("--commit", action="store_true", help="git-commit each run as it ships")
    p.add_argument("--dry-run", action="store_true")
    ns = p.parse_args(argv)
    if ns.jobs < 1:
        p.error("--jobs must be >= 1")
    return ns


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def trained_as_now(run: Path, options: list[str]) -> bool:
    """Does the run's config.json hold what `genlab train OPTIONS` gives today? Options the
    command leaves unset come from the family defaults (genlab.training.optim), so a changed default
    makes a run shipped before it stale."""
    from genlab.cli import build_parser, parse_train
    from genlab.config import to_dict
    from genlab.models import upgrade_config

    stored = read_json(run / "config.json")
    if not stored:
        return False
    model_cfg, train = upgrade_config(stored["model"], stored["model_config"],
                                      json.loads(json.dumps(stored["train"])))
    now = parse_train(build_parser().parse_args(["train", *options]))
    as_json = lambda c: json.loads(json.dumps(to_dict(c)))  # noqa: E731 (tuples as lists)
    new_train = as_json(now.train)
    return now.model == stored["model"] and as_json(now.model_config) == model_cfg and \
        {k: new_train.get(k) for k in train} == train


def is_current(dst: Path, job: lineup.Job) -> bool:
    """Shipped with the line-up's options, budget and today's defaults, and evaluated."""
    rec = read_json(dst / RECIPE) or {}
    return rec.get("options") == job.options and rec.get("budget_min") == job.budget_min and \
        (dst / "eval.json").exists() and \
        trained_as_now(dst, job.train_options)


def scratch_current(scratch: Path, job: lineup.Job) -> bool:
    """Is the scratch run, finished or not, one of today's job (else it trains again)?"""
    return trained_as_now(scratch, job.train_options)


def is_done(run: Path) -> bool:
    return (read_json(run / "status.json") or {}).get("state") == "done"


def trained_minutes(run: Path) -> float:
    """Budget minutes the run has trained, from its last completed epoch's record: its CPU
    seconds (the recipe's budgets count CPU time; "seconds", wall time, in a record from
    before the loop wrote them). Both count from the start of the last training process, so
    after two interruptions this is an undercount."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0.0
    for line in reversed(lines):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("event") == "epoch" and "seconds" in r:
            return float(r.get("cpu_seconds", r["seconds"])) / 60
    return 0.0


def timed(argv: list[str], log) -> tuple[int, float]:
    """Run a command on one thread; (exit code, CPU seconds of it and its children)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    p = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, usage.ru_utime + usage.ru_stime


def prune_grids(run: Path, keep: int) -> int:
    """Keep ``keep`` sample grids per temperature folder, evenly spaced, the last included;
    returns how many were removed (the shipped folder stays small)."""
    removed = 0
    for folder in [run / "samples", *sorted((run / "samples").glob("t*"))]:
        grids = sorted(folder.glob("epoch_*.png"))
        if len(grids) <= keep:
            continue
        n = len(grids)
        kept = {grids[round(i * (n - 1) / (keep - 1))] for i in range(keep)} if keep > 1 else {grids[-1]}
        for g in grids:
            if g not in kept:
                g.unlink()
                removed += 1
    return removed


def grey_grids(run: Path) -> int:
    """Rewrite the run's sample grids whose three channels are equal (grey images written as
    RGB, as runs trained before the training loop wrote greyscale did) as greyscale PNG, the
    same pixels in about half the bytes, atomically; returns how many it rewrote."""
    from PIL import Image

    done = 0
    for png in sorted((run / "samples").rglob("*.png")):
        with Image.open(png) as im:
            if im.mode != "RGB" or not (im.getchannel(0).tobytes() == im.getchannel(1).tobytes()
                                        == im.getchannel(2).tobytes()):
                continue
            grey = im.getchannel(0)
        tmp = png.with_name(f".{png.name}.tmp.png")
        grey.save(tmp, format="PNG", optimize=True)
        tmp.replace(png)
        done += 1
    return done


def _arg(path: Path) -> str:
    """A path as the commands get it: relative to the repository (their working directory)
    where it lies inside it, so what they record (eval.json's command, status messages)
    names no folder of this machine."""
    return os.path.relpath(path, REPO) if path.resolve().is_relative_to(REPO) else str(path)


def ship_job(job: lineup.Job, ns: argparse.Namespace) -> str:
    py = sys.executable
    scratch, dst = REPO / ns.scratch / job.run, REPO / ns.dest / job.run
    s_arg, d_arg = _arg(scratch), _arg(dst)
    if is_current(dst, job):
        return f"{job.run}: shipped with these options already, skipped"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    if (scratch / "config.json").exists() and not scratch_current(scratch, job):
        shutil.rmtree(scratch)  # trained with other options or defaults: start again
    with open(scratch.parent / f"{job.run}.log", "a") as log:
        t0, cpu = time.time(), 0.0
        if not (scratch / "config.json").exists():
            train = [py, "-m", "genlab", "train", *job.train_options, "--run-dir", s_arg, "--quiet"]
            rc, cpu = timed(train, log)
        elif not is_done(scratch):
            left = max(job.budget_min - trained_minutes(scratch), 0.5)
            rc, cpu = timed([py, "-m", "genlab", "resume", s_arg, "--quiet",
                             "--max-minutes", f"{left:.2f}"], log)
        else:
            rc = 0
        if rc or not is_done(scratch):
            return f"{job.run}: FAILED training (exit {rc}; see {_arg(scratch.parent / (job.run + '.log'))})"
        t1 = time.time()
        shutil.rmtree(dst, ignore_errors=True)
        steps = [[py, "-m", "genlab", "ship", s_arg, d_arg],
                 [py, "-m", "genlab", "eval", d_arg, "--k", str(ns.k), "--exact-n", str(job.exact_n),
                  "--quiet"],
                 [py, "-m", "genlab.evaluation.explore", d_arg]]
        eval_cpu = 0.0
        for i, argv in enumerate(steps):
            rc, c = timed(argv, log)
            eval_cpu += c
            if rc:
                return f"{job.run}: FAILED at `{' '.join(argv[1:4])}` (exit {rc})"
            if i == 0:
                prune_grids(dst, ns.keep_grids)
                grey_grids(dst)
    status = read_json(scratch / "status.json") or {}
    rec = {"options": job.options, "budget_min": job.budget_min, "exact_n": job.exact_n,
           "epochs": status.get("epoch"), "train_cpu_s": round(cpu, 1), "train_wall_s": round(t1 - t0, 1),
           "eval_cpu_s": round(eval_cpu, 1), "eval_wall_s": round(time.time() - t1, 1),
           "note": "train_cpu_s counts this invocation only (a resumed run: the part after the resume)"}
    (dst / RECIPE).write_text(json.dumps(rec, indent=1) + "\n")
    if ns.commit:
        with GIT_LOCK:
            subprocess.run(["git", "add", str(dst)], cwd=REPO, check=True)
            subprocess.run(["git", "commit", "-q", "-m", f"checkpoints/{job.run}: retrained by "
                            f"checkpoints/recipe.sh ({job.budget_min:g} CPU min, {rec['epochs']} epochs)",
                            "--", str(dst)], cwd=REPO, check=True)
    return (f"{job.run}: {rec['epochs']} epochs, train {cpu / 60:.1f} CPU min, ship + eval "
            f"{eval_cpu / 60:.1f} CPU min")


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    jobs = lineup.recipe_jobs(ns.datasets.split(","))
    if ns.only:
        wanted = set(ns.only.split(","))
        jobs = [j for j in jobs if j.run in wanted]
    if ns.dry_run:
        for j in jobs:
            dst, scratch = REPO / ns.dest / j.run, REPO / ns.scratch / j.run
            fresh = scratch_current(scratch, j)
            what = ("skip" if is_current(dst, j) else "ship" if fresh and is_done(scratch) else
                    "resume" if fresh else "train")
            print(f"{what:>6} {j.run}: {j.budget_min:g} CPU min, genlab train {' '.join(j.options)}")
        return 0
    t0 = time.time()
    with ThreadPoolExecutor(ns.jobs) as pool:  # threads only wait on subprocesses
        for line in pool.map(lambda j: ship_job(j, ns), jobs):
            print(line, flush=True)
    print(f"recipe: {len(jobs)} runs in {(time.time() - t0) / 60:.1f} min of wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
