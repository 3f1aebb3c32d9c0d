"""genlab.runs.status, genlab.figures.tables and genlab.figures: the run states, data shaping and
charts behind the app's pages, without streamlit (and the pages' image reading)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from genlab.figures import curves, tables
from genlab.runs import store, status
from genlab.runs.status import RunSummary
from pages.ui.widgets import read_image, run_card


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


def _sent(fig) -> dict:
    """The figure as the JSON st.plotly_chart sends the browser (plain JSON: no NaN)."""
    return json.loads(json.dumps(json.loads(fig.to_json()), allow_nan=False))


def _panels(spec: dict) -> list[str]:
    return [a["text"] for a in spec["layout"]["annotations"]]


def test_curves_one_panel_per_metric_train_per_step_val_per_epoch():
    recs = _records()
    fig = curves.curves_figure(recs)
    spec = _sent(fig)
    assert _panels(spec) == ["loss", "recon", "kl"]  # elbo = -loss is left out
    lay = spec["layout"]
    assert all(f"xaxis{i}" in lay and f"yaxis{i}" in lay for i in ("", 2, 3)) and "xaxis4" not in lay
    train, val = spec["data"][0], spec["data"][1]  # the loss panel
    assert (train["xaxis"], train["yaxis"], val["xaxis"]) == ("x", "y", "x")
    assert train["name"] == "train (per step)" and train["mode"] == "lines"
    assert train["x"] == [1, 2, 3, 4, 5, 6] and train["y"] == [99.0, 98.0, 97.0, 96.0, 95.0, 94.0]
    assert val["name"] == "validation (per epoch)" and (val["x"], val["y"]) == ([3, 6], [95.0, 92.0])
    assert val["customdata"] == [1, 2] and "epoch" in val["hovertemplate"]  # the hover gives the epoch
    assert [t["xaxis"] for t in spec["data"]] == ["x", "x", "x2", "x2", "x3", "x3"]
    assert (spec["data"][2]["x"][0], spec["data"][2]["y"][0]) == (1, 89.0)  # recon, train
    shown = [t["name"] for t in spec["data"] if t.get("showlegend", True)]
    assert shown == ["train (per step)", "validation (per epoch)"]  # once per split
    assert [t["legendgroup"] for t in spec["data"][:2]] == ["train (per step)", "validation (per epoch)"]
    assert [lay[f"xaxis{i}"].get("title", {}).get("text") for i in ("", 2, 3)] == ["step"] * 3  # one row
    assert lay["xaxis2"]["matches"] == lay["xaxis3"]["matches"] == "x"  # one step range: zoom one, zoom all
    assert fig.layout.height > 260
    tall = curves.curves_figure(recs, max_cols=2)  # 3 panels, 2 a row: the title only at the bottom
    tl = _sent(tall)["layout"]
    assert [tl[f"xaxis{i}"].get("title", {}).get("text") for i in ("", 2, 3)] == [None, None, "step"]
    assert tall.layout.height > fig.layout.height
    assert tl["yaxis"]["domain"] == tl["yaxis2"]["domain"] and tl["yaxis3"]["domain"][1] < tl["yaxis"]["domain"][0]
    assert tl["xaxis4"]["visible"] is False  # the empty fourth cell draws no axes
    title_y = [a["y"] for a in tl["annotations"]]
    assert title_y[0] == tl["yaxis"]["domain"][1] and title_y[2] == tl["yaxis3"]["domain"][1]
    one = curves.curves_figure(recs[:1])
    assert one.data[0].mode == "markers"  # one point: a marker, not an invisible line


def test_a_steady_metric_is_not_drawn_at_zero():
    recs = [{"event": "step", "split": "train", "step": s, "loss": 10.0 - s, "lr": 3e-4} for s in (1, 2, 3)]
    lay = curves.curves_figure(recs).layout
    assert lay.yaxis2.range == (1.5e-4, 4.5e-4)  # plotly's own: 3e-4 +- 1, lr drawn at "0"
    assert lay.yaxis.range is None  # a changing metric: plotly's autorange


def test_curves_are_strided_to_a_bounded_size_and_long_ones_are_webgl():
    recs = [{"event": "step", "split": "train", "step": s, "loss": float(s)} for s in range(1, 10_001)]
    train = curves.curves_figure(recs).data[0]
    assert len(train.x) <= curves.MAX_POINTS
    assert train.x[0] == 1 and train.x[1] - train.x[0] == 5
    assert train.type == "scattergl"  # 2000 points: WebGL
    assert curves.curves_figure(recs[:500]).data[0].type == "scatter"  # a few hundred: SVG


def test_the_figure_builders_docstring_examples_run():
    import doctest

    from genlab.figures import charts
    for mod in (curves, charts):
        got = doctest.testmod(mod)
        assert got.attempted >= 6 and got.failed == 0, mod.__name__
    for f in (curves.curves_figure, curves.live_figure, curves.overlay_figure, curves.bound_figure):
        assert f">>> fig = {f.__name__}(" in f.__doc__ and ">>> fig.show()" in f.__doc__, f.__name__
    assert ">>> fig = panel_grid(" in curves.panel_grid.__doc__


def test_metric_names_put_loss_first_and_skip_bookkeeping():
    assert tables.metric_names(_records()) == ["loss", "elbo", "recon", "kl"]
    assert tables.metric_names([{"d_loss": 1.0, "loss": 2.0, "ok": True, "epoch": 3}]) == ["loss", "d_loss"]


def test_metrics_rows_are_metrics_by_source():
    recs = _records()
    summary = RunSummary(Path("r"), "r", last_train=recs[-2], last_val=recs[-1],
                         eval={"split": "test", "epoch": 2, "n_images": 10, "k": 5, "loss": 91.0,
                               "elbo": -91.0, "recon": 81.0, "kl": 10.0, "nll_nats": 90.0,
                               "active_units": 2, "code_variance": [0.1, 0.2]})
    rows = tables.metrics_rows(summary)
    assert [r["metric"] for r in rows] == ["loss", "elbo", "recon", "kl"]
    assert rows[0] == {"metric": "loss", "train": 93.0, "val": 92.0, "test": 91.0}
    old_style = RunSummary(Path("r"), "r", eval={"split": "test", "test_loss": 5.0, "test_kl": 1.0,
                                                 "seconds": 3.0})
    assert tables.metrics_rows(old_style) == [{"metric": "loss", "test": 5.0},
                                             {"metric": "kl", "test": 1.0}]


def test_eval_line_states_units():
    line = tables.eval_line({"split": "test", "n_images": 100, "data": "8-bit", "k": 1,
                            "nll_nats": -2000.0, "nll_sem": 3.0, "bpd": 1.234,
                            "nll_method": "exact change of variables"})
    assert "nats (exact change of variables)" in line and "1.234 bits/dim" in line
    assert "8-bit data" in line
    assert "k=50" in tables.eval_line({"nll_nats": 90.0, "k": 50,
                                      "nll_method": "importance sampling, k=50"})


def test_runs_roots_parsing(monkeypatch):
    monkeypatch.delenv("GENLAB_RUNS", raising=False)
    assert [str(p) for p in status.runs_roots()] == ["runs", "checkpoints"]
    monkeypatch.setenv("GENLAB_RUNS", f"/a{os.pathsep}/b")
    assert [str(p) for p in status.runs_roots()] == ["/a", "/b"]
    assert [str(p) for p in status.runs_roots(" x, y ,x,, ")] == ["x", "y"]


S = status.RunStatus.from_json  # status.json's object, typed


def test_run_state_running_dead_failed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = {"state": "running", "pid": os.getpid(), "epoch": 2, "total_epochs": 4,
             "progress": 0.375, "eta_s": 75, "total_steps": 8}
    assert status.run_state(tmp_path, S(alive), None) == ("running", "epoch 2/4, 38%, about 1m 15s left")
    state, msg = status.run_state(tmp_path, S({"state": "running", "pid": dead.pid}), None)
    assert state == "interrupted" and f"python -m genlab resume {tmp_path}" in msg
    assert status.run_state(tmp_path, S({"state": "failed", "message": "boom"}), None) == ("failed", "boom")
    assert status.run_state(tmp_path, S({}), None, error="bad config") == ("broken", "bad config")
    assert status.run_state(tmp_path, S({}), None, has_metrics=False) == ("unknown", "")
    assert status.run_state(tmp_path, S({}), None) == ("stopped", "")  # metrics, no status.json


def test_a_job_decides_the_state_only_until_the_trainer_reports(tmp_path):
    """A live train/resume process the app started is "starting" until status.json says it
    is at work; one that died before writing status.json "failed" with its log's last line;
    a live eval job leaves the training state alone."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / status.TRAIN_LOG).write_text("$ -m genlab train\nValueError: no such dataset\n")
    me = status.Job("resume", os.getpid(), tmp_path, alive=True)
    done = {"state": "done", "message": ""}
    assert status.run_state(tmp_path, S(done), me) == ("starting", f"resume process {os.getpid()} is starting")
    assert status.run_state(tmp_path, S(done), replace(me, kind="eval")) == ("done", "")
    assert status.run_state(tmp_path, S({"state": "running", "pid": os.getpid()}), me)[0] == "running"
    gone = status.Job("train", dead.pid, tmp_path, alive=False)
    assert status.run_state(tmp_path, S({}), gone) == ("failed", "ValueError: no such dataset")
    assert status.run_state(tmp_path, S(done), gone) == ("done", "")


def test_read_image(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (4, 4), 128).save(buf, format="PNG")
    (tmp_path / "ok.png").write_bytes(buf.getvalue())
    (tmp_path / "bad.png").write_bytes(buf.getvalue()[:20])
    assert read_image(tmp_path / "ok.png") == (buf.getvalue(), None)
    data, err = read_image(tmp_path / "bad.png")
    assert data is None and err.startswith("bad.png:")
    assert read_image(None) == (None, None)


def test_run_card_of_a_broken_run_never_raises(tmp_path):
    (tmp_path / store.CONFIG).write_text("[1, 2")
    (tmp_path / store.METRICS).write_bytes(b'{"loss": 1.0, "event": "step", "split": "train", '
                                          b'"step": 1}\n\xff\xfe garbage\n')
    card = run_card(tmp_path)
    assert card.summary.state == "broken" and "not valid JSON" in card.summary.message
    assert card.summary.bad_metric_lines == 1 and card.figure is not None
    train = card.figure.data[0]
    assert list(train.x) == [1] and train.mode == "markers"  # the one readable step, as a marker
    assert card.summary.model is None and card.summary.config == {}


def test_run_stamp_changes_with_the_files(tmp_path):
    (tmp_path / store.CONFIG).write_text("{}")
    before = status.run_stamp(tmp_path)
    with open(tmp_path / store.METRICS, "a") as f:
        f.write(json.dumps({"loss": 1.0}) + "\n")
    assert status.run_stamp(tmp_path) != before


def test_datasets_status(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).touch()
    status = {r["dataset"]: r for r in tables.datasets_status(tmp_path)}
    assert status["mnist"]["present"] and not status["fashion-mnist"]["present"]
    assert status["svhn"]["where"] == "train_32x32.mat, test_32x32.mat"
    assert status["fashion-mnist"]["where"].startswith("FashionMNIST/raw/train-images")


@pytest.mark.parametrize("s,text", [(5, "5s"), (75, "1m 15s"), (3725, "1h 02m")])
def test_fmt_seconds(s, text):
    assert status.fmt_seconds(s) == text


def test_units_note_names_the_data_kind():
    def run(model, **config):
        return RunSummary(Path("r"), "r", model=model, config=config)

    assert tables.units_note(run("vae", preprocess="dynamic")) == "nats per image on binarised data"
    assert "8-bit" in tables.units_note(run("vae", preprocess="dequantize"))
    assert tables.units_note(run("gan", preprocess="dequantize")) == "training losses"
    assert tables.units_note(run("no-such-model")) == ""
