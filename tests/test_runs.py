"""Run directories: checkpoints that round-trip and refuse code, resume, config
checks, unique run names and atomic writes (issue 2)."""
from __future__ import annotations

import json
import os
import pathlib
import threading

import pytest
import torch

from contract import check_checkpoint_round_trip
from genlab.config import TrainConfig, to_dict
from genlab.models import build_model
from genlab.models.vae import VAEConfig
from genlab.runs import store
from genlab.runs.store import RunError
from genlab.training.loop import fit
from genlab.training.train import train_run

TINY = {"latent_dim": 4, "hidden": [32]}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models; a shared CPU


@pytest.fixture()
def run_dir(mnist_small, tmp_path):
    """A finished one-epoch run of a tiny VAE (config.json, checkpoint.pt, metrics)."""
    torch.manual_seed(0)
    model = build_model("vae", TINY)
    tc = TrainConfig(epochs=1, batch_size=100, limit=500)
    store.write_config(tmp_path, "vae", model.cfg, tc)
    fit(model, mnist_small[0], None, tc, run_dir=tmp_path)
    return tmp_path


# -- checkpoints -----------------------------------------------------------------------
def test_checkpoint_round_trip_identical_outputs(mnist_small, tmp_path):
    check_checkpoint_round_trip("vae", TINY, tmp_path, mnist_small[0])
    model, ckpt, rc = store.load_model(tmp_path)
    assert rc.model == "vae" and rc.model_config == VAEConfig(latent_dim=4, hidden=(32,))
    assert rc.train == TrainConfig(epochs=1, batch_size=64, limit=len(mnist_small[0]))
    assert not model.training
    z = torch.randn(6, 4)
    again, _, _ = store.load_model(tmp_path)
    assert torch.equal(model.decode(z), again.decode(z))
    x = mnist_small[1].x[:8].float() / 255
    assert torch.equal(model.encode(x), again.encode(x))
    assert set(ckpt) >= {"kind", "config", "model", "optimizers", "epoch", "step"}


class RunsCode:
    """Unpickling this calls Path(marker).touch(): what a hostile checkpoint would do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_checkpoint_that_would_run_code_is_refused(run_dir, tmp_path_factory):
    marker = tmp_path_factory.mktemp("marker") / "pwned"
    ckpt = store.load_checkpoint(run_dir / store.CHECKPOINT)
    evil = run_dir / store.CHECKPOINT
    torch.save({**ckpt, "model": {**ckpt["model"], "extra": RunsCode(marker)}}, evil)
    with pytest.raises(RunError) as ei:
        store.load_model(run_dir)
    msg = str(ei.value)
    assert str(evil) in msg and "refused" in msg and "Unsupported global" in msg, msg
    assert "\n" not in msg and "\x1b" not in msg and len(msg) < 300, msg
    assert not marker.exists(), "loading the checkpoint ran code"
    # the payload is real: an unsafe load would have run it
    torch.load(evil, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("damage, says", [
    ("truncated", "truncated or corrupt"), ("empty", "empty"), ("random", "truncated or corrupt"),
    ("not-a-dict", "not a genlab checkpoint"), ("missing", "no checkpoint")])
def test_damaged_checkpoints_give_clear_errors(run_dir, damage, says):
    path = run_dir / store.CHECKPOINT
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "random":
        path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8,
                                       generator=torch.Generator().manual_seed(0)).numpy().tobytes())
    elif damage == "not-a-dict":
        torch.save([torch.zeros(3)], path)
    else:
        path.unlink()
    with pytest.raises(RunError) as ei:
        store.load_model(run_dir)
    msg = str(ei.value)
    assert str(path) in msg and says in msg and "\n" not in msg and len(msg) < 300, msg


def test_another_models_checkpoint_is_refused(run_dir, mnist_small, tmp_path_factory):
    ckpt = store.load_checkpoint(run_dir / store.CHECKPOINT)
    path = run_dir / store.CHECKPOINT
    torch.save({**ckpt, "kind": "realnvp"}, path)  # a different kind of model
    with pytest.raises(RunError, match="holds a 'realnvp' model but config.json says 'vae'"):
        store.load_model(run_dir)
    other = tmp_path_factory.mktemp("other")  # same kind, other sizes
    model = build_model("vae", {"latent_dim": 7, "hidden": [16]})
    tc = TrainConfig(epochs=1, batch_size=250, limit=250)
    store.write_config(other, "vae", model.cfg, tc)
    fit(model, mnist_small[0], None, tc, run_dir=other)
    path.write_bytes((other / store.CHECKPOINT).read_bytes())
    with pytest.raises(RunError) as ei:
        store.load_model(run_dir)
    assert "weights do not fit the model in config.json" in str(ei.value) and str(path) in str(ei.value)


# -- config.json -----------------------------------------------------------------------
@pytest.mark.parametrize("edit, words", [
    (lambda c: c["model_config"].update(colour="red"), ["colour"]),
    (lambda c: c["model_config"].update(latent_dim=0), ["latent_dim", ">= 1"]),
    (lambda c: c["model_config"].update(hidden="wide"), ["hidden"]),
    (lambda c: c.update(model="transformer"), ["unknown model", "transformer"]),
    (lambda c: c.pop("train"), ["expected keys"]),
])
def test_config_that_does_not_match_gives_clear_error(run_dir, edit, words):
    path = run_dir / store.CONFIG
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))
    with pytest.raises(RunError) as ei:
        store.load_model(run_dir)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg and all(w in msg for w in words), msg


SHIPPED = sorted(p.parent for p in (pathlib.Path(__file__).resolve().parents[1] / "checkpoints").glob(
    "*/config.json"))


def test_every_shipped_config_reads_into_its_dataclasses():
    """config.json files written before TrainConfig grew fields (precision, compile) read
    as they are, the new fields at their defaults, every written value kept."""
    assert len(SHIPPED) >= 20
    for run in SHIPPED:
        raw = json.loads((run / store.CONFIG).read_text())
        rc = store.read_config(run)
        assert rc.model == raw["model"] and type(rc.model_config).__name__.endswith("Config")
        for part, cfg in (("model_config", rc.model_config), ("train", rc.train)):
            as_json = json.loads(json.dumps(to_dict(cfg)))  # tuples as the lists JSON holds
            written = dict(raw[part])
            if "adam_beta1" in written:  # a GAN's, now the first of train.betas (issue 12)
                assert rc.train.betas == (written.pop("adam_beta1"), 0.999), run.name
            assert {k: as_json[k] for k in written} == written, (run.name, part)
        assert (rc.train.precision, rc.train.compile) == ("fp32", False)


def test_config_that_is_not_json(run_dir):
    (run_dir / store.CONFIG).write_text('{"model": "vae", ')
    with pytest.raises(RunError, match="not valid JSON"):
        store.read_config(run_dir)


def test_bad_training_config_is_refused_on_resume(run_dir):
    path = run_dir / store.CONFIG
    cfg = json.loads(path.read_text())
    cfg["train"]["lr"] = -1
    path.write_text(json.dumps(cfg))
    with pytest.raises(RunError) as ei:
        train_run(run_dir, resume=True, epochs=2)
    assert str(ei.value) == f"{path} train: lr must be > 0 and <= 1 (got -1)"
    assert store.read_json(run_dir / store.STATUS)["message"] == str(ei.value)  # failed, says why


# -- resume ----------------------------------------------------------------------------
def _new_run(path, data_root, epochs: int):
    tc = TrainConfig(epochs=epochs, batch_size=100, limit=500, data_root=str(data_root), n_samples=4)
    path.mkdir()
    store.write_config(path, "vae", VAEConfig(**{**TINY, "hidden": (32,)}), tc)
    return path


def test_resume_continues_at_the_right_epoch_exactly(data_root, tmp_path):
    straight = _new_run(tmp_path / "straight", data_root, epochs=2)
    assert train_run(straight)["state"] == "done"
    split = _new_run(tmp_path / "split", data_root, epochs=1)
    assert train_run(split)["state"] == "done"
    config_before = (split / store.CONFIG).read_bytes()
    status = train_run(split, resume=True, epochs=2)
    assert status["state"] == "done" and status["epoch"] == 2
    assert (split / store.CONFIG).read_bytes() == config_before  # same config, untouched
    a = store.load_checkpoint(straight / store.CHECKPOINT)
    b = store.load_checkpoint(split / store.CHECKPOINT)
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"] == 10
    # Adam's state came back too (its step count is 10, not 5) and resuming repeats an
    # uninterrupted run exactly: same weights, bit for bit
    assert b["optimizers"][0]["state"][0]["step"] == 10
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    records, bad = store.read_metrics(split / store.METRICS)
    assert bad == 0
    ends = [(r["epoch"], r["split"], r["step"]) for r in records if r["event"] == "epoch"]
    assert ends == [(1, "train", 5), (1, "val", 5), (2, "train", 10), (2, "val", 10)]
    straight_recs = store.read_metrics(straight / store.METRICS)[0]
    drop = ("seconds", "cpu_seconds", "images_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in records] == \
           [{k: v for k, v in r.items() if k not in drop} for r in straight_recs]
    assert sorted(p.name for p in (split / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]


def test_resume_of_a_finished_run_says_so(run_dir):
    cfg = json.loads((run_dir / store.CONFIG).read_text())
    status = train_run(run_dir, resume=True)
    assert status["state"] == "done" and "already trained 1 epochs" in status["message"]
    assert cfg == json.loads((run_dir / store.CONFIG).read_text())


# -- run names and atomic writes ---------------------------------------------------------
def test_new_run_dir_never_repeats(tmp_path):
    seq = [store.new_run_dir(tmp_path, "same") for _ in range(3)]
    assert [p.name for p in seq] == ["same", "same-1", "same-2"]
    got, barrier = [], threading.Barrier(16)

    def make():
        barrier.wait()
        got.append(store.new_run_dir(tmp_path, "race"))

    threads = [threading.Thread(target=make) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 16 and len(set(got)) == 16 and all(p.is_dir() for p in got)


def test_claim_run_dir_refuses_a_run(run_dir):
    with pytest.raises(RunError, match="already holds a run"):
        store.claim_run_dir(run_dir)


def test_atomic_writes_leave_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    store.atomic_write_json(path, {"a": 1})
    store.save_checkpoint(tmp_path / "checkpoint.pt", {"kind": "vae", "model": {}, "config": {}})
    store.write_status(tmp_path, state="running")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "status.json"]

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)  # the rename fails: the old file stays whole
    with pytest.raises(OSError, match="disk full"):
        store.atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text())["state"] == "running"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "status.json"]


def test_a_shipped_metrics_file_keeps_every_epoch_and_evenly_spaced_steps(tmp_path):
    recs = []
    for ep in (1, 2, 3):
        recs += [{"event": "step", "split": "train", "epoch": ep, "step": s}
                 for s in range((ep - 1) * 300, ep * 300)]
        recs += [{"event": "epoch", "split": "train", "epoch": ep}, {"event": "epoch", "split": "val", "epoch": ep}]
    src = tmp_path / "metrics.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"torn')
    assert store.compact_metrics(src, tmp_path / "out.jsonl", max_steps=10) == 890
    out, bad = store.read_metrics(tmp_path / "out.jsonl")
    steps = [r["step"] for r in out if r["event"] == "step"]
    assert bad == 0 and len(steps) == 10 and steps[0] == 0 and steps[-1] == 899
    assert steps == sorted(steps) and max(b - a for a, b in zip(steps, steps[1:])) <= 101
    assert [r for r in out if r["event"] != "step"] == [r for r in recs if r["event"] != "step"]
    assert store.compact_metrics(src, src, max_steps=5000) == 0  # fewer than the cap: all kept
    assert len(store.read_metrics(src)[0]) == len(recs)


# -- run folders as the listings read them (issue 24) ------------------------------------------
def test_a_run_folder_whose_config_was_deleted_is_listed_as_broken_with_the_reason(run_dir, tmp_path_factory):
    from genlab.runs import status

    root = tmp_path_factory.mktemp("listing")
    kept = root / "vae-kept"
    gone = root / "vae-config-gone"
    for dst in (kept, gone):
        dst.mkdir()
        for f in (store.CONFIG, store.CHECKPOINT, store.METRICS):
            (dst / f).write_bytes((run_dir / f).read_bytes())
    (gone / store.CONFIG).unlink()
    (root / "notes").mkdir()  # a folder with no run file in it is not a run
    (root / "loose.txt").write_text("x")
    assert [p.name for p in store.find_runs(root)] == ["vae-kept"]  # what pickers can open
    assert sorted(p.name for p in status.run_dirs(root)) == ["vae-config-gone", "vae-kept"]
    s = status.summarize(gone)
    assert s.state == "broken" and s.model is None
    assert s.message == (f"{gone / store.CONFIG}: missing (the folder holds metrics.jsonl, checkpoint.pt); "
                         "without it the run cannot be rebuilt, opened or resumed: retrain it")
    assert status.summarize(kept).state != "broken"


@pytest.mark.parametrize("text, says", [
    ('{"nll_nats": 8', "not valid JSON (Expecting ',' delimiter"),
    ("[1, 2]", "expected a JSON object of figures (got a JSON list)"),
    (b"\xff\xfe garbage", "unreadable ("),
])
def test_an_unreadable_eval_json_says_what_is_wrong_with_it(run_dir, text, says):
    from genlab.runs import status

    path = run_dir / store.EVAL
    assert status.read_eval(run_dir) == (None, None)  # none yet: nothing to say
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    ev, why = status.read_eval(run_dir)
    assert ev is None and why.startswith(f"{path}: {says}") and "\n" not in why
    s = status.summarize(run_dir)
    assert s.eval is None and s.eval_error == why and s.state != "broken"
    path.write_text('{"nll_nats": 85.5}')
    assert status.summarize(run_dir).eval == {"nll_nats": 85.5}


def test_the_summary_shows_the_grid_at_the_models_default_temperature(tmp_path):
    from genlab.models import model_entry
    from genlab.runs import status

    flow, vae = tmp_path / "flow", tmp_path / "vae"
    for run, model in ((flow, "realnvp"), (vae, "vae")):
        run.mkdir()
        cfg = model_entry(model)[1]()
        store.write_config(run, model, cfg, TrainConfig(epochs=3))
        for epoch in (1, 2):
            for t in (1.0, 0.7):
                grid = store.sample_grid(run, epoch, t)
                grid.parent.mkdir(parents=True, exist_ok=True)
                grid.write_bytes(b"png")
    assert status.default_temperature(model_entry("realnvp")[0]) == 0.7
    assert status.default_temperature(model_entry("binary-vae")[0]) == 1.0  # declares none
    s = status.summarize(flow)
    assert s.sample == store.sample_grid(flow, 2, 0.7) and s.sample_temperature == 0.7
    s = status.summarize(vae)  # a VAE's default is T = 1: the plain grid
    assert s.sample == store.sample_grid(vae, 2) and s.sample_temperature == 1.0
    before = status.run_stamp(flow)
    store.sample_grid(flow, 3, 0.7).write_bytes(b"png")  # a new tempered grid: a new cache key
    assert status.run_stamp(flow) != before
    assert status.summarize(flow).sample == store.sample_grid(flow, 3, 0.7)
