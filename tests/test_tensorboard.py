"""TensorBoard event files: a live tiny training run and an export of a shipped run, read
back with TensorBoard's own reader (EventAccumulator), against the run folder's
metrics.jsonl, sample grids and config.json."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from genlab.cli import main
from genlab.runs import store
from genlab.training import tensorboard_log as T

pytest.importorskip("tensorboard", reason="the reader is TensorBoard's own (requirements-dev.txt)")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "checkpoints" / "vae-2d-mnist"
TINY = ["--model", "vae", "--latent-dim", "2", "--hidden", "16", "--limit", "200",
        "--batch-size", "50", "--log-every", "1", "--n-samples", "4", "--device", "cpu", "--quiet"]
SPE = 4  # steps per epoch: 200 images in batches of 50

pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def read_back(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    return acc.Reload()


def assert_matches_run(acc: EventAccumulator, run_dir: Path) -> dict[str, list]:
    """Every scalar of every metrics record at its step, nothing else; every sample grid,
    byte for byte, at its epoch's last step; config.json as hyperparameters. Returns the
    scalars read back (tag -> [(step, value)])."""
    records, _ = store.read_metrics(run_dir / store.METRICS)
    expected: dict[str, list] = {}
    for r in records:
        for tag, v in T.scalars(r):
            expected.setdefault(tag, []).append((r["step"], v))
    got = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert set(got) == set(expected) and {"train/loss", "train/lr", "train/images_per_s",
                                          "epoch_train/loss", "epoch_val/loss"} <= set(got)
    for tag, points in expected.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag  # each step once, in order
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag
    ends = {r["epoch"]: r["step"] for r in records if r["event"] == "epoch"}
    grids = T.sample_grids(run_dir)
    assert grids, "the run has sample grids"
    for tag in {t for _, t, _ in grids}:
        want = [(ends[e], p.read_bytes()) for e, t, p in grids if t == tag]
        assert [(i.step, i.encoded_image_string) for i in acc.Images(tag)] == want
    content = acc.PluginTagToContent("hparams")
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    ssi = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    config = store.read_config_dict(run_dir)
    values = {k: v.string_value if v.HasField("string_value") else
              v.bool_value if v.HasField("bool_value") else v.number_value
              for k, v in ssi.hparams.items()}
    assert values["model"] == config["model"]
    assert values["lr"] == pytest.approx(config["train"]["lr"])
    assert values["batch_size"] == config["train"]["batch_size"]
    assert values["hidden"] == str(config["model_config"]["hidden"])  # a list, as JSON text
    assert len(values) == len({"model", *config["model_config"], *config["train"]})
    assert [m.name.tag for m in exp.metric_infos] == list(T.HPARAM_METRICS)
    return got


def events_in(path: Path) -> list:
    from tensorboardX.proto import event_pb2

    return [event_pb2.Event.FromString(r) for r in T.read_records(path)]


# -- a live run -----------------------------------------------------------------------
def test_a_training_run_writes_scalars_grids_and_hparams_tensorboard_reads(data_root, tmp_path,
                                                                           capsys):
    run = tmp_path / "run"
    code, _, err = run_main(["train", "--run-dir", str(run), "--data-root", str(data_root),
                             "--epochs", "2", *TINY], capsys)
    assert code == 0, err
    assert sorted(p.name for p in run.glob("*tfevents*")) == [T.EVENTS]  # one file, one name
    got = assert_matches_run(read_back(run), run)
    assert [s for s, _ in got["train/loss"]] == list(range(1, 2 * SPE + 1))  # --log-every 1
    assert [s for s, _ in got["epoch_val/loss"]] == [SPE, 2 * SPE]
    assert "tensorboardX" not in err  # no "logs are off" message: they are on


@pytest.mark.parametrize("before", ["torn", "none"])
def test_resume_cuts_events_back_to_the_checkpoint_or_writes_the_past(before, data_root, tmp_path,
                                                                      capsys):
    """A resume keeps the events up to the checkpoint's step, dropping a killed epoch's and
    a torn last record ("torn"); a run without an event file gets its past ("none")."""
    from tensorboardX.proto import event_pb2, summary_pb2

    run = tmp_path / "run"
    assert run_main(["train", "--run-dir", str(run), "--data-root", str(data_root),
                     "--epochs", "1", *TINY], capsys)[0] == 0
    path = run / T.EVENTS
    if before == "torn":  # what a run killed in epoch 2 would leave: later steps, a cut record
        late = event_pb2.Event(step=SPE + 3, wall_time=1.0, summary=summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag="train/loss", simple_value=-1.0)]))
        T.append(path, [late])
        whole = T._frame(late.SerializeToString())
        with open(path, "ab") as f:
            f.write(whole[: len(whole) // 2])
    else:
        path.unlink()
    code, _, err = run_main(["resume", str(run), "--epochs", "2", "--quiet"], capsys)
    assert code == 0, err
    got = assert_matches_run(read_back(run), run)
    assert [s for s, _ in got["train/loss"]] == list(range(1, 2 * SPE + 1))
    assert -1.0 not in [v for _, v in got["train/loss"]]
    starts = [e for e in events_in(path) if any(v.tag == "_hparams_/session_start_info"
                                                 for v in e.summary.value)]
    assert len(starts) == 1  # the config once, not once per start
    assert sum(len(r) + 16 for r in T.read_records(path)) == path.stat().st_size  # nothing torn


def test_without_tensorboardx_a_run_trains_and_says_once_how_to_turn_logs_on(
        data_root, tmp_path, capsys, monkeypatch):
    for name in ["tensorboardX", *[m for m in sys.modules if m.startswith("tensorboardX.")]]:
        monkeypatch.setitem(sys.modules, name, None)  # import tensorboardX(.*): ImportError
    monkeypatch.setattr(T, "_said_missing", False)
    run = tmp_path / "run"
    code, out, err = run_main(["train", "--run-dir", str(run), "--data-root", str(data_root),
                               "--epochs", "1", *TINY], capsys)
    assert code == 0 and "done: epoch 1" in out, err
    assert err.count("TensorBoard logs are off") == 1 and T.INSTALL in err
    assert not list(run.glob("*tfevents*")) and (run / store.CHECKPOINT).exists()
    assert T.callbacks(run) == ()
    assert capsys.readouterr().err == ""  # said once per process
    code, _, err = run_main(["export-tensorboard", str(run), "--out", str(tmp_path / "tb")], capsys)
    assert code == 1 and err.count("\n") == 1 and T.INSTALL in err, err
    assert not (tmp_path / "tb").exists()


# -- export ---------------------------------------------------------------------------
def _files(folder: Path) -> dict:
    return {p.relative_to(folder): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*")}


def test_export_of_a_shipped_run_reads_back_and_leaves_it_untouched(tmp_path, capsys):
    assert store.read_json(SHIPPED / store.STATUS).get("shipped_from")  # a shipped run
    before = _files(SHIPPED)
    out = tmp_path / "tb" / SHIPPED.name
    code, printed, err = run_main(["export-tensorboard", str(SHIPPED), "--out", str(out)], capsys)
    assert code == 0, err
    assert _files(SHIPPED) == before  # only read
    got = assert_matches_run(read_back(out), SHIPPED)
    n_points = sum(len(v) for v in got.values())
    assert f"{n_points} points of {len(got)} scalars, 2 sample grids" in printed
    records, _ = store.read_metrics(SHIPPED / store.METRICS)
    last_val = [r for r in records if r["event"] == "epoch" and r["split"] == "val"][-1]
    assert got["epoch_val/loss"][-1] == (last_val["step"], pytest.approx(last_val["loss"]))
    for tag in ("train/loss", "train/kl_weight", "train/lr", "epoch_val/loss", "epoch_val/kl"):
        print(f"{tag}: {len(got[tag])} points, last (step {got[tag][-1][0]}) {got[tag][-1][1]:.4g}")


def test_export_refuses_checkpoints_a_shipped_run_and_files_already_there(tmp_path, capsys,
                                                                           monkeypatch):
    for out in (REPO / "checkpoints" / "tb-test", SHIPPED / "tb"):
        code, _, err = run_main(["export-tensorboard", str(SHIPPED), "--out", str(out)], capsys)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert "read-only" in err and not out.exists()
    copy = Path(shutil.copytree(SHIPPED, tmp_path / "elsewhere" / SHIPPED.name))  # still shipped
    code, _, err = run_main(["export-tensorboard", str(SHIPPED), "--out", str(copy / "tb")], capsys)
    assert code == 2 and "inside the shipped run" in err and not (copy / "tb").exists()
    monkeypatch.chdir(tmp_path)  # a shipped run's default: runs/tensorboard/NAME, here
    monkeypatch.delenv("GENLAB_RUNS", raising=False)
    code, _, err = run_main(["export-tensorboard", str(SHIPPED)], capsys)
    assert code == 0, err
    assert (tmp_path / "runs" / "tensorboard" / SHIPPED.name / T.EVENTS).is_file()
    code, _, err = run_main(["export-tensorboard", str(SHIPPED)], capsys)  # not twice
    assert code == 2 and "event files already" in err and err.count("\n") == 1
    code, _, err = run_main(["export-tensorboard", str(tmp_path), "--out", "x"], capsys)
    assert code == 1 and "not a genlab run directory" in err and err.count("\n") == 1
