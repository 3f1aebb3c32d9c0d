"""benchmarks/lineup.py and benchmarks/zoo.py: the line-up reproduces the shipped runs'
configs, and the table builder reads run directories right (issue 4). No training here:
the tiny runs are written by hand, which is all the table builder reads."""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import lineup  # noqa: E402
import zoo  # noqa: E402
from genlab.cli import build_parser, parse_train  # noqa: E402
from genlab.config import to_dict  # noqa: E402
from genlab.models import MODELS, build_model, upgrade_config  # noqa: E402
from genlab.models.nice import NICEConfig  # noqa: E402
from genlab.models.vae import VAEConfig  # noqa: E402
from genlab.runs import store  # noqa: E402
from genlab.training.train import TrainConfig  # noqa: E402


def _parse(options: list[str], dataset: str):
    """(model name, model config, training config) of a train command's options."""
    rc = parse_train(build_parser().parse_args(["train", "--dataset", dataset, *options]))
    return rc.model, rc.model_config, rc.train


def test_every_lineup_entry_is_a_valid_train_command():
    names = [e.name for e in lineup.LINEUP]
    assert len(names) == len(set(names))
    for e in lineup.LINEUP:
        assert "--epochs" not in e.options and "--max-minutes" not in e.options
        model, _, _ = _parse(list(e.options), "mnist")
        assert model == e.model
    assert [e.name for e in lineup.by_name("gan,vae-20d")] == ["vae-20d", "gan"]  # line-up order
    with pytest.raises(ValueError, match="unknown line-up"):
        lineup.by_name("vae-20d,nope")


def _assert_config_from(options: list[str], run: Path, dataset: str, what: str) -> None:
    stored = json.loads((run / store.CONFIG).read_text())
    # as genlab reads it today (a GAN's old adam_beta1 is train.betas)
    stored["model_config"], stored["train"] = upgrade_config(
        stored["model"], stored["model_config"], json.loads(json.dumps(stored["train"])))
    model, model_cfg, train_cfg = _parse(options, dataset)
    assert model == stored["model"], what
    built = json.loads(json.dumps(to_dict(model_cfg)))
    assert {k: built[k] for k in stored["model_config"]} == stored["model_config"], what
    # a field added after the run was shipped (issue 31's flow options) reads as its default
    fresh = json.loads(json.dumps(to_dict(type(model_cfg)(image_shape=model_cfg.image_shape))))
    assert {k: built[k] for k in set(built) - set(stored["model_config"])} == \
        {k: fresh[k] for k in set(built) - set(stored["model_config"])}, what
    train = json.loads(json.dumps(to_dict(train_cfg)))  # tuples as config.json holds them
    assert {k: train[k] for k in stored["train"]} == stored["train"], what


@pytest.mark.parametrize("dataset", lineup.DATASETS)
def test_every_shipped_run_has_the_config_its_recipe_gives(dataset):
    """A run the budgeted recipe shipped has recipe.json: its recorded options (the line-up
    entry's, plus lineup.budget_flags) give exactly the stored configs, and they are
    the entry's current options or the recipe would retrain it. A run without recipe.json
    was shipped by the fixed-epoch recipe before it, with the training options of before
    issue 12."""
    jobs = {j.run: j for j in lineup.recipe_jobs([dataset])}
    assert len(jobs) == (17 if dataset == "mnist" else 14)
    for run_name, job in jobs.items():
        run = REPO / "checkpoints" / run_name
        if not (run / store.CONFIG).exists():
            continue
        rec_path = run / "recipe.json"
        if rec_path.exists():
            rec = json.loads(rec_path.read_text())
            assert rec["options"] == job.options and rec["budget_min"] == job.budget_min, run_name
            _assert_config_from([*rec["options"], *lineup.budget_flags(rec["budget_min"])],
                                run, dataset, run_name)
            continue
        entry = next(e for e in lineup.LINEUP if run_name == f"{e.name}-{dataset}")
        if entry.legacy_epochs is not None:  # (the old 2-D runs came from a shell function)
            _assert_config_from(entry.legacy_recipe_options(), run, dataset, run_name)


def test_recipe_script_reads_the_lineup(capsys):
    lineup.main([])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "vae-20d-mnist\t8\t--model vae --latent-dim 20 --dataset mnist"
    assert len(lines) == 31 and all(len(line.split("\t")) == 3 for line in lines)
    assert sum(float(line.split("\t")[1]) for line in lines) <= 240  # the recipe's 240 CPU minutes
    assert "benchmarks/recipe.py" in (REPO / "checkpoints" / "recipe.sh").read_text()


# -- the table builder on hand-written runs ---------------------------------------------
def _epoch_records(epochs: list[int], seconds: list[float], ips: float) -> list[dict]:
    out = []
    for ep, t in zip(epochs, seconds):
        out += [{"event": "epoch", "split": "train", "epoch": ep, "seconds": t - 1, "images_per_s": ips},
                {"event": "epoch", "split": "val", "epoch": ep, "seconds": t, "images_per_s": 9999.0}]
    return out


def _fake_run(root: Path, name: str, model: str, cfg, records: list[dict], ev: dict | None,
              status: dict) -> Path:
    run = root / name
    run.mkdir()
    store.write_config(run, model, cfg, TrainConfig(dataset="mnist", max_minutes=5.0))
    (run / store.METRICS).write_text("".join(json.dumps(r) + "\n" for r in records))
    store.atomic_write_json(run / store.STATUS, {"device": "cpu", **status})
    if ev is not None:
        store.atomic_write_json(run / store.EVAL, ev)
    return run


@pytest.fixture
def tiny_runs(tmp_path):
    vae_cfg, nice_cfg = VAEConfig(latent_dim=2, hidden=(8,)), NICEConfig(hidden=(8,))
    # a run stopped after epoch 2 and resumed: seconds restart from 0 in the new process,
    # whose one epoch took longer (150 s) than the first process ran (120 s)
    resumed = [{"event": "step", "split": "train", "epoch": 3, "seconds": 10.0}]
    vae = _fake_run(tmp_path, "vae-2d-mnist", "vae", vae_cfg,
                    _epoch_records([1, 2], [60.0, 120.0], 1000.0) + resumed
                    + _epoch_records([3], [150.0], 1000.0),
                    {"data": "binarised", "elbo": -150.0, "nll_nats": 145.0, "nll_sem": 0.5,
                     "k": 100, "fid": 50.0, "fid_n": 10000, "n_images": 10000,
                     "nll_method": "importance sampling with q(z|x) as proposal"},
                    {"state": "done", "epoch": 3})
    nll = -3350.0
    nice = _fake_run(tmp_path, "nice-mnist", "nice", nice_cfg,
                     _epoch_records([1, 2], [30.0, 90.0], 2000.0) [:3]  # epoch 2 without val
                     + [{"event": "epoch", "split": "val", "epoch": 2, "seconds": 90.0}],
                     {"data": "8-bit", "nll_nats": nll, "nll_sem": 2.0, "k": 100, "fid": 80.0,
                      "fid_n": 10000, "n_images": 10000, "nll_method": "exact change of variables",
                      "bpd": (nll + 784 * math.log(256)) / (784 * math.log(2))},
                     {"state": "done", "epoch": 2})
    failed = _fake_run(tmp_path, "gan-mnist", "vae", vae_cfg, [], None,
                       {"state": "failed", "message": "non-finite loss at step 3"})
    return {"root": tmp_path, "vae": vae, "nice": nice, "failed": failed,
            "params": {k: sum(p.numel() for p in build_model(m, to_dict(c)).parameters())
                       for k, m, c in (("vae", "vae", vae_cfg), ("nice", "nice", nice_cfg))}}


def test_rows_read_from_run_directories(tiny_runs):
    rows = zoo.collect(store.find_runs(tiny_runs["root"]))
    assert [(r["name"], r["dataset"]) for r in rows] == [
        ("vae-2d", "mnist"), ("nice", "mnist"), ("gan", "mnist")]  # line-up order
    vae, nice, failed = rows
    assert vae["params"] == tiny_runs["params"]["vae"] and nice["params"] == tiny_runs["params"]["nice"]
    assert vae["train_min"] == pytest.approx((120 + 150) / 60)  # the resume restarted the clock
    assert nice["train_min"] == pytest.approx(90 / 60)
    assert vae["img_s"] == pytest.approx(1000.0) and vae["epochs"] == 3 and vae["budget_min"] == 5.0
    assert nice["bpd"] == pytest.approx(1.83542, abs=1e-5) and nice["data"] == "8-bit"
    assert failed["data"] is None and failed["state"] == "failed"


def test_markdown_keeps_nats_and_bits_apart(tiny_runs, tmp_path):
    rows = zoo.collect(store.find_runs(tiny_runs["root"]))
    md = zoo.zoo_md(rows, {"source": "x", "command": "zoo", "machine": "test"})
    binarised = md.split("### Binarised")[1].split("###")[0]
    eight_bit = md.split("### 8-bit")[1].split("###")[0]
    header = binarised.strip().splitlines()[2]
    assert "bpd" not in header and "NLL (nats)" in header and "data" in header
    assert "| `vae-2d` | mnist | binarised |" in binarised and "nice" not in binarised
    assert "| bpd |" in eight_bit.strip().splitlines()[2] and "| 1.835 |" in eight_bit
    assert "145.00 ± 0.50 | 100 |" in binarised and "| exact |" in eight_bit
    assert "Not evaluated or failed" in md and "non-finite loss" in md
    assert "time budget 5 min per run" in md and "not comparable with the Inception FID" in md
    md_path, js_path = zoo.write_outputs(rows, {"source": "x", "command": "zoo", "machine": "test"},
                                         tmp_path / "out" / "zoo-test")
    assert md_path.read_text() == md
    data = json.loads(js_path.read_text())
    assert len(data["rows"]) == 3 and {t["met"] for t in data["targets"]} <= {True, False, None}
    assert "Burda et al. 2016" in (tmp_path / "out" / "published.md").read_text()


def test_targets_compare_like_with_like(tiny_runs):
    rows = zoo.collect(store.find_runs(tiny_runs["root"]))
    for r in rows:
        r["name"] = {"vae-2d": "vae-20d"}.get(r["name"], r["name"])
    t = {x["target"].split(" ")[0]: x for x in zoo.targets(rows)}
    assert t["`vae`"]["met"] is False and "145.00 nats" in t["`vae`"]["ours"]  # 145 > 88
    assert t["`nice`"]["met"] is True  # 1.83 <= 4.36 bits/dim within 60 min
    assert t["`realnvp`"]["met"] is None and t["`realnvp`"]["ours"] == "not run"


def test_table_only_on_the_shipped_runs(tmp_path):
    if not (REPO / "checkpoints" / "vae-20d-mnist" / store.EVAL).exists():
        pytest.skip("no shipped runs")
    zoo.main(["--table-only", str(REPO / "checkpoints"), "--out", str(tmp_path / "t")])
    data = json.loads((tmp_path / "t.json").read_text())
    shipped = [p for p in (REPO / "checkpoints").glob("*/" + store.EVAL)]
    assert len(data["rows"]) == len(shipped) >= 22 and all(r["evaluated"] for r in data["rows"])
    assert all((r["bpd"] is None) == (r["data"] != "8-bit" or MODELS[r["model"]][0].caps.likelihood is None)
               for r in data["rows"])


def test_shipped_targets_judge_mnist_bounds_and_both_datasets_comparisons():
    def row(name, ds, **kw):
        return {"name": name, "dataset": ds, "epochs": 3, "k": 1000, "nll_nats": None, "bpd": None,
                "fid": None, "data": "binarised", "latent_dim": 20,
                "model": {"vae-20d": "vae", "vae-planar": "vae-flow-posterior"}.get(name, name), **kw}
    rows = [row("vae-20d", "mnist", nll_nats=90.5, fid=100.0),
            row("vae-flow-prior", "mnist", nll_nats=89.4), row("vae-planar", "mnist", nll_nats=88.9),
            row("nice", "mnist", bpd=4.71), row("vae-flow-decoder", "mnist", bpd=4.5),
            row("gan", "mnist", fid=90.0),
            row("vae-20d", "fashion-mnist", nll_nats=230.0, fid=70.0), row("gan", "fashion-mnist", fid=80.0),
            # lower, but not VAEs comparable with vae-20d: Bernoulli units (no q density), a 2-D latent
            row("binary-vae", "mnist", nll_nats=80.0), row("vae-2d-iwae5", "mnist", model="vae",
                                                           latent_dim=2, nll_nats=85.0)]
    lines = zoo.shipped_targets_md(rows)
    assert "The flow-augmented VAEs are `vae-flow-prior`, `vae-planar`:" in "\n".join(lines)
    table = {ln.split(" | ")[0].lstrip("| "): ln.split(" | ")[1:] for ln in lines if ln.startswith("| `")
             or ln.startswith("| best")}
    assert table["`vae-20d` NLL <= 91 nats"][:2] == ["90.50 nats (`vae-20d`, 3 epochs, k = 1000)", "yes"]
    assert table["best flow-augmented VAE NLL <= 89 nats"][0].startswith("88.90 nats (`vae-planar`")
    assert table["`nice` <= 4.7 bits/dim"][1] == "no"  # 4.71 > 4.7
    assert table["`realnvp` <= 1.40 bits/dim"][:2] == ["not shipped", "—"]
    assert table["`vae-flow-decoder` below `nice` (bits/dim)"][:2] == ["4.500 against 4.710", "yes"]
    gan = table["`gan` FID below `vae-20d`'s (genlab FID)"]
    assert gan[:2] == ["90.0 against 100.0", "yes"] and gan[2:] == ["80.0 against 70.0", "no |"]
    assert table["`vae-20d` NLL <= 91 nats"][3] == "— |"  # Fashion-MNIST: reported, not judged


def test_shipped_runs_name_no_folder_of_the_machine_that_made_them():
    """eval.json's command, status messages, configs: paths are relative to the repository
    (the recipe runs its commands there with relative paths)."""
    pattern = re.compile(r'(?<![\w.])/(?:work|home|root|tmp|Users|mnt|var|opt|srv)/')
    found = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in (REPO / "checkpoints").glob("*/*.json")
             for m in [pattern.search(p.read_text())] if m]
    assert not found, found
