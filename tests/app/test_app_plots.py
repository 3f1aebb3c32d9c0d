"""genlab.plots: the data shaping and figures behind the app's pages, without streamlit."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from genlab import plots, runs


def _records(n_steps: int = 6, steps_per_epoch: int = 3) -> list[dict]:
    recs = []
    for step in range(1, n_steps + 1):
        epoch = (step - 1) // steps_per_epoch + 1
        recs.append({"event": "step", "split": "train", "epoch": epoch, "step": step,
                     "loss": 100.0 - step, "elbo": step - 100.0, "recon": 90.0 - step,
                     "kl": 10.0, "seconds": 0.1 * step, "images_per_s": 1e3})
        if step % steps_per_epoch == 0:
            for split, loss in (("train", 99.0 - step), ("val", 98.0 - step)):
                recs.append({"event": "epoch", "split": split, "epoch": epoch, "step": step,
                             "loss": loss, "elbo": -loss, "recon": loss - 10, "kl": 10.0,
                             "seconds": 1.0})
    return recs


def test_curves_one_panel_per_metric_train_per_step_val_per_epoch():
    recs = _records()
    fig = plots.curves_figure(recs)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["loss", "recon", "kl"]  # elbo = -loss is left out
    train, val = fig.data[0], fig.data[1]  # the loss panel
    assert list(train.x) == [1, 2, 3, 4, 5, 6]
    assert list(train.y) == [99.0, 98.0, 97.0, 96.0, 95.0, 94.0]
    assert list(val.x) == [3, 6] and list(val.y) == [95.0, 92.0] and list(val.customdata) == [1, 2]
    assert len(fig.data) == 2 * len(titles)
    assert [t.showlegend for t in fig.data].count(True) == 2  # one legend entry per split


def test_curves_are_strided_to_a_bounded_size():
    recs = [{"event": "step", "split": "train", "step": s, "loss": float(s)} for s in range(1, 10_001)]
    fig = plots.curves_figure(recs)
    assert len(fig.data[0].x) <= plots.MAX_POINTS
    assert fig.data[0].x[0] == 1 and fig.data[0].x[1] - fig.data[0].x[0] == 5


def test_metric_names_put_loss_first_and_skip_bookkeeping():
    assert plots.metric_names(_records()) == ["loss", "elbo", "recon", "kl"]
    assert plots.metric_names([{"d_loss": 1.0, "loss": 2.0, "ok": True, "epoch": 3}]) == ["loss", "d_loss"]


def test_metrics_rows_are_metrics_by_source():
    recs = _records()
    summary = {"last_train": recs[-2], "last_val": recs[-1],
               "eval": {"split": "test", "epoch": 2, "n_images": 10, "k": 5, "loss": 91.0,
                        "elbo": -91.0, "recon": 81.0, "kl": 10.0, "nll_nats": 90.0,
                        "active_units": 2, "code_variance": [0.1, 0.2]}}
    rows = plots.metrics_rows(summary)
    assert [r["metric"] for r in rows] == ["loss", "elbo", "recon", "kl"]
    assert rows[0] == {"metric": "loss", "train": 93.0, "val": 92.0, "test": 91.0}
    old_style = {"last_train": None, "last_val": None,
                 "eval": {"split": "test", "test_loss": 5.0, "test_kl": 1.0, "seconds": 3.0}}
    assert plots.metrics_rows(old_style) == [{"metric": "loss", "test": 5.0},
                                             {"metric": "kl", "test": 1.0}]


def test_eval_line_states_units():
    line = plots.eval_line({"split": "test", "n_images": 100, "data": "8-bit", "k": 1,
                            "nll_nats": -2000.0, "nll_sem": 3.0, "bpd": 1.234,
                            "nll_method": "exact change of variables"})
    assert "nats (exact change of variables)" in line and "1.234 bits/dim" in line
    assert "8-bit data" in line
    assert "k=50" in plots.eval_line({"nll_nats": 90.0, "k": 50,
                                      "nll_method": "importance sampling, k=50"})


def test_runs_roots_parsing(monkeypatch):
    monkeypatch.delenv("GENLAB_RUNS", raising=False)
    assert [str(p) for p in plots.runs_roots()] == ["runs", "checkpoints"]
    monkeypatch.setenv("GENLAB_RUNS", f"/a{os.pathsep}/b")
    assert [str(p) for p in plots.runs_roots()] == ["/a", "/b"]
    assert [str(p) for p in plots.runs_roots(" x, y ,x,, ")] == ["x", "y"]


def test_run_state_running_dead_failed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    base = {"path": tmp_path, "error": None, "metrics": [{}]}
    alive = {**base, "status": {"state": "running", "pid": os.getpid(), "epoch": 2,
                                "total_epochs": 4, "progress": 0.375, "eta_s": 75, "total_steps": 8}}
    assert plots.run_state(alive) == ("running", "epoch 2/4, 38%, about 1m 15s left")
    state, msg = plots.run_state({**base, "status": {"state": "running", "pid": dead.pid}})
    assert state == "interrupted" and f"python -m genlab resume {tmp_path}" in msg
    assert plots.run_state({**base, "status": {"state": "failed", "message": "boom"}}) == ("failed", "boom")
    assert plots.run_state({**base, "error": "bad config"}) == ("broken", "bad config")


def test_read_image(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (4, 4), 128).save(buf, format="PNG")
    (tmp_path / "ok.png").write_bytes(buf.getvalue())
    (tmp_path / "bad.png").write_bytes(buf.getvalue()[:20])
    assert plots.read_image(tmp_path / "ok.png") == (buf.getvalue(), None)
    data, err = plots.read_image(tmp_path / "bad.png")
    assert data is None and err.startswith("bad.png:")
    assert plots.read_image(None) == (None, None)


def test_run_card_of_a_broken_run_never_raises(tmp_path):
    (tmp_path / runs.CONFIG).write_text("[1, 2")
    (tmp_path / runs.METRICS).write_bytes(b'{"loss": 1.0, "event": "step", "split": "train", '
                                          b'"step": 1}\n\xff\xfe garbage\n')
    card = plots.run_card(tmp_path)
    assert card["state"] == "broken" and "not valid JSON" in card["message"]
    assert card["summary"]["bad_metric_lines"] == 1 and card["figure"] is not None


def test_run_stamp_changes_with_the_files(tmp_path):
    (tmp_path / runs.CONFIG).write_text("{}")
    before = plots.run_stamp(tmp_path)
    with open(tmp_path / runs.METRICS, "a") as f:
        f.write(json.dumps({"loss": 1.0}) + "\n")
    assert plots.run_stamp(tmp_path) != before


def test_datasets_status(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).touch()
    status = {r["dataset"]: r for r in plots.datasets_status(tmp_path)}
    assert status["mnist"]["present"] and not status["fashion-mnist"]["present"]
    assert status["svhn"]["where"] == "train_32x32.mat, test_32x32.mat"
    assert status["fashion-mnist"]["where"].startswith("FashionMNIST/raw/train-images")


@pytest.mark.parametrize("s,text", [(5, "5s"), (75, "1m 15s"), (3725, "1h 02m")])
def test_fmt_seconds(s, text):
    assert plots.fmt_seconds(s) == text


def test_units_note_names_the_data_kind():
    assert plots.units_note({"model": "vae", "config": {"preprocess": "dynamic"}}) == \
        "nats per image on binarised data"
    assert "8-bit" in plots.units_note({"model": "vae", "config": {"preprocess": "dequantize"}})
    assert plots.units_note({"model": "no-such-model"}) == ""
