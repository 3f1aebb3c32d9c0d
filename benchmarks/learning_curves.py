"""Learning curves per CPU-minute, today's recipe against the papers' (issue 12, section 3).

    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/learning_curves.py --dry-run
    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/learning_curves.py

For each family of FAMILIES (a line-up entry of benchmarks/lineup.py and its CPU budget; its
test metric and the goal the issue names follow from what the model declares: ``measure``)
two runs train side by side, each a process on
one thread (OMP_NUM_THREADS=1): "old", the line-up's options with every option the family
defaults set given its value from before issue 12 (genlab.models.legacy_values: constant Adam
lr, no averaging, no warm-up; the CLI would otherwise fill them with the family defaults),
and "new", the same options plus the family's RECIPES["new"] options
(genlab.models.family_defaults, the papers' settings). The budget is cut into --snapshots
chunks: chunk 1 is `python -m genlab train ... --epochs 10000 --max-minutes CHUNK`, each
later one `python -m genlab resume RUN` (another CHUNK), and after each chunk both runs are
evaluated on the test split (`python -m genlab eval RUN --k K --limit N`), eval.json copied
to RUN/snapshots/. The budget is checked between epochs, so a chunk is at least one epoch
(realnvp: an epoch is several minutes on one thread, so it gets fewer snapshots). A chunk
counts the training process's CPU minutes (`--budget-clock cpu`), so a busy machine slows
the runs but does not change their snapshots; should the chunks still fall short (each
stops before an epoch that would overrun it) a run gets more of them, at most twice
--snapshots, until its CPU minutes reach the budget.

The x axis is the CPU time of the training processes (os.wait4's rusage: user + system,
start-up and data loading included; evaluation not counted); the y axis the test metric
at each snapshot: NLL in nats (IWAE, k = --eval-k) for the binarised VAEs, bits/dim for
the flows, genlab FID for the GAN. "minutes to goal" interpolates linearly between
snapshots: 95 nats for the VAEs, 2.0 bits/dim for the flows.

Output: benchmarks/results/learning_curves-<device>.json and .md, and the plot as
learning_curves-<device>.png when plotly can write images (kaleido), else .html (the note
in the .md says which). Runs go to --runs-dir (reused unless --fresh).

A real run refuses to start if RECIPES name an option the CLI does not take (--dry-run
lists any); today the CLI takes all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import lineup  # noqa: E402
from genlab.models import family_defaults, family_sources  # noqa: E402

RESULTS = BENCH / "results"


# what a run is measured by, from what its model declares: (eval.json key plotted, unit, the
# goal of "minutes to goal": the first time the metric is <= it)
NATS, BITS, FID = ("nll_nats", "nats", 95.0), ("bpd", "bits/dim", 2.0), ("fid", "genlab FID", None)


def measure(entry: lineup.Entry) -> tuple[str, str, float | None]:
    """FID for a model without a likelihood (caps.likelihood None); else bits/dim on
    dequantised 8-bit pixels, nats on binarised ones (its --preprocess, or its config's)."""
    from genlab.config import defaults
    from genlab.models import family

    fam = family(entry.model)
    if fam.model_cls.caps.likelihood is None:
        return FID
    given = dict(zip(entry.options[::2], entry.options[1::2]))
    return BITS if given.get("--preprocess", defaults(fam.config_cls).get("preprocess")) == "dequantize" \
        else NATS


@dataclass(frozen=True)
class Family:
    entry: str  # line-up name (benchmarks/lineup.py)
    budget_min: float  # CPU minutes per run

    @property
    def _measure(self) -> tuple[str, str, float | None]:
        return measure(lineup.by_name(self.entry)[0])

    metric = property(lambda self: self._measure[0])  # eval.json key plotted
    unit = property(lambda self: self._measure[1])
    goal = property(lambda self: self._measure[2])  # "minutes to goal": first time metric <= goal


FAMILIES: tuple[Family, ...] = (
    Family("vae-20d", 10), Family("vae-flow-prior", 10), Family("binary-vae", 10),
    Family("nice", 10), Family("realnvp", 30), Family("gan", 10),
)


# The two recipes, as extra `genlab train` options on top of the line-up entry's. "new" is
# the family's papers' settings (genlab.models.family_defaults); complete or override per
# line-up name in NEW_OVERRIDES (e.g. once the CLI grows an option, or to try a variant).
NEW_OVERRIDES: dict[str, dict] = {}
NEW_EXTRA: list[str] = []  # --new-options: flags on top of "new" for every family (a variant)
RECIPES = {
    "old": lambda entry: entry.legacy_options(),
    "new": lambda entry: merge_options(lineup.flags({**family_defaults(entry.model),
                                                     **NEW_OVERRIDES.get(entry.name, {})}), NEW_EXTRA),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", help="comma-separated line-up names [default: all of FAMILIES: "
                   + ", ".join(f.entry for f in FAMILIES) + "]")
    p.add_argument("--dataset", default="mnist", choices=lineup.DATASETS)
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiply every family's CPU budget (0.1 for a quick look) [default: 1]")
    p.add_argument("--snapshots", type=int, default=5, help="test evaluations per run [default: 5]")
    p.add_argument("--eval-k", type=int, default=100,
                   help="importance samples of the latent models' NLL [default: 100]")
    p.add_argument("--eval-limit", type=int, default=2000, help="test images per snapshot [default: 2000]")
    p.add_argument("--fid-n", type=int, default=2000, help="samples for the GAN's FID [default: 2000]")
    p.add_argument("--new-options", default="", metavar="FLAGS",
                   help="train flags added to the new recipe of every family, to try a variant "
                        "against the old one (e.g. \"--kl-warmup-epochs 10\") [default: none]")
    p.add_argument("--recipes", default="old,new", help="which recipes train, comma-separated: "
                   "\"new\" alone tries a variant against an old curve measured before (merge "
                   "the two with --combine) [default: old,new]")
    p.add_argument("--runs-dir", default="runs/learning_curves")
    p.add_argument("--out", default=None, help="output stem [default: benchmarks/results/"
                   "learning_curves-<device>]")
    p.add_argument("--fresh", action="store_true", help="retrain runs that exist")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the options the "
                   "CLI does not take yet; train nothing")
    p.add_argument("--combine", nargs="+", metavar="JSON", help="train nothing: write one table "
                   "and plot (--out) from the results of earlier runs (a family's recipe in a later "
                   "file replaces the same recipe of that family in an earlier one)")
    ns = p.parse_args(argv)
    if ns.snapshots < 1 or ns.budget_scale <= 0:
        p.error("--snapshots must be >= 1 and --budget-scale > 0")
    ns.recipes = [r.strip() for r in ns.recipes.split(",") if r.strip()]
    if not ns.recipes or any(r not in RECIPES for r in ns.recipes):
        p.error(f"--recipes must name one or both of {', '.join(RECIPES)} (got {','.join(ns.recipes)!r})")
    return ns


def selected(names: str | None) -> list[tuple[Family, lineup.Entry]]:
    fams = {f.entry: f for f in FAMILIES}
    wanted = [n.strip() for n in names.split(",")] if names else list(fams)
    unknown = [n for n in wanted if n not in fams]
    if unknown:
        print(f"learning_curves: error: unknown families {', '.join(unknown)}; "
              f"known: {', '.join(fams)}", file=sys.stderr)
        raise SystemExit(2)
    entries = {e.name: e for e in lineup.by_name(",".join(wanted))}
    return [(fams[n], entries[n]) for n in wanted]


def cli_train_flags() -> set[str] | None:
    """The option strings `genlab train` takes now (None if the CLI cannot be read)."""
    try:
        from genlab.cli import build_parser

        sub = next(a for a in build_parser()._actions if a.dest == "command")
        return {s for a in sub.choices["train"]._actions for s in a.option_strings}
    except Exception as e:  # noqa: BLE001 - the CLI is being refactored; report, do not crash
        print(f"learning_curves: note: could not read the CLI's options ({e})", file=sys.stderr)
        return None


def unknown_flags(argv: list[str], known: set[str] | None) -> list[str]:
    if known is None:
        return []
    return [a for a in argv if a.startswith("--") and a not in known]


def merge_options(base: tuple[str, ...] | list[str], extra: list[str]) -> list[str]:
    """``base`` flag-value pairs with those ``extra`` also sets replaced by extra's values."""
    pairs = dict(zip(base[::2], base[1::2]))
    pairs.update(zip(extra[::2], extra[1::2]))
    return [a for kv in pairs.items() for a in kv]


def train_argv(entry: lineup.Entry, recipe: str, run_dir: Path, dataset: str, chunk_min: float):
    return [sys.executable, "-m", "genlab", "train", *merge_options(entry.options, RECIPES[recipe](entry)),
            "--dataset", dataset, "--run-dir", str(run_dir), "--epochs", "10000",
            "--max-minutes", f"{chunk_min:g}", "--budget-clock", "cpu", "--quiet"]


def eval_argv(run_dir: Path, ns: argparse.Namespace, fam: Family) -> list[str]:
    return [sys.executable, "-m", "genlab", "eval", str(run_dir), "--k", str(ns.eval_k),
            "--limit", str(ns.eval_limit), "--fid-n", str(ns.fid_n if fam.metric == "fid" else 0),
            "--device", "cpu", "--quiet"]


def run_paired(cmds: dict[str, list[str]], logs: dict[str, Path]) -> dict[str, dict]:
    """Start every command at once (one thread each) and wait for all; CPU seconds and
    exit code of each from os.wait4."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = {}
    for name, argv in cmds.items():
        logs[name].parent.mkdir(parents=True, exist_ok=True)
        with open(logs[name], "a") as log:
            procs[name] = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    out = {}
    for name, p in procs.items():
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen.wait
        out[name] = {"rc": p.returncode, "cpu_s": usage.ru_utime + usage.ru_stime}
    return out


def minutes_to(points: list[tuple[float, float]], goal: float | None) -> float | None:
    """First CPU minute at which the metric reaches ``goal`` (linear between snapshots)."""
    if goal is None:
        return None
    prev = None
    for x, y in points:
        if y <= goal:
            if prev is None or prev[1] <= goal:
                return x
            (x0, y0) = prev
            return x0 + (x - x0) * (y0 - goal) / (y0 - y)
        prev = (x, y)
    return None


def run_family(fam: Family, entry: lineup.Entry, ns: argparse.Namespace, root: Path) -> dict:
    budget = fam.budget_min * ns.budget_scale
    chunk = budget / ns.snapshots
    dirs = {r: root / f"{entry.name}-{ns.dataset}-{r}" for r in ns.recipes}
    if ns.fresh:
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)
    res = {r: {"options": RECIPES[r](entry), "snapshots": [], "cpu_min": 0.0} for r in ns.recipes}
    logs = {r: dirs[r].parent / f"{dirs[r].name}.log" for r in ns.recipes}
    failed: set[str] = set()
    for i in range(1, 2 * ns.snapshots + 1):  # more chunks than planned when chunks stop
        # short of their CPU minutes (before an epoch that would overrun): every run gets its budget
        todo = {r: d for r, d in dirs.items() if res[r]["cpu_min"] < budget and r not in failed}
        if not todo:
            break
        cmds = {r: (train_argv(entry, r, d, ns.dataset, chunk) if i == 1 else
                    [sys.executable, "-m", "genlab", "resume", str(d), "--quiet"])
                for r, d in todo.items()}
        done = run_paired(cmds, logs)
        evals = run_paired({r: eval_argv(d, ns, fam) for r, d in todo.items()}, logs)
        for r, d in todo.items():
            res[r]["cpu_min"] += done[r]["cpu_s"] / 60
            snap = {"snapshot": i, "cpu_min": round(res[r]["cpu_min"], 3),
                    "train_rc": done[r]["rc"], "eval_rc": evals[r]["rc"]}
            ev_path = d / "eval.json"
            if evals[r]["rc"] == 0 and ev_path.exists():
                (d / "snapshots").mkdir(exist_ok=True)
                shutil.copy(ev_path, d / "snapshots" / f"eval-{i}.json")
                ev = json.loads(ev_path.read_text())
                snap.update(metric=ev.get(fam.metric), epochs=_epochs(d))
            res[r]["snapshots"].append(snap)
            if done[r]["rc"] != 0:
                failed.add(r)  # its log says why; the other recipe goes on
            print(f"{entry.name} {r} snapshot {i}: {snap}", flush=True)
    for r in ns.recipes:
        pts = [(s["cpu_min"], s["metric"]) for s in res[r]["snapshots"] if s.get("metric") is not None]
        res[r]["minutes_to_goal"] = minutes_to(pts, fam.goal)
        res[r]["final"] = pts[-1][1] if pts else None
    return {"entry": entry.name, "model": entry.model, "budget_min": budget, "metric": fam.metric,
            "unit": fam.unit, "goal": fam.goal, "sources": list(family_sources(entry.model)),
            "recipes": res}


def _epochs(run_dir: Path) -> int | None:
    try:
        return json.loads((run_dir / "status.json").read_text()).get("epoch")
    except (OSError, ValueError):
        return None


# -- output -------------------------------------------------------------------------------
def at_budget(recipe: dict, budget: float) -> float | None:
    """The metric of the last snapshot within the budget (5% over allowed: a chunk stops at
    the end of an epoch), so that a run given an extra chunk is not compared past it."""
    pts = [s["metric"] for s in recipe["snapshots"]
           if s.get("metric") is not None and s["cpu_min"] <= 1.05 * budget]
    return pts[-1] if pts else None


def table_md(results: list[dict]) -> list[str]:
    def f(v, fmt=".2f"):
        return "—" if v is None else format(v, fmt)
    lines = ["| family | metric | budget (CPU min) | old: at budget | new: at budget | old: min to goal "
             "| new: min to goal | snapshots (old / new) |", "|---|---|---|---|---|---|---|---|"]
    none = {"final": None, "minutes_to_goal": None, "snapshots": []}
    for r in results:
        old, new = r["recipes"].get("old", none), r["recipes"].get("new", none)
        goal = f" (goal {r['goal']:g})" if r["goal"] is not None else ""
        digits = ".3f" if r["unit"] == "bits/dim" else ".2f"
        lines.append(f"| `{r['entry']}` | {r['unit']}{goal} | {r['budget_min']:g} "
                     f"| {f(at_budget(old, r['budget_min']), digits)} "
                     f"| {f(at_budget(new, r['budget_min']), digits)} | {f(old['minutes_to_goal'], '.1f')} "
                     f"| {f(new['minutes_to_goal'], '.1f')} | {len(old['snapshots'])} / "
                     f"{len(new['snapshots'])} |")
    return lines


def plot(results: list[dict], stem: Path) -> str:
    """Write the curves (one panel per family); returns the file written, or why not."""
    try:
        from plotly.subplots import make_subplots
    except ImportError:
        return "no plot: plotly is not installed"
    fig = make_subplots(rows=1, cols=len(results), subplot_titles=[r["entry"] for r in results])
    for col, r in enumerate(results, start=1):
        for name, color in (("old", "#888888"), ("new", "#d62728")):
            pts = [s for s in r["recipes"].get(name, {}).get("snapshots", [])
                   if s.get("metric") is not None]
            fig.add_scatter(x=[s["cpu_min"] for s in pts], y=[s["metric"] for s in pts],
                            mode="lines+markers", name=name, legendgroup=name,
                            showlegend=col == 1, line={"color": color}, row=1, col=col)
        fig.update_xaxes(title_text="CPU minutes", row=1, col=col)
        fig.update_yaxes(title_text=r["unit"], row=1, col=col)
    fig.update_layout(width=320 * len(results), height=360, margin={"t": 40, "b": 40})
    try:
        fig.write_image(stem.with_suffix(".png"))
        return str(stem.with_suffix(".png").name)
    except Exception as e:  # noqa: BLE001 - kaleido (and a browser for it) may be missing
        fig.write_html(stem.with_suffix(".html"), include_plotlyjs="cdn")
        why = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)[:120]
        return f"{stem.with_suffix('.html').name} (no PNG: {why})"


def print_plan(pairs, ns: argparse.Namespace, known: set[str] | None) -> list[str]:
    missing: list[str] = []
    root = Path(ns.runs_dir)
    for fam, entry in pairs:
        budget = fam.budget_min * ns.budget_scale
        print(f"{entry.name} ({entry.model}): {budget:g} CPU min per run, {ns.snapshots} "
              f"snapshots of ~{budget / ns.snapshots:.2f} min, metric {fam.metric} ({fam.unit})"
              + (f", goal {fam.goal:g}" if fam.goal is not None else ""))
        for r in ns.recipes:
            argv = train_argv(entry, r, root / f"{entry.name}-{ns.dataset}-{r}", ns.dataset,
                              budget / ns.snapshots)
            miss = unknown_flags(argv, known)
            missing += [m for m in miss if m not in missing]
            print(f"  {r}: genlab " + " ".join(argv[3:])
                  + (f"\n       not in the CLI yet: {' '.join(miss)}" if miss else ""))
        print("  then, per snapshot: genlab resume RUN; genlab " +
              " ".join(eval_argv(Path("RUN"), ns, fam)[3:]))
        for s in family_sources(entry.model):
            print(f"  source: {s}")
    return missing


def write_outputs(results: list[dict], ns: argparse.Namespace, stem: Path, argv, t0: float,
                  torch_version: str) -> None:
    meta = {"dataset": ns.dataset, "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
            f"torch {torch_version}", "snapshots": ns.snapshots, "eval_k": ns.eval_k,
            "eval_limit": ns.eval_limit, "fid_n": ns.fid_n, "wall_min": round((time.time() - t0) / 60, 1),
            "command": "python benchmarks/learning_curves.py " + " ".join(argv or sys.argv[1:])}
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    figure = plot(results, stem)
    md = [f"# Learning curves per CPU-minute: today's recipe against the papers' ({ns.dataset})", "",
          f"- {meta['machine']}; each run one thread, old and new side by side; x = CPU minutes "
          "of the training processes (start-up included, evaluation not)",
          f"- test metric at each snapshot: {ns.eval_limit} test images, NLL with k = {ns.eval_k}, "
          f"FID of {ns.fid_n} samples (genlab feature nets, not Inception)",
          f"- plot: {figure}", f"- command: `{meta['command']}`", "", *table_md(results), ""]
    stem.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md), flush=True)


def combine(ns: argparse.Namespace, argv) -> int:
    by_family: dict[str, dict] = {}
    metas = []
    for path in ns.combine:
        got = json.loads(Path(path).read_text())
        metas.append(got["meta"])
        for r in got["results"]:
            if r["entry"] in by_family:  # recipe by recipe: a "new"-only file keeps the old curve
                merged = by_family[r["entry"]]
                r = {**merged, **{k: v for k, v in r.items() if k != "recipes"},
                     "recipes": {**merged["recipes"], **r["recipes"]}}
            by_family[r["entry"]] = r
    order = [f.entry for f in FAMILIES]
    results = sorted(by_family.values(), key=lambda r: order.index(r["entry"]) if r["entry"] in order else 99)
    stem = Path(ns.out) if ns.out else RESULTS / "learning_curves-cpu"
    write_outputs(results, ns, stem, argv, time.time() - 60 * sum(m.get("wall_min", 0) for m in metas),
                  metas[0]["machine"].split("torch ")[-1])
    md = stem.with_suffix(".md")
    md.write_text(md.read_text() + "Combined from:\n" + "".join(
        f"- `{m['command']}` ({m['wall_min']} min of wall time)\n" for m in metas))
    return 0


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    if ns.combine:
        return combine(ns, argv)
    NEW_EXTRA[:] = ns.new_options.split()
    pairs = selected(ns.families)
    known = cli_train_flags()
    missing = print_plan(pairs, ns, known)
    if ns.dry_run:
        print("dry run: nothing trained" + (f"; options the CLI does not take yet: "
                                            f"{' '.join(missing)}" if missing else ""))
        return 0
    if missing:
        print(f"learning_curves: error: the CLI does not take {' '.join(missing)} yet; "
              "complete it or change RECIPES/NEW_OVERRIDES", file=sys.stderr)
        return 2
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"  # the eval device is cpu either way
    stem = Path(ns.out) if ns.out else RESULTS / f"learning_curves-{device}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    results: list[dict] = []
    for fam, entry in pairs:  # the outputs are rewritten after each family: a stop loses one
        results.append(run_family(fam, entry, ns, Path(ns.runs_dir)))
        write_outputs(results, ns, stem, argv, t0, torch.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
