"""Every table of figures in README.md and docs/*.md, and the plots in docs/figures/, made
from the files that hold the figures: checkpoints/*/ (config.json, eval.json, recipe.json),
checkpoints/fid/*.json and benchmarks/results/*.json.

    .venv/bin/python docs/generate.py            # rewrite the tables in place, redraw stale plots
    .venv/bin/python docs/generate.py --check    # exit 1 naming each table or plot that differs

A table sits between two marker lines, and everything between them is this script's:

    <!-- generated: NAME -->
    <!-- /generated -->

NAME is a key of BLOCKS below. Prose around a table cites it instead of repeating its
figures, so a retrained run or a rerun benchmark changes the table here and nowhere else.
A plot is a PNG whose metadata holds a digest of the figures it was drawn from and of the
code that drew it; --check compares the digest, so it needs no browser. Drawing one needs
plotly and Chromium (plotly's own image export, kaleido, is not installed here): the
figure is written as HTML with plotly's script inlined and photographed by Playwright.
tests/test_docs.py runs --check, so a stale figure is a failing test.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import hashlib
import inspect
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"
RESULTS = REPO / "benchmarks" / "results"
FIGURES = REPO / "docs" / "figures"
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

BLOCK_RE = re.compile(r"(<!-- generated: ([a-z0-9-]+) -->\n)(.*?)(<!-- /generated -->)", re.S)
DIGEST_KEY = "genlab-docs-digest"
CHROMIUM = os.environ.get("GENLAB_CHROMIUM", "/usr/bin/chromium")

class SourceError(RuntimeError):
    """A file the docs are made from is missing, unreadable or disagrees with another."""


# -- the files that hold the figures ------------------------------------------------------
def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SourceError(f"{path.relative_to(REPO)}: {e}") from None


def result(name: str) -> dict:
    return read_json(RESULTS / name)


@functools.cache
def genlab():
    """The modules of the genlab package the tables read (the one place naming them):
    data, models (the registry), config, metrics, posterior."""
    import genlab.config as config
    import genlab.data as data
    import genlab.evaluation.metrics as metrics
    import genlab.models as models
    import genlab.evaluation.posterior as posterior
    return data, models, config, metrics, posterior


def family_order() -> list[str]:
    return list(genlab()[1].MODELS)


def family_papers(name: str) -> list[str]:
    """The references in the docstring of a family's model file (its "Reference:" block of
    "> " lines), one string each: the model file is where a family's papers are cited."""
    cls = genlab()[1].MODELS[name][0]
    doc = sys.modules[cls.__module__].__doc__ or ""
    m = re.search(r"^Reference:\n((?:> .*\n?)+)", doc, re.M)
    if not m:
        raise SourceError(f"{cls.__module__}: its docstring has no 'Reference:' block of '> ' "
                          f"lines citing the papers of family {name!r}")
    refs: list[str] = []
    for line in (ln[2:].strip() for ln in m.group(1).splitlines()):
        if refs and not re.match(r"(?:[A-Z]\. ?)+[A-Z][a-z]", line):
            refs[-1] += " " + line  # a reference's next line
        else:
            refs.append(line)
    return refs


def family_defaults(name: str) -> dict:
    return genlab()[1].family_defaults(name)


def family_options(name: str) -> list[tuple[str, str]]:
    """(flag, default as typed) of each model option of a family, in its config's order."""
    import dataclasses

    config = genlab()[2]
    cfg_cls = genlab()[1].MODELS[name][1]
    out = []
    for fl in dataclasses.fields(cfg_cls):
        if not fl.metadata.get("cli", True):
            continue
        default = fl.default if fl.default is not dataclasses.MISSING else fl.default_factory()
        out.append((config.flag(fl.name), config.format_value(default)))
    return out


@functools.cache
def shipped() -> tuple[dict, ...]:
    """Every shipped run: its folder's config.json, eval.json and recipe.json, in the
    line-up's order (benchmarks/lineup.py: dataset by dataset), other folders after it."""
    import lineup

    order = [j.run for j in lineup.recipe_jobs()]
    runs = []
    for cfg_path in sorted(CHECKPOINTS.glob("*/config.json")):
        d = cfg_path.parent
        cfg = read_json(cfg_path)
        ds = cfg["train"]["dataset"]
        runs.append({"run": d.name, "entry": d.name.removesuffix(f"-{ds}"), "dataset": ds,
                     "model": cfg["model"], "config": cfg,
                     "eval": read_json(d / "eval.json") if (d / "eval.json").exists() else {},
                     "recipe": read_json(d / "recipe.json") if (d / "recipe.json").exists() else {}})
    return tuple(sorted(runs, key=lambda r: (order.index(r["run"]) if r["run"] in order
                                             else len(order), r["run"])))


def run(name: str) -> dict:
    for r in shipped():
        if r["run"] == name:
            return r
    raise SourceError(f"checkpoints/{name}: no such shipped run")


# -- formatting -----------------------------------------------------------------------------
def f(v, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def nats(v) -> str:
    return f(v, ".2f")


def bpd(v) -> str:
    return f(v, ".3f")


def fid(v) -> str:
    return f(v, ".1f")


def table(header: list[str], rows: list[list], align: str = "") -> list[str]:
    """A markdown table; ``align`` has one letter per column, "r" for right-aligned."""
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]

    def line(cells) -> str:  # a | inside a cell (p(z|x)) would end it: escaped
        return "| " + " | ".join(re.sub(r"(?<!\\)\|", r"\\|", str(c)) for c in cells) + " |"
    return [line(header), "| " + " | ".join(rule) + " |", *map(line, rows)]


def pixels(r: dict) -> str:
    """How a run's pixels were made: binarisation (dynamic or static, and the seed) or
    dequantisation, read from its config.json."""
    how = r["config"]["model_config"].get("preprocess")
    seed = r["config"]["train"].get("seed")
    if how == "dynamic":
        return f"binarised, dynamic, seed {seed}"
    if how == "static":
        return f"binarised, static, seed {genlab()[0].STATIC_SEED}"
    return f"8-bit, dequantised, seed {seed}"


PIXELS_NOTE = ("*Pixels:* dynamic binarisation draws every training batch afresh from the "
               "run's seed; eval.json's test images are one draw of the test split from a "
               "generator seeded 0, the same images for every run. Static binarisation draws "
               "the split once, from the seed shown. Nats on binarised pixels and bits/dim on "
               "8-bit pixels never share a column.")


def headline(r: dict) -> tuple[str, str]:
    """(figure, what it is) of a shipped run's eval.json: NLL in nats on binarised pixels,
    bits/dim on 8-bit pixels, FID for a model without a likelihood."""
    e = r["eval"]
    if e.get("bpd") is not None:
        return bpd(e["bpd"]), "bits/dim"
    if e.get("nll_nats") is not None:
        return nats(e["nll_nats"]), f"nats, k = {e['k']}"
    return fid(e.get("fid")), "FID (genlab features)"


def headline_value(r: dict) -> float:
    e = r["eval"]
    return next((e[k] for k in ("bpd", "nll_nats", "fid") if e.get(k) is not None), math.inf)


# -- README ---------------------------------------------------------------------------------
def block_families() -> list[str]:
    rows = []
    for m in family_order():
        mine = [r for r in shipped() if r["model"] == m and r["dataset"] == "mnist" and r["eval"]]
        best = min(mine, key=headline_value, default=None)
        if best is None:
            rows.append([f"`{m}`", "not shipped", "—", "—", "<br>".join(family_papers(m))])
            continue
        value, unit = headline(best)
        rows.append([f"`{m}`", f"`{best['run']}`", f"{value} {unit}", pixels(best),
                     "<br>".join(family_papers(m))])
    return [*table(["`--model`", "best shipped MNIST run", "test figure", "pixels", "source"], rows),
            "", "Lower is better. Dynamic binarisation draws every training batch afresh from "
            "the seed shown; the test images are one draw from a generator seeded 0, the same "
            "for every run ([evaluation](docs/evaluation.md)). Every shipped run: "
            "[the line-up](docs/lineup.md)."]


# -- docs/lineup.md -------------------------------------------------------------------------
def _shipped_rows(kind: str) -> list[dict]:
    return [r for r in shipped() if r["eval"].get("data") == kind]


def block_shipped_binarised() -> list[str]:
    rows = []
    for r in _shipped_rows("binarised"):
        e = r["eval"]
        nll = f"{nats(e['nll_nats'])} ± {nats(e['nll_sem'])}"
        rows.append([f"`{r['run']}`", pixels(r), e.get("epoch"), nats(e.get("elbo")), nll,
                     e["k"], nats(e.get("nll_gap_k_tenth")), fid(e.get("fid"))])
    return [*table(["run", "pixels", "epochs", "test ELBO (nats)", "NLL (nats)", "k",
                    "NLL at k/10 minus NLL at k", "FID"], rows, "llrrrrrr"), "", PIXELS_NOTE]


def block_shipped_8bit() -> list[str]:
    rows = []
    for r in _shipped_rows("8-bit"):
        e = r["eval"]
        has = e.get("nll_nats") is not None
        rows.append([f"`{r['run']}`", pixels(r), e.get("epoch"),
                     f"{nats(e['nll_nats'])} ± {nats(e['nll_sem'])}" if has else "—",
                     "exact" if has and "exact" in e.get("proposal", "") else (e["k"] if has else "—"),
                     bpd(e.get("bpd")), fid(e.get("fid"))])
    return table(["run", "pixels", "epochs", "NLL (nats of a density on [0, 1])", "k",
                  "bits/dim", "FID"], rows, "llrrrrr")


def fid_net_accuracy(dataset: str) -> float | None:
    """The test accuracy of the FID feature network shipped for ``dataset``."""
    from genlab.evaluation.fid import FeatureNetError, net_info

    try:
        return net_info(dataset).get("test_accuracy")
    except FeatureNetError:
        return None


def block_shipped_conditional() -> list[str]:
    """The class-conditional runs (a family with an unconditional variant in the registry):
    log p(x|y) with the test labels beside the marginal log p(x), the generative
    classifier (Bayes' rule) beside the FID feature network, FID, and what they cost."""
    models = genlab()[1]
    rows = []
    for r in shipped():
        e = r["eval"]
        if not e or models.unconditional_family(r["model"]) is None:
            continue
        eight_bit = e.get("data") == "8-bit"
        given, marginal = ((bpd(e.get("bpd_given")), bpd(e.get("bpd"))) if eight_bit
                           else (nats(e.get("nll_given_nats")), nats(e.get("nll_nats"))))
        unit = "bits/dim" if eight_bit else "nats"
        has = e.get("classifier_accuracy") is not None
        how = ("exact" if e.get("classifier_k") is None else f"k = {e['classifier_k']}") if has else "—"
        rc = r["recipe"]
        rows.append([f"`{r['run']}`", f"{given} {unit}" if given != "—" else "—",
                     f"{marginal} {unit}" if marginal != "—" else "—",
                     f(e.get("classifier_accuracy"), ".2%") if has else "—",
                     f(e.get("classifier_ece"), ".4f") if has else "—", how,
                     f(e.get("classifier_seconds"), ".0f") if has else "—",
                     f(e.get("fid_net_accuracy") or fid_net_accuracy(r["dataset"]), ".2%"), fid(e.get("fid")),
                     f(rc.get("train_cpu_s", 0) / 60, ".1f") if rc else "—"])
    return [*table(["run", "−log p(x\\|y)", "−log p(x)", "classifier accuracy", "ECE", "log p(x\\|y) by",
                    "classifier (s)", "FID net's accuracy", "FID", "training (CPU min)"], rows,
                   "lrrrrlrrrr"), "",
            "−log p(x|y) scores each test image under its own label; −log p(x) is the marginal "
            "log Σ_y p(x|y) p(y), computed. The classifier is Bayes' rule, argmax_y log p(x|y) + "
            "log p(y), over all ten classes of every test image; ECE is its expected "
            "calibration error. The FID net is the CNN classifier whose features FID uses: what "
            "a discriminative model of the same data reaches. A GAN has no likelihood and so no "
            "classifier."]


def block_lineup() -> list[str]:
    rows, budget, train_s, eval_s = [], 0.0, 0.0, 0.0
    for r in shipped():
        rc = r["recipe"]
        if not rc:
            rows.append([f"`{r['run']}`", "no recipe.json", "—", "—", "—", "—"])
            continue
        opts = " ".join(rc["options"])
        budget += rc["budget_min"]
        train_s += rc["train_cpu_s"]
        eval_s += rc["eval_cpu_s"]
        rows.append([f"`{r['run']}`", f"`{opts}`", f(rc["budget_min"], "g"), rc["epochs"],
                     f(rc["train_cpu_s"] / 60, ".1f"), f(rc["eval_cpu_s"] / 60, ".1f")])
    rows.append(["**all**", "", f(budget, "g"), "", f(train_s / 60, ".1f"), f(eval_s / 60, ".1f")])
    return [*table(["run", "options", "budget (CPU min)", "epochs", "training (CPU min)",
                    "evaluation (CPU min)"], rows, "llrrrr"), "",
            "From each run's recipe.json. A resumed run's training time counts the part after "
            "the resume only."]


def _tracked_bytes(folder: Path) -> tuple[int, int]:
    """(files, bytes) under folder that git tracks (every file there outside a checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", str(folder.relative_to(REPO))], cwd=REPO,
                             capture_output=True, check=True).stdout
        files = [REPO / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in folder.rglob("*") if p.is_file()]
    files = [p for p in files if p.exists()]
    return len(files), sum(p.stat().st_size for p in files)


def block_lineup_size() -> list[str]:
    n, size = _tracked_bytes(CHECKPOINTS)
    runs = len(shipped())
    nets = sorted(p.stem for p in (CHECKPOINTS / "fid").glob("*.pt"))
    return table(["shipped runs", "FID feature networks", "files", "size (MB)"],
                 [[runs, ", ".join(nets), n, f(size / 1e6, ".2f")]], "rlrr")


# -- docs/evaluation.md ---------------------------------------------------------------------
def block_true_posterior() -> list[str]:
    rows = []
    for r in shipped():
        e = r["eval"]
        if e.get("nll_exact_nats") is None:
            continue
        rows.append([f"`{r['run']}`", pixels(r), e["nll_exact_n_images"], e["nll_exact_converged"],
                     f"**{nats(e['nll_exact_nats'])}**", nats(e["nll_nats_same_images"]),
                     nats(e["nll_nats_same_images"] - e["nll_exact_nats"]),
                     nats(e["kl_q_posterior"]), nats(e.get("elbo")), nats(e.get("nll_gap_k_tenth"))])
    return [*table(["run", "pixels", "images N", "converged", "−log p(x) by quadrature",
                    "IW estimate, k = 1000", "estimate minus exact", "mean KL(q ‖ p(z|x))",
                    "test ELBO", "NLL at k/10 minus NLL at k"], rows, "llrrrrrrrr"), "",
            "Nats per image on the first N test images (the test split's one draw seeded 0), "
            "except the last two columns, which are over the whole test split."]


def block_eval_settings() -> list[str]:
    """The constants evaluation runs with, read from the code that uses them."""
    metrics, posterior = genlab()[3:]
    spec = posterior.GridSpec()
    sig = inspect.signature(metrics.latent_stats).parameters
    run_sig = inspect.signature(metrics.evaluate_run).parameters
    rows = [
        ["the k/10 check warns when the estimates at k/10 and k differ by more than",
         f"{posterior.IW_GAP_WARN:g} nats"],
        ["quadrature: halving the grid step changes log p(x) and the ELBO by less than",
         f"{spec.tol:g} nats"],
        ["quadrature: q(z|x) integrates to 1 on the grid within", f"{spec.q_tol:g}"],
        ["the True posterior page's importance-weighted estimates at k =",
         ", ".join(map(str, posterior.IW_KS))],
        ["an active unit: Cov_x(E_q[z]) above", f"{sig['threshold'].default:g}"],
        ["model samples scored by FID (`--fid-n`)", f"{run_sig['fid_n'].default:,}"],
    ]
    return table(["setting", "value"], rows, "lr")


def block_fid_floor() -> list[str]:
    """benchmarks/results/fid_floor.json (the floor the docs quote) and any fid_floor-*.json
    beside it (other seeds: the same quantiles, or the floor is not stable)."""
    rows, commands = [], []
    for path in sorted(RESULTS.glob("fid_floor*.json"), key=lambda p: (p.stem != "fid_floor", p.stem)):
        ff = read_json(path)
        commands.append(f"`{ff['command'].strip()}` ({ff['date'][:10]})")
        for r in ff["rows"]:
            q = r["quantiles"]
            two = functools.partial(f, fmt=".2f")
            rows.append([r["dataset"], f"{r['splits']:,} (seed {r['seed']})", f"{r['half']:,}",
                         two(q["0.05"]) + "–" + two(q["0.95"]), two(q["0.5"]),
                         two(r["random_min"]) + "–" + two(r["random_max"]),
                         two(r["first_vs_second_half"])])
    rows.sort(key=lambda r: r[0] != "mnist")
    return [*table(["dataset", "random halves", "images a half", "5 %–95 %", "median",
                    "lowest–highest", "first half against second"], rows, "llrrrrr"), "",
            "From " + "; ".join(commands) + "."]


def block_fid_nets() -> list[str]:
    rows = []
    for p in sorted((CHECKPOINTS / "fid").glob("*.json")):
        n = read_json(p)
        rows.append([n["dataset"], f(100 * n["test_accuracy"], ".2f") + " %", n["feature_dim"],
                     f"{n['params']:,}", n["epochs"]])
    return table(["dataset", "test accuracy", "features", "parameters", "epochs"], rows, "lrrrr")


def block_eval_speed() -> list[str]:
    e = result("eval_speed-cpu.json")
    return [*table(["run", "test images", "k", "eval (s)", "of which log p(x) (s)",
                    "images/s", "FID (s)", "threads", "date"],
                   [[f"`{e['run']}`", f"{e['n_images']:,}", e["k"], f(e["eval_seconds"], ".0f"),
                     f(e["nll_seconds"], ".0f"), f(e["nll_img_s"], ".0f"), f(e["fid_seconds"], ".1f"),
                     e["threads"], e["date"][:10]]], "lrrrrrrrl"), "",
            "Timed by `benchmarks/eval_speed.py` on the run shipped then, since retrained: the "
            "time, not its figure, is what this table is for."]


# -- docs/benchmarks.md ---------------------------------------------------------------------
def block_published() -> list[str]:
    rows = []
    for p in result("published.json")["rows"]:
        value = ("≤ " if p["bound"] else "") + p["value"] + " " + p["unit"]
        rows.append([p["model"], p["pixels"], value, p["paper"] + (f", {p['where']}" if p["where"] else "")])
    return table(["model", "pixels", "figure", "source"], rows)


def vs_papers() -> list[dict]:
    """Each published MNIST figure beside the shipped run that measures the same thing."""
    out = []
    for p in result("published.json")["rows"]:
        for entry in p["compare_with"]:
            r = run(f"{entry}-mnist")
            out.append({"paper": p, "run": r, "ours": r["eval"]["bpd" if p["unit"] == "bits/dim"
                                                                 else "nll_nats"]})
    return out


def block_vs_papers() -> list[str]:
    rows = []
    for c in vs_papers():
        p, r = c["paper"], c["run"]
        ours = (bpd if p["unit"] == "bits/dim" else nats)(c["ours"])
        rows.append([p["model"], p["pixels"], ("≤ " if p["bound"] else "") + p["value"],
                     f"`{r['run']}`", pixels(r), ours, p["unit"], r["eval"].get("epoch")])
    return [*table(["published", "their pixels", "theirs", "shipped run", "our pixels", "ours",
                    "unit", "our epochs"], rows, "llrllrlr"), "",
            "Sources: the next table. Theirs trained for hundreds to thousands of epochs, "
            "mostly on GPUs; ours on minutes of one CPU thread ([the line-up](lineup.md)). "
            "Statically binarised test sets differ from ours: read those rows as the size of "
            "the gap, not a ranking."]


def _zoo_rows(kind: str) -> list[list]:
    rows = []
    for r in result("zoo-cpu.json")["rows"]:
        if r.get("data") != kind:
            continue
        exact = "exact" in (r.get("nll_method") or "")
        nll = "—" if r["nll_nats"] is None else f"{nats(r['nll_nats'])} ± {nats(r['nll_sem'])}"
        common = [f"`{r['name']}`", r["dataset"], r["epochs"], f(r["train_min"], ".1f")]
        if kind == "binarised":
            rows.append([*common, nats(r["elbo"]), nll, r["k"], fid(r["fid"])])
        else:
            rows.append([*common, nll, "exact" if exact else (r["k"] if r["nll_nats"] else "—"),
                         bpd(r["bpd"]), fid(r["fid"])])
    return rows


def block_zoo_binarised() -> list[str]:
    return table(["model", "dataset", "epochs", "train (min)", "test ELBO (nats)", "NLL (nats)",
                  "k", "FID"], _zoo_rows("binarised"), "llrrrrrr")


def block_zoo_8bit() -> list[str]:
    return table(["model", "dataset", "epochs", "train (min)", "NLL (nats, [0, 1])", "k",
                  "bits/dim", "FID"], _zoo_rows("8-bit"), "llrrrrrr")


def block_zoo_meta() -> list[str]:
    z = result("zoo-cpu.json")
    parts = [result(f"zoo-{ds}-cpu.json")["meta"] for ds in ("mnist", "fashion-mnist")]
    budgets = sorted({m["budget_min"] for m in parts})
    return table(["budget a model (min)", "k", "FID samples", "machine", "commands"],
                 [[", ".join(f"{b:g}" for b in budgets), ", ".join(sorted({str(m["k"]) for m in parts})),
                   ", ".join(sorted({f"{m['fid_n']:,}" for m in parts})), z["meta"]["machine"],
                   "<br>".join(f"`{m['command']}`" for m in (*parts, z["meta"]))]], "rrrll")


def block_learning_curves() -> list[str]:
    from learning_curves import at_budget

    lc = result("learning_curves-cpu.json")
    rows = []
    for r in lc["results"]:
        digits = bpd if r["unit"] == "bits/dim" else nats
        old, new = (at_budget(r["recipes"][k], r["budget_min"]) if k in r["recipes"] else None
                    for k in ("old", "new"))
        still = "yes" if "new" in r["recipes"] and is_default(r["model"], r["recipes"]["new"]["options"]) \
            else "**no**: rerun it"
        rows.append([f"`{r['entry']}`", r["unit"], f(r["budget_min"], "g"), digits(old),
                     digits(new), digits(None if old is None or new is None else old - new), still])
    m = lc["meta"]
    return [*table(["family", "unit", "CPU minutes", "old recipe", "new: the defaults",
                    "old minus new", "new is today's default"], rows, "llrrrrl"), "",
            f"MNIST, {m['eval_limit']:,} test images a snapshot (NLL at k = {m['eval_k']}, "
            f"FID of {m['fid_n']:,} samples), {m['machine']}; binarised models dynamically, "
            "seed 0. Lower is better: a positive \"old minus new\" is the gain of the defaults."]


def _option_pairs(options: list[str]) -> dict[str, str]:
    return dict(zip(options[::2], options[1::2]))


def _same(a: str, b: str) -> bool:
    """Two option values as typed: "2" and "2.0", "0.9,0.999" and "0.9, 0.999" agree."""
    try:
        return [float(x) for x in a.split(",")] == [float(x) for x in b.split(",")]
    except ValueError:
        return a == b


def is_default(model: str, options: list[str]) -> bool:
    """Whether a recipe's options set every training default the family has today."""
    config = genlab()[2]
    given = _option_pairs(options)
    return all(_same(given.get(config.flag(k), "\0"), config.format_value(v))
               for k, v in family_defaults(model).items())


def block_recipes_tried() -> list[str]:
    from learning_curves import at_budget

    combined = result("learning_curves-cpu.json")["results"]
    old_recipe = {r["entry"]: _option_pairs(r["recipes"]["old"]["options"]) for r in combined
                  if "old" in r["recipes"]}
    rows = []
    for path in sorted(RESULTS.glob("learning_curves-*.json")):
        if path.name == "learning_curves-cpu.json":
            continue
        for r in read_json(path)["results"]:
            rec = r["recipes"]
            if "new" not in rec:
                continue
            new = _option_pairs(rec["new"]["options"])
            # a file with no old run of its own: what changed from the old recipe of the others
            old = _option_pairs(rec["old"]["options"]) if "old" in rec else old_recipe.get(r["entry"], {})
            changed = " ".join(f"{k} {v}" for k, v in new.items() if old.get(k) != v)
            digits = bpd if r["unit"] == "bits/dim" else nats
            o = at_budget(rec["old"], r["budget_min"]) if "old" in rec else None
            n = at_budget(rec["new"], r["budget_min"])
            mark = "**yes**" if is_default(r["model"], rec["new"]["options"]) else ""
            rows.append([f"`{r['entry']}`", path.stem.removeprefix("learning_curves-"),
                         f"`{changed}`", f(r["budget_min"], "g"), digits(o), digits(n),
                         digits(None if o is None or n is None else o - n), mark])
    return table(["family", "results file", "\"new\" recipe: what it changed", "CPU minutes",
                  "old", "new", "old minus new", "today's default"], rows, "lllrrrrl")


def block_train_speed() -> list[str]:
    t = result("train_speed-cpu.json")
    med = sorted(t["fit_forloop_img_s"])[len(t["fit_forloop_img_s"]) // 2]
    return table(["model", "batch", "threads", "bare loop (img/s)", "`fit()` (img/s)",
                  "`fit()`, for-loop Adam step (img/s)", "repeats", "date"],
                 [[t["model"], t["batch_size"], t["threads"], f(t["bare_median_img_s"], ",.0f"),
                   f(t["fit_median_img_s"], ",.0f"), f(med, ",.0f"), t["repeats"], t["date"][:10]]],
                 "lrrrrrrl")


def block_app_timings() -> list[str]:
    a = result("app_browser.json")
    rows = []
    for page, v in a["first_visits"].items():
        rows.append([page, f(v["median_s"], ".2f"),
                     f(a["first_visits_streamlit_run"][page]["median_s"], ".2f"),
                     f(a["first_visits_browser_cache"][page]["median_s"], ".2f"),
                     f(a["pages"][page]["cached_s"], ".2f")])
    slider = [[run_, f(s["browser_round_trip_ms"]["median"], ".0f"), f(s["server_ms"]["median"], ".1f")]
              for run_, s in a["sliders"].items()]
    return [*table(["page", "first visit, `python app.py` (s)", "first visit, `streamlit run` (s)",
                    "first visit, browser cache warm (s)", "cached page, server (s)"], rows, "lrrrr"),
            "", *table(["run", "slider key press to new image (ms)", "of which server (ms)"],
                       slider, "lrr"), "",
            f"Medians, headless Chromium, {a['cpus']} CPU cores, load average "
            f"{f(a['load_avg'], '.1f')}–{f(a['load_avg_end'], '.1f')} (`benchmarks/app_browser.py`)."]


def block_chart_library() -> list[str]:
    """The same measurements before (Apache ECharts, the tree before issue 27) and after
    (plotly), one run of benchmarks/app_browser.py each, one after the other."""
    before, after = result("app_browser-echarts.json"), result("app_browser.json")
    rows = []
    for page, v in after["first_visits"].items():
        b = before["first_visits"].get(page, {}).get("median_s")
        a = v["median_s"]
        rows.append([page, f(b, ".2f"), f(a, ".2f"), f(None if b is None else a / b, ".2f"),
                     f"{v['goal_s']:g}", "yes" if v["met"] else "**no**"])
    fresh = [f(before.get("fresh_home_s", {}).get("median"), ".2f"),
             f(after.get("fresh_home_s", {}).get("median"), ".2f")]
    switch = [[run_, f(before.get("run_switch_s", {}).get(run_), ".2f"), f(s, ".2f")]
              for run_, s in after.get("run_switch_s", {}).items() if run_ != "load_avg"]
    slider = [[run_, f(before["sliders"].get(run_, {}).get("browser_round_trip_ms", {}).get("median"), ".0f"),
               f(s["browser_round_trip_ms"]["median"], ".0f")] for run_, s in after["sliders"].items()]
    return [*table(["page", "first visit, ECharts (s)", "first visit, plotly (s)", "plotly / ECharts",
                    "goal (s)", "met"], rows, "lrrrrl"), "",
            *table(["", "ECharts", "plotly"], [["fresh Home session (s)", *fresh]], "lrr"), "",
            *table(["run switch on the Latent explorer", "ECharts (s)", "plotly (s)"], switch, "lrr"), "",
            *table(["slider round trip", "ECharts (ms)", "plotly (ms)"], slider, "lrr"), "",
            f"Medians, headless Chromium, `python app.py`, {after['cpus']} CPU cores; load average "
            f"{f(before['load_avg'], '.1f')}–{f(before['load_avg_end'], '.1f')} during the ECharts run, "
            f"{f(after['load_avg'], '.1f')}–{f(after['load_avg_end'], '.1f')} during the plotly run "
            "(`benchmarks/app_browser.py` in each tree, one after the other)."]


def block_run_switches() -> list[str]:
    """Run switches on the Latent explorer, this tree against the ECharts tree, in turn on a
    fresh server per round (benchmarks/app_browser.py --baseline)."""
    r = result("app_browser-switches.json")["run_switches_paired"]
    before, after = r["baseline"], r["this"]
    rows = [[run_, f(b, ".2f"), f(after["median_s"].get(run_), ".2f"),
             f(after["median_s"].get(run_, float("nan")) / b, ".2f")]
            for run_, b in before["median_s"].items()]
    loads = before["load_avg"] + after["load_avg"]
    return [*table(["run switch, fresh server", f"ECharts, {r['baseline_rev']} (s)", "plotly (s)",
                    "plotly / ECharts"], rows, "lrrr"), "",
            f"Medians of {r['rounds']} rounds, the two trees in turn, each round a fresh server "
            "and browser context, the time from opening the Run picker (typing the run's name "
            f"included) to the page's last change; load average {f(min(loads), '.1f')}–"
            f"{f(max(loads), '.1f')}."]


def block_app_load() -> list[str]:
    """A classroom on one server (benchmarks/app_load.py): per number of sessions, and the soak."""
    a = result("app_load.json")
    rows = []
    for n, v in a["by_sessions"].items():
        rows.append([n, f(v["slider_round_trip_ms"]["median"], ".0f"), f(v["slider_round_trip_ms"]["p95"], ".0f"),
                     f(v["page_switch_s"]["median"], ".1f"), f(v["page_switch_s"]["p95"], ".1f"),
                     str(v["errors"]["count"]),
                     f(v["server_rss_mb"]["peak"], ".0f"), f(v["cpu_s_per_session_minute"], ".1f"),
                     f"{f(v['load_avg'][0], '.0f')}–{f(v['load_avg'][1], '.0f')}"])
    ratio = a["slider_p95_ratio"]
    out = [*table(["sessions", "slider round trip, median (ms)", "p95 (ms)", "page switch, median (s)",
                   "p95 (s)", "errors", "server RSS peak (MB)", "server CPU s / session-minute",
                   "load average"], rows, "rrrrrrrrr"), "",
           f"Goals: no error at any N; p95 slider round trip at the most sessions within "
           f"{f(a['goals']['slider_p95_ratio'], '.0f')}x of one session (here "
           f"{f(ratio['ratio'], '.1f')}x). Every browser ran on the server's own "
           f"{a['cpus']} cores, beside two trainings (`benchmarks/app_load.py --sessions "
           f"{','.join(a['by_sessions'])}`)."]
    soak = RESULTS / "app_load-soak.json"
    if soak.exists():
        s = read_json(soak)
        g = s["rss_growth"]
        out += ["", *table(["soak", "loops", "RSS after the first loop (MB)", "after the last (MB)", "growth",
                            "goal", "errors", "RSS once every session closed (MB)"],
                           [[f"{f(s['settings']['soak_minutes'], '.0f')} min, {s['settings']['soak_sessions']} sessions",
                             str(g["loops"]), f(g["first_mb"], ".0f"), f(g["last_mb"], ".0f"),
                             f"{100 * g['growth']:.1f} %", f"{100 * g['goal']:.0f} %", str(s["errors"]["count"]),
                             f(s["release"]["samples"][-1]["rss_mb"], ".0f")]], "lrrrrrrr"),
                "", "![the soak's server memory](../benchmarks/results/app_load-soak.png)"]
    return out


def block_contest() -> list[str]:
    """genlab against normflows and pythae (benchmarks/contest.py)."""
    c = result("contest.json")
    rows = [[contest, name, f"{r['params']:,}", f(r["cpu_s"], ".0f"), f(r["images_per_cpu_s"], ".0f"),
             "bits/dim" if contest == "flows" else "IWAE NLL (nats)", f(r["score"], ".3f")]
            for contest, group in c["results"].items() for name, r in group.items()]
    m = c["meta"]
    budgets = ", ".join(f"{k} {v:g}" for k, v in m["budgets_min"].items())
    return [*table(["contest", "contender", "parameters", "CPU s", "images / CPU s", "metric", "score"],
                   rows, "llrrrlr"), "",
            f"CPU minutes per contender: {budgets}; one thread each, the two of a contest at once; "
            f"the full MNIST test split; IWAE k = {m['k']}; lower is better in both metrics "
            "(`benchmarks/contest.py`)."]


# -- docs/distributed.md --------------------------------------------------------------------
def block_ddp_speed() -> list[str]:
    d = result("ddp_speed-cpu.json")
    rows = []
    for r in d["rows"]:
        default = family_defaults(r["model"]).get("batch_size")
        batch = f"{r['global_batch']:,}" + (" (default)" if r["global_batch"] == default else "")
        rows.append([f"`{r['model']}`", batch, f(r["one_img_s"], ",.0f"), f(r["two_img_s"], ",.0f"),
                     f(r["ratio"], ".2f") + "x", f(r["ceiling"], ".2f") + "x"])
    return [*table(["model", "global batch", "1 process (img/s)", "2 processes (img/s)",
                    "speed-up", "ceiling"], rows, "lrrrrr"), "",
            f"{d['rounds']} paired rounds of {d['steps']} steps, medians; torch {d['torch']}. "
            "Ceiling: two processes stepping on half the batch each with no communication at all."]


# -- docs/training.md -----------------------------------------------------------------------
DEFAULT_COLUMNS = ("optimizer", "lr", "betas", "eps", "weight_decay", "batch_size", "clip_grad",
                   "lr_schedule", "warmup_steps", "lr_gamma", "lr_floor", "ema_decay",
                   "kl_warmup_epochs")


def block_family_defaults() -> list[str]:
    def cell(v):
        if v is None:
            return ""
        return ",".join(format(x, "g") for x in v) if isinstance(v, (tuple, list)) else format(v, "g") \
            if isinstance(v, float) else str(v)
    rows = [[f"`{m}`", *(cell(family_defaults(m).get(c)) for c in DEFAULT_COLUMNS)]
            for m in family_order()]
    return [*table([f"`--{c.replace('_', '-')}`" for c in ("model", *DEFAULT_COLUMNS)], rows), "",
            "A blank cell: the option's own default (`python -m genlab train --help`)."]


def block_family_options() -> list[str]:
    rows = [[f"`{m}`", " ".join(f"`{fl} {v}`" for fl, v in family_options(m))] for m in family_order()]
    return [*table(["`--model`", "its own options, with their defaults"], rows), "",
            "Allowed values and help: `python -m genlab train --help`, or the Train page."]


BLOCKS: dict[str, Callable[[], list[str]]] = {
    "family-options": block_family_options,
    "families": block_families,
    "lineup": block_lineup,
    "lineup-size": block_lineup_size,
    "shipped-binarised": block_shipped_binarised,
    "shipped-8bit": block_shipped_8bit,
    "shipped-conditional": block_shipped_conditional,
    "true-posterior": block_true_posterior,
    "eval-settings": block_eval_settings,
    "fid-floor": block_fid_floor,
    "fid-nets": block_fid_nets,
    "eval-speed": block_eval_speed,
    "published": block_published,
    "vs-papers": block_vs_papers,
    "zoo-meta": block_zoo_meta,
    "zoo-binarised": block_zoo_binarised,
    "zoo-8bit": block_zoo_8bit,
    "learning-curves": block_learning_curves,
    "recipes-tried": block_recipes_tried,
    "train-speed": block_train_speed,
    "app-timings": block_app_timings,
    "chart-library": block_chart_library,
    "run-switches": block_run_switches,
    "app-load": block_app_load,
    "contest": block_contest,
    "ddp-speed": block_ddp_speed,
    "family-defaults": block_family_defaults,
}


# -- plots ----------------------------------------------------------------------------------
def data_learning_curves() -> dict:
    return {r["entry"]: {"unit": r["unit"], **{k: [(s["cpu_min"], s["metric"]) for s in v["snapshots"]
                                                  if s.get("metric") is not None]
                                               for k, v in r["recipes"].items()}}
            for r in result("learning_curves-cpu.json")["results"]}


def draw_learning_curves(data: dict):
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=3, subplot_titles=list(data), horizontal_spacing=0.08,
                        vertical_spacing=0.16)
    for i, (entry, d) in enumerate(data.items()):
        row, col = divmod(i, 3)
        for name, label, color in (("old", "old recipe", "#888888"), ("new", "today's default", "#d62728")):
            pts = d.get(name, [])
            fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                            name=label, legendgroup=name, showlegend=i == 0,
                            line={"color": color}, row=row + 1, col=col + 1)
        fig.update_xaxes(title_text="CPU minutes", row=row + 1, col=col + 1)
        fig.update_yaxes(title_text=d["unit"], row=row + 1, col=col + 1)
    fig.update_layout(width=1100, height=620, margin={"t": 50, "b": 50, "l": 60, "r": 20},
                      legend={"orientation": "h", "y": 1.1, "x": 0.5, "xanchor": "center"},
                      title={"text": "MNIST test figure against the training process's CPU minutes "
                                     "(lower is better)", "x": 0.5, "y": 0.995})
    return fig


def data_vs_papers() -> list[dict]:
    return [{"label": f"{c['paper']['model']} ({c['paper']['pixels'].split(' (')[0]})",
             "unit": c["paper"]["unit"], "theirs": float(c["paper"]["value"]), "bound": c["paper"]["bound"],
             "run": c["run"]["run"], "ours": c["ours"], "our_pixels": pixels(c["run"])}
            for c in vs_papers()]


def draw_vs_papers(data: list[dict]):
    from plotly.subplots import make_subplots

    units = list(dict.fromkeys(d["unit"] for d in data))
    fig = make_subplots(rows=1, cols=len(units), subplot_titles=units, horizontal_spacing=0.3)
    for col, unit in enumerate(units, start=1):
        part = [d for d in data if d["unit"] == unit]
        ys = [f"{d['run']} ({d['our_pixels'].removeprefix('binarised, ')})<br>vs {d['label']}"
              for d in part]
        fig.add_scatter(x=[d["theirs"] for d in part], y=ys, mode="markers", name="published",
                        marker={"symbol": "diamond", "size": 12, "color": "#1f77b4"},
                        legendgroup="p", showlegend=col == 1, row=1, col=col)
        fig.add_scatter(x=[d["ours"] for d in part], y=ys, mode="markers", name="shipped (genlab)",
                        marker={"size": 12, "color": "#d62728"}, legendgroup="o",
                        showlegend=col == 1, row=1, col=col)
        for d, y in zip(part, ys):
            fig.add_shape(type="line", x0=d["theirs"], x1=d["ours"], y0=y, y1=y,
                          line={"color": "#bbbbbb"}, row=1, col=col)
        fig.update_xaxes(title_text=f"{unit} on the MNIST test split (lower is better)", row=1, col=col)
    fig.update_layout(width=1100, height=360, margin={"t": 60, "b": 50, "l": 20, "r": 20},
                      legend={"orientation": "h", "y": 1.18, "x": 0.5, "xanchor": "center"})
    return fig


PLOTS: dict[str, tuple[Callable, Callable]] = {
    "learning-curves.png": (data_learning_curves, draw_learning_curves),
    "shipped-vs-papers.png": (data_vs_papers, draw_vs_papers),
}


def plot_digest(name: str) -> str:
    data_fn, draw_fn = PLOTS[name]
    h = hashlib.sha256(json.dumps(data_fn(), sort_keys=True).encode())
    h.update(inspect.getsource(draw_fn).encode())
    return h.hexdigest()[:16]


def png_digest(path: Path) -> str | None:
    from PIL import Image
    try:
        with Image.open(path) as im:
            return im.text.get(DIGEST_KEY)
    except OSError:
        return None


def render(figures: dict[str, object], out: Path) -> None:
    """Photograph each plotly figure in Chromium: {file name: figure} -> PNGs in ``out``."""
    from PIL import Image, PngImagePlugin
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            for name, (fig, digest) in figures.items():
                w, h = fig.layout.width, fig.layout.height
                page = browser.new_page(viewport={"width": w, "height": h}, device_scale_factor=1.5)
                page.set_content(fig.to_html(include_plotlyjs=True, full_html=True,
                                             config={"staticPlot": True}))
                page.wait_for_selector(".main-svg")
                tmp = out / f".{name}"
                page.locator(".plot-container").first.screenshot(path=str(tmp))
                page.close()
                info = PngImagePlugin.PngInfo()
                info.add_text(DIGEST_KEY, digest)
                with Image.open(tmp) as im:
                    im.convert("RGB").quantize(256).save(out / name, optimize=True, pnginfo=info)
                tmp.unlink()
        finally:
            browser.close()


# -- the documents --------------------------------------------------------------------------
def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def regenerate(text: str, where: str) -> tuple[str, list[str], list[str]]:
    """(new text, names of the blocks that changed, errors) for one document."""
    changed, errors = [], []

    def sub(m: re.Match) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            errors.append(f"{where}: unknown generated block {name!r} (known: {', '.join(BLOCKS)})")
            return m.group(0)
        try:
            body = "\n".join(BLOCKS[name]())
        except SourceError as e:
            errors.append(f"{where}: block {name!r}: {e}")
            return m.group(0)
        new = f"{m.group(1)}\n{body}\n\n{m.group(4)}"
        if new != m.group(0):
            changed.append(name)
        return new

    return BLOCK_RE.sub(sub, text), changed, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 naming every table or plot that differs")
    ap.add_argument("--no-plots", action="store_true", help="rewrite the tables only")
    ns = ap.parse_args(argv)
    stale, errors, used = [], [], set()
    for doc in documents():
        where = str(doc.relative_to(REPO))
        text = doc.read_text()
        used.update(m.group(2) for m in BLOCK_RE.finditer(text))
        new, changed, errs = regenerate(text, where)
        errors += errs
        stale += [f"{where}: table {name!r} differs from the files it is made from" for name in changed]
        if changed and ns.check:
            diff = difflib.unified_diff(text.splitlines(), new.splitlines(), where, "generated",
                                        n=0, lineterm="")
            print("\n".join(list(diff)[:24]), file=sys.stderr)
        elif changed:
            doc.write_text(new)
    errors += [f"block {name!r} is in no document (docs/generate.py BLOCKS)"
               for name in BLOCKS if name not in used]
    todo = {}
    for name in PLOTS:
        try:
            digest = plot_digest(name)
        except SourceError as e:
            errors.append(f"docs/figures/{name}: {e}")
            continue
        if png_digest(FIGURES / name) != digest:
            stale.append(f"docs/figures/{name}: drawn from other figures or code than today's")
            todo[name] = digest
    if todo and not ns.check and not ns.no_plots:
        render({n: (PLOTS[n][1](PLOTS[n][0]()), d) for n, d in todo.items()}, FIGURES)
    for msg in errors:
        print(f"error: {msg}", file=sys.stderr)
    for msg in stale:
        print(f"stale: {msg}" if ns.check else f"rewritten: {msg.split(':')[0]} "
              f"({msg.split(': ', 1)[1].split(' differs')[0].split(':')[0]})",
              file=sys.stderr if ns.check else sys.stdout)
    if ns.check and stale:
        print("run `.venv/bin/python docs/generate.py` to regenerate them", file=sys.stderr)
    return 1 if errors or (ns.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
