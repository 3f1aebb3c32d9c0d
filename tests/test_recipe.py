"""benchmarks/recipe.py, the budgeted recipe of the shipped runs: what it decides for each
run (train, resume, ship, skip) from the folders it finds, and the sample grids it keeps."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from genlab.cli import build_parser, parse_train
from genlab.runs import store

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks")]

import lineup  # noqa: E402
import recipe  # noqa: E402


def _grids(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for e in range(1, n + 1):
        (folder / f"epoch_{e:03d}.png").write_bytes(b"png")


def test_prune_keeps_evenly_spaced_grids_with_the_last_per_temperature(tmp_path):
    _grids(tmp_path / "samples", 41)
    _grids(tmp_path / "samples" / "t0.7", 3)
    assert recipe.prune_grids(tmp_path, 6) == 35
    kept = sorted(p.name for p in (tmp_path / "samples").glob("epoch_*.png"))
    assert kept == [f"epoch_{e:03d}.png" for e in (1, 9, 17, 25, 33, 41)]
    assert len(list((tmp_path / "samples" / "t0.7").glob("*.png"))) == 3  # fewer than 6: all kept
    assert recipe.prune_grids(tmp_path, 1) == 5 + 2
    assert [p.name for p in (tmp_path / "samples").glob("epoch_*.png")] == ["epoch_041.png"]


def test_grey_grids_rewrites_grey_rgb_grids_as_greyscale_with_the_same_pixels(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    colour = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    (tmp_path / "samples" / "t0.7").mkdir(parents=True)
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "samples" / "epoch_001.png")
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "samples" / "t0.7" / "epoch_001.png")
    Image.fromarray(colour, "RGB").save(tmp_path / "samples" / "epoch_002.png")
    before = (tmp_path / "samples" / "epoch_001.png").stat().st_size
    assert recipe.grey_grids(tmp_path) == 2
    for png in ("epoch_001.png", "t0.7/epoch_001.png"):
        im = Image.open(tmp_path / "samples" / png)
        assert im.mode == "L" and np.array_equal(np.asarray(im), grey)
    assert (tmp_path / "samples" / "epoch_001.png").stat().st_size < before
    kept = Image.open(tmp_path / "samples" / "epoch_002.png")
    assert kept.mode == "RGB" and np.array_equal(np.asarray(kept), colour)  # colour stays
    assert recipe.grey_grids(tmp_path) == 0 and not list(tmp_path.rglob(".*.tmp.png"))


def test_what_the_recipe_does_with_each_run(tmp_path, capsys):
    """No folder: train. An unfinished scratch run: resume. A finished one: ship. A
    shipped run whose recipe.json holds the current options and budget and whose config is
    what they give today: skip; other options (the line-up changed): train again; a scratch
    run whose config is not today's (a default changed): train again."""
    jobs = lineup.recipe_jobs(["mnist"])[:4]
    scratch, dest = tmp_path / "scratch", tmp_path / "dest"
    status = {jobs[1].run: "stopped", jobs[2].run: "done"}
    def as_today(run, job):  # the config.json `genlab train` writes for the job today
        rc = parse_train(build_parser().parse_args(["train", *job.options,
                                                    *lineup.budget_flags(job.budget_min)]))
        store.write_config(run, rc.model, rc.model_config, rc.train)

    for job in jobs[1:3]:
        (scratch / job.run).mkdir(parents=True)
        as_today(scratch / job.run, job)
        (scratch / job.run / "status.json").write_text(json.dumps({"state": status[job.run]}))
    shipped = dest / jobs[3].run
    shipped.mkdir(parents=True)
    (shipped / "eval.json").write_text("{}")
    as_today(shipped, jobs[3])
    (shipped / "recipe.json").write_text(json.dumps({"options": jobs[3].options,
                                                     "budget_min": jobs[3].budget_min}))
    argv = ["--datasets", "mnist", "--only", ",".join(j.run for j in jobs), "--scratch", str(scratch),
            "--dest", str(dest), "--dry-run"]
    assert recipe.main(argv) == 0
    said = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert said == ["train", "resume", "ship", "skip"]
    (shipped / "recipe.json").write_text(json.dumps({"options": jobs[3].options[:-2],
                                                     "budget_min": jobs[3].budget_min}))
    recipe.main(argv)
    assert capsys.readouterr().out.splitlines()[3].split()[0] == "train"
    (scratch / jobs[2].run / "config.json").write_text("{}")  # trained with other defaults
    recipe.main(argv)
    assert capsys.readouterr().out.splitlines()[2].split()[0] == "train"


def test_a_resumed_run_gets_what_is_left_of_its_cpu_budget(tmp_path):
    """The budget is CPU time: an interrupted run's minutes so far are its last epoch's
    cpu_seconds (wall seconds only in records from before the loop wrote them)."""
    lines = [{"event": "epoch", "split": "train", "epoch": 1, "seconds": 300.0, "cpu_seconds": 120.0},
             {"event": "step", "split": "train", "epoch": 2, "seconds": 400.0, "cpu_seconds": 150.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + "{torn")
    assert recipe.trained_minutes(tmp_path) == pytest.approx(2.0)
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"event": "epoch", "seconds": 90.0}) + "\n")
    assert recipe.trained_minutes(tmp_path) == pytest.approx(1.5)
    assert recipe.trained_minutes(tmp_path / "missing") == 0.0


def test_a_run_trained_before_a_default_changed_is_stale(tmp_path):
    """is_current asks the CLI what the job's options give today: a config that differs from
    it in one default (the EMA decay here) is retrained."""
    job = next(j for j in lineup.recipe_jobs(["mnist"]) if j.run == "vae-2d-mnist")
    options = [*job.options, *lineup.budget_flags(job.budget_min)]
    rc = parse_train(build_parser().parse_args(["train", *options]))
    store.write_config(tmp_path, rc.model, rc.model_config, rc.train)
    assert recipe.trained_as_now(tmp_path, options)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["train"]["ema_decay"] = 0.5
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert not recipe.trained_as_now(tmp_path, options)
    assert not recipe.trained_as_now(tmp_path / "missing", options)
