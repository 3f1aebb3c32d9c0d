"""AppTest of the Train page: widgets built from the config metadata (bounded, with the
defaults), a bad value explained before anything starts, a real tiny training run
started from the page whose metrics then appear, and a failed run's message."""
from __future__ import annotations

import json
import time

import pytest

from genlab.runs import jobs, store, status
from genlab.training import throughput
from runs_fixture import FAIL_MSG, FAILED, run_page, texts

PAGE = "pages/train.py"
RUN_TIMEOUT_S = 120  # start a process (imports torch), train 3 steps, validate, save


def widget(at, key):
    return at.get_by_key(key)


def set_values(at, values: dict):
    for key, v in values.items():
        widget(at, key).set_value(v)
    return at


def submit(at):
    return at.form_submit_button[0].click().run()


def page_order(at) -> list[tuple[str, str]]:
    """(element type, its text or label) of the main area, in the order the page shows them."""
    out = []

    def walk(node):
        kind = getattr(node, "type", "")
        text = getattr(node, "label", None) or getattr(node, "value", None)
        if kind in ("subheader", "expander", "form"):
            out.append((kind, str(text).split(" ", 1)[-1] if kind == "subheader" else str(text)))
        for child in getattr(node, "children", {}).values():
            walk(child)
    walk(at.main)
    return out


def test_widgets_follow_the_config_metadata(train_env):
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    latent = widget(at, "m-vae-latent_dim")
    assert latent.value == 20
    # no browser-side bounds (issue 13, item 7): they blocked Start silently; the range is
    # in the help and a value outside it is explained on Start
    assert not latent.proto.has_min and not latent.proto.has_max
    assert widget(at, "m-vae-hidden").value == "512,512"
    assert widget(at, "m-vae-arch").options == ["mlp", "conv"]
    assert widget(at, "t-epochs").value == 20 and widget(at, "t-lr").value == pytest.approx(1e-3)
    assert "default 20" in latent.help and ">= 1 and <= 1024" in latent.help
    assert set(widget(at, "t-device").options) <= {"auto", "cpu", "cuda", "mps"}
    at = widget(at, "train-model").set_value("gan").run()  # only that model's options
    assert widget(at, "m-gan-d_hidden").value == "512,256"
    assert not [w for w in at.number_input if w.key == "m-vae-latent_dim"]
    assert "No runs yet" in texts(at)


@pytest.mark.parametrize("values,needle", [
    ({"m-vae-hidden": "64,abc"}, "hidden must be comma-separated whole numbers"),
    ({"t-lr": 0.0}, "lr must be > 0"),
    ({"train-name": "../escape"}, "run name '../escape'"),
])
def test_bad_values_are_explained_and_start_nothing(train_env, values, needle):
    at = set_values(run_page(PAGE), values)
    at = submit(at)
    assert not at.exception
    errors = "\n".join(e.value for e in at.error)
    assert "Not started" in errors and needle in errors
    assert not train_env.exists() or not any(train_env.iterdir())


def test_every_bad_value_is_reported_not_only_the_first(train_env):
    """Issue 24, item 10: three bad values on the form, three lines, each what was wrong
    and what is allowed; nothing starts."""
    at = submit(set_values(run_page(PAGE), {"m-vae-latent_dim": 0, "t-lr": 5.0, "t-batch_size": 0}))
    assert not at.exception, [e.value for e in at.exception]
    (error,) = [e.value for e in at.error]
    assert error.startswith("Not started: 3 values are wrong:"), error
    items = [line for line in error.splitlines() if line.startswith("- ")]
    assert len(items) == 3, error
    for said in ("--latent-dim must be >= 1 and <= 1024 (got 0)", "--lr must be > 0 and <= 1 (got 5)",
                 "--batch-size must be >= 1 and <= 65536 (got 0)"):
        assert sum(said in item for item in items) == 1, (said, error)
    assert not train_env.exists() or not any(train_env.iterdir())


def test_no_dataset_means_no_form_and_says_why(train_env, tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "empty"))
    at = run_page(PAGE)
    assert not at.exception
    assert "No dataset under the data root" in texts(at)
    assert "train it once from a terminal" in texts(at)
    assert not at.form_submit_button


def test_start_a_tiny_run_and_see_its_metrics(train_env):
    at = set_values(run_page(PAGE), {
        "m-vae-latent_dim": 2, "m-vae-hidden": "32", "t-epochs": 1, "t-limit": 300,
        "t-batch_size": 100, "t-log_every": 1, "t-n_samples": 4, "t-device": "cpu",
        "train-name": "from-the-page"})
    at = submit(at)
    assert not at.exception, [e.value for e in at.exception]
    assert "Started" in "\n".join(s.value for s in at.success)
    run = train_env.resolve() / "from-the-page"
    assert (run / status.JOB).exists()
    # the run being watched is at the top, above the (now folded) form (issue 13, item 8)
    order = page_order(at)
    assert order.index(("subheader", "from-the-page")) < order.index(("expander", "Start a new run"))
    deadline = time.time() + RUN_TIMEOUT_S
    while (store.read_json(run / store.STATUS) or {}).get("state") not in ("done", "failed"):
        assert time.time() < deadline, status.log_tail(run)
        at.run()  # what the page's polling fragment does every 2 s
        assert not at.exception, [e.value for e in at.exception]
        time.sleep(1.0)
    jobs.wait(run, 30)
    at.run()
    assert not at.exception
    assert store.read_json(run / store.STATUS)["state"] == "done", status.log_tail(run)
    table = next(d.value for d in at.table if "run" in d.value.columns)
    row = table[table["run"] == "from-the-page"].iloc[0]
    assert (row["model"], row["state"], row["progress"], row["epoch"]) == ("vae", "done", 1.0, "1/1")
    records, _ = store.read_metrics(run / store.METRICS)
    last_val = [r for r in records if r["event"] == "epoch" and r["split"] == "val"][-1]
    metrics = next(d.value for d in at.table if "metric" in d.value.columns).set_index("metric")
    assert metrics.loc["loss", "val"] == pytest.approx(last_val["loss"])  # shown as written
    live = json.loads(at.get("plotly_chart")[0].proto.spec)  # the live curves: loss first
    assert live["layout"]["annotations"][0]["text"] == "loss"
    x_titles = {v.get("title", {}).get("text") for k, v in live["layout"].items() if k.startswith("xaxis")}
    assert x_titles - {None} == {"step"}  # under the bottom row's panels
    steps = [r["step"] for r in records if r["event"] == "step" and r["split"] == "train" and "loss" in r]
    assert live["data"][0]["x"] == steps
    val = live["data"][1]  # validation, per epoch
    step, loss, epoch = val["x"][-1], val["y"][-1], val["customdata"][-1]
    assert (step, epoch) == (last_val["step"], 1) and loss == pytest.approx(last_val["loss"], rel=1e-5)
    assert len(at.image) == 1  # the sample grid of epoch 1
    assert widget(at, f"until-{run}").value == 2  # resume: train further
    assert at.query_params.get("watch") in (["from-the-page"], "from-the-page")


def test_a_failed_run_shows_its_message(app_runs):
    at = run_page(PAGE)
    failed = str(app_runs / FAILED)
    at = widget(at, "train-watch").set_value(failed).run()
    assert not at.exception
    assert FAIL_MSG in "\n".join(e.value for e in at.error)
    assert "Traceback" not in texts(at)


def test_a_torn_metrics_line_is_reported_not_fatal(app_runs, tmp_path, monkeypatch):
    """A killed trainer can leave half a JSON line: the page says so and still draws the run."""
    import shutil

    from runs_fixture import GOOD

    root = tmp_path / "runs"
    shutil.copytree(app_runs / GOOD, root / "torn")
    with open(root / "torn" / store.METRICS, "a") as f:
        f.write('{"event": "step", "split": "train", "epo')  # no newline: torn mid-write
    monkeypatch.setenv("GENLAB_RUNS", str(root))
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert any("1 unreadable line(s) in metrics.jsonl were skipped" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) >= 1 and "Traceback" not in texts(at)


@pytest.mark.parametrize("key,value,needle", [
    ("m-vae-latent_dim", 0, "--latent-dim must be >= 1 and <= 1024 (got 0)"),
    ("m-vae-latent_dim", 5000, "--latent-dim must be >= 1 and <= 1024 (got 5000)"),
    ("t-lr", 5.0, "--lr must be > 0 and <= 1 (got 5)"),
    ("t-epochs", 0, "--epochs must be >= 1"),
    ("t-batch_size", 0, "--batch-size must be >= 1"),
    ("m-vae-beta", -1.0, "--beta must be"),
])
def test_an_out_of_range_number_says_what_is_allowed(train_env, key, value, needle):
    """Issue 13, item 7: the browser does not block the value; Start says what is wrong."""
    at = run_page(PAGE)
    assert not widget(at, key).proto.has_min and not widget(at, key).proto.has_max
    at = submit(set_values(at, {key: value}))
    errors = "\n".join(e.value for e in at.error)
    assert "Not started" in errors and needle in errors, errors
    assert not train_env.exists() or not any(train_env.iterdir())


def _earlier_run(root, name: str, model_cfg, train_cfg, rate: float, state: dict) -> None:
    run = root / name
    run.mkdir(parents=True)
    store.write_config(run, "vae", model_cfg, train_cfg)
    store.atomic_write_json(run / store.STATUS, {"device": "cpu", **state})
    (run / store.METRICS).write_text("".join(
        f'{{"event": "step", "split": "train", "epoch": 1, "step": {i}, "images_per_s": {rate}}}\n'
        for i in range(8)))


def test_the_expected_time_per_epoch_is_this_configurations(train_env, data_root, monkeypatch):
    """Issue 24, item 9: the time an epoch should take, from runs of this very configuration
    on this device (a run of another width is no guide: the shipped runs' median once said
    8 s an epoch for a run that took 100 s), else a short timed probe of it; once a run of
    it is going, from that run's first logged steps, which its own monitor shows too."""
    import dataclasses
    import os

    probed = []
    monkeypatch.setattr(throughput, "probe_throughput", lambda *a, **k: probed.append(a) or None)
    at = run_page(PAGE)  # nothing measured yet: it is being timed
    assert not at.exception, [e.value for e in at.exception]
    assert "Timing a few training steps of these options here" in texts(at)
    assert probed and probed[-1][0] == "vae" and probed[-1][1].hidden == (512, 512)

    monkeypatch.setattr(throughput, "probe_throughput", lambda *a, **k: (1234.0, 5))
    n = jobs.train_size("mnist")
    said = "\n".join(c.value for c in run_page(PAGE).caption)
    assert f"about {status.fmt_seconds(n / 1234)} per epoch" in said, said
    assert "timed over 5 training steps of this model and configuration on cpu" in said

    model_cfg, train_cfg = jobs.check_train("vae", "mnist", {}, {}, root=data_root, build=False)
    _earlier_run(train_env, "narrow", dataclasses.replace(model_cfg, hidden=(32,)), train_cfg, 90000,
                 {"state": "done"})
    _earlier_run(train_env, "going", model_cfg, train_cfg, 1100, {  # this configuration, at work
        "state": "running", "pid": os.getpid(), "epoch": 1, "step": 8, "total_steps": 4000,
        "total_epochs": train_cfg.epochs})
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    said = "\n".join(c.value for c in at.caption)
    assert f"about {status.fmt_seconds(n / 1100)} per epoch" in said, said
    epochs = train_cfg.epochs
    assert f"{status.fmt_seconds(epochs * n / 1100)} for {epochs} epochs" in said
    assert "measured: the logged steps of 1 run of this configuration on cpu here" in said
    assert at.session_state["train-watch"].endswith("going")
    assert f"Measured: 1,100 images/s over 6 logged step records so far, about " \
           f"{status.fmt_seconds(n / 1100)} per epoch" in said
