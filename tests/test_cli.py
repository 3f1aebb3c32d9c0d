"""`python -m genlab train | resume | eval`: one-line usage errors with exit code 2,
a complete --help, and a tiny run end to end (issue 2)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from genlab.cli import _model_options, main
from genlab.config import TrainConfig
from genlab.config import defaults as config_defaults, format_value
from genlab.config import opt
from genlab.models import FAMILIES, Family
from genlab.models.vae import VAE
from genlab.runs import jobs, store

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """main() in this process: (exit code, stdout, stderr); argparse exits count too."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _foreign_option(monkeypatch) -> str:
    """A model option that the VAE does not have (registering a stand-in if none exists)."""
    foreign = [n for n, o in _model_options().items() if "vae" not in o["models"]]
    if foreign:
        return "--" + foreign[0].replace("_", "-")

    @dataclass
    class OtherConfig:
        num_widgets: int = opt(3, "widgets", lo=1)

    monkeypatch.setitem(FAMILIES, "other", Family("other", VAE, OtherConfig))
    return "--num-widgets"


BAD = {
    "latent size 0": (["--latent-dim", "0"], "--latent-dim must be >= 1"),
    "lr zero": (["--lr", "0"], "--lr must be > 0"),
    "lr negative": (["--lr", "-0.1"], "--lr must be > 0"),
    "lr not a number": (["--lr", "fast"], "--lr must be a number"),
    "epochs 0": (["--epochs", "0"], "--epochs must be >= 1"),
    "unknown dataset": (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    "unknown option": (["--colour", "red"], "unrecognized arguments: --colour"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_arguments_exit_2_with_one_line(case, tmp_path, capsys):
    extra, says = BAD[case]
    code, out, err = run_main(["train", "--model", "vae", "--runs-dir", str(tmp_path), *extra], capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and says in err, err
    assert not any(tmp_path.iterdir()), "a bad command created a run"


def test_unknown_model_and_foreign_option_exit_2(tmp_path, capsys, monkeypatch):
    code, _, err = run_main(["train", "--model", "diffusion", "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "unknown model 'diffusion'" in err, err
    flag = _foreign_option(monkeypatch)
    code, _, err = run_main(["train", "--model", "vae", flag, "3", "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{flag} does not apply to model vae" in err and "--latent-dim" in err
    assert not any(tmp_path.iterdir())


SAME_WORDS = [({"latent_dim": "0"}, {}), ({"hidden": "64,abc"}, {}), ({"hidden": "64,-8"}, {}),
              ({"arch": "transformer"}, {}), ({"beta": "nan"}, {}), ({}, {"lr": "0"}),
              ({}, {"epochs": "0"}), ({}, {"device": "tpu"}), ({}, {"compile": "maybe"}),
              ({}, {"betas": "0.9"}), ({}, {"betas": "0.9,1.5"}), ({}, {"betas": "a,b"}),
              ({}, {"optimizer": "sgd"}), ({}, {"lr_schedule": "step"}), ({}, {"ema_decay": "1"}),
              ({}, {"kl_warmup_epochs": "-1"}), ({}, {"ema_warmup": "sometimes"})]


@pytest.mark.parametrize("model_values, train_values", SAME_WORDS)
def test_the_cli_and_the_train_page_word_an_error_the_same(model_values, train_values, data_root,
                                                           capsys):
    """One parse for both: a bad value typed as a flag and the same value in the Train
    form (jobs.check_train, the page's check before it starts anything) give one message."""
    argv = [a for k, v in {**model_values, **train_values}.items()
            for a in ("--" + k.replace("_", "-"), v)]
    code, _, err = run_main(["train", "--model", "vae", "--runs-dir", "unused", *argv], capsys)
    assert code == 2 and err.startswith("genlab train: error: ")
    with pytest.raises(ValueError) as ei:
        jobs.check_train("vae", "mnist", model_values, train_values, root=data_root)
    assert err.strip() == f"genlab train: error: {ei.value}", (err, str(ei.value))
    assert not Path("unused").exists()


def test_train_a_configured_run_dir(data_root, tmp_path, capsys):
    """`train --run-dir DIR` with no --model trains the config.json written there (as the
    app does), once: a started run, options beside it, or no config at all are refused."""
    model_cfg, train_cfg = jobs.check_train(
        "vae", "mnist", {"latent_dim": 2, "hidden": "16"},
        {"epochs": 1, "limit": 200, "batch_size": 100, "n_samples": 4}, root=data_root)
    run = jobs.create_run(tmp_path, "configured", "vae", model_cfg,
                          dataclasses.replace(train_cfg, data_root=str(data_root)))
    config = (run / store.CONFIG).read_bytes()
    code, out, err = run_main(["train", "--run-dir", str(run), "--latent-dim", "3"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--latent-dim" in err and not (run / store.STATUS).exists()
    code, out, err = run_main(["train", "--run-dir", str(run), "--quiet"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"run directory: {run}" and "done: epoch 1" in out
    assert (run / store.CONFIG).read_bytes() == config  # trained as configured, not rewritten
    assert store.load_checkpoint(run / store.CHECKPOINT)["epoch"] == 1
    code, _, err = run_main(["train", "--run-dir", str(run), "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and f"python -m genlab resume {run}" in err
    for argv in (["train"], ["train", "--run-dir", str(tmp_path / "empty")]):
        code, _, err = run_main(argv, capsys)
        assert code == 2 and err.count("\n") == 1 and "required: --model" in err, err


def test_resume_and_eval_argument_errors(tmp_path, capsys):
    code, _, err = run_main(["resume", str(tmp_path), "--epochs", "0"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--epochs must be >= 1" in err
    code, _, err = run_main(["resume", str(tmp_path), "--max-minutes", "-1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--max-minutes must be a number >= 0" in err
    code, _, err = run_main(["eval", str(tmp_path), "--k", "0"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--k" in err
    # not a run directory: a fault, not a usage error (exit 1), still one line
    for argv in (["resume", str(tmp_path), "--quiet"], ["eval", str(tmp_path), "--quiet"]):
        code, _, err = run_main(argv, capsys)
        assert code == 1 and err.count("\n") == 1 and "config.json" in err, err


def test_exit_code_and_stderr_of_the_real_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genlab", "train", "--model", "vae",
                           "--latent-dim", "0", "--runs-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "--latent-dim must be >= 1" in proc.stderr


def test_help_lists_every_option_with_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping (it breaks at hyphens)
    code, out, _ = run_main(["train", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())  # argparse wraps lines; compare with whitespace collapsed
    plain = config_defaults(TrainConfig)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "dataset":
            assert "--dataset V" in text or "--dataset DATASET" in text
            assert "[default: mnist]" in text
            continue
        help_text = " ".join(f.metadata["help"].split())
        assert f"{flag} V {help_text} [default: {format_value(plain[f.name])};" in text, flag
    options = _model_options()
    assert {"latent_dim", "hidden", "beta", "preprocess"} <= set(options)
    for name, o in options.items():
        head = f"--{name.replace('_', '-')} V {' '.join(o['field'].metadata['help'].split())} ["
        assert head in text, head
        start = text.index(head) + len(head)
        defaults = text[start:text.index("]", start)]  # "vae: 20; gan: 100; >= 1 and <= 1024"
        for model, default in o["models"].items():
            assert f"{model}: {format_value(default)};" in defaults, (head, model)
    for flag in ("--model", "--run-dir", "--runs-dir", "--name", "--quiet"):
        assert flag in text
    assert "[default: runs]" in text


# -- a tiny run, end to end ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(data_root, tmp_path_factory):
    """`python -m genlab train --limit 500 --epochs 1` in a real process."""
    runs_dir = tmp_path_factory.mktemp("runs")
    proc = subprocess.run(
        [sys.executable, "-m", "genlab", "train", "--model", "vae", "--limit", "500",
         "--epochs", "1", "--runs-dir", str(runs_dir), "--name", "tiny", "--data-root", str(data_root)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    return proc, runs_dir / "tiny"


def test_train_writes_a_complete_run(tiny_run):
    proc, run_dir = tiny_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"run directory: {run_dir}"
    assert "done: epoch 1" in proc.stdout
    status = store.read_json(run_dir / store.STATUS)
    assert status["state"] == "done" and status["epoch"] == 1 and status["progress"] == 1.0
    cfg = json.loads((run_dir / store.CONFIG).read_text())
    assert cfg["model"] == "vae" and cfg["train"]["limit"] == 500 and cfg["train"]["epochs"] == 1
    assert cfg["model_config"]["image_shape"] == [1, 28, 28]
    records, bad = store.read_metrics(run_dir / store.METRICS)
    assert bad == 0 and {(r["epoch"], r["split"]) for r in records if r["event"] == "epoch"} == {
        (1, "train"), (1, "val")}
    assert store.load_checkpoint(run_dir / store.CHECKPOINT)["epoch"] == 1
    from PIL import Image

    with Image.open(run_dir / "samples" / "epoch_001.png") as im:
        assert im.size == (8 * 30 + 2, 8 * 30 + 2)  # 64 samples: 8 x 8 tiles of 28 + 2 padding


def test_eval_then_resume(tiny_run, capsys):
    proc, run_dir = tiny_run
    assert proc.returncode == 0, proc.stderr
    code, out, err = run_main(["eval", str(run_dir), "--quiet"], capsys)
    assert code == 0, err
    res = json.loads((run_dir / store.EVAL).read_text())
    assert res["split"] == "test" and res["n_images"] == 10_000 and res["epoch"] == 1
    assert math.isfinite(res["elbo"]) and res["elbo"] < 0
    assert res["elbo"] == pytest.approx(-(res["recon"] + res["kl"]), rel=1e-5)
    assert "elbo" in out and str(run_dir / store.EVAL) in out

    before = (run_dir / store.METRICS).read_text()
    code, out, err = run_main(["resume", str(run_dir), "--epochs", "2", "--quiet"], capsys)
    assert code == 0 and "done: epoch 2" in out, err
    after = (run_dir / store.METRICS).read_text()
    assert after.startswith(before) and len(after) > len(before)  # appended, nothing rewritten
    new = [json.loads(line) for line in after[len(before):].splitlines()]
    assert new and all(r["epoch"] == 2 for r in new)
    assert {r["split"] for r in new if r["event"] == "epoch"} == {"train", "val"}
    assert store.load_checkpoint(run_dir / store.CHECKPOINT)["epoch"] == 2
    assert (run_dir / "samples" / "epoch_002.png").exists()
    assert store.read_json(run_dir / store.STATUS)["state"] == "done"


# -- the training options of issue 12: family defaults, --help, one-line errors ----------
def test_help_lists_the_optimiser_options_with_family_defaults_and_sources(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "10000")
    code, out, _ = run_main(["train", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0
    for head in ("--optimizer V optimiser: adam", "--betas V", "--eps V", "--weight-decay V",
                 "--lr-schedule V", "--warmup-steps V", "--lr-floor V", "--ema-decay V",
                 "--kl-warmup-epochs V"):
        assert head in text, head
    betas = text[text.index("--betas V the optimiser's"):]
    assert "[default: 0.9,0.999; gan, dcgan, cgan: 0.5,0.999; two comma-separated numbers, each >= 0 " \
           "and <= 0.9999]" in betas[:400]
    sched = text[text.index("--lr-schedule V learning rate"):][:700]
    assert "[default: constant; realnvp, realnvp-cond: exponential; one of constant, cosine, exponential, " \
           "burda]" in sched
    assert "Burda et al. 2016 (IWAE), verified in the authors' code" in text  # the sources
    assert "Radford et al. 2016 (DCGAN)" in text and "Sonderby et al. 2016" in text


def test_unset_training_options_take_the_family_defaults(tmp_path, capsys, monkeypatch):
    """config.json records the values used: the family's where the command line is silent,
    the command line's where it speaks."""
    from genlab import cli
    from genlab.models import family_defaults

    monkeypatch.setattr(cli, "train_run", lambda run_dir, **kw: {"state": "done", "epoch": 0})
    for model, given in (("gan", ["--lr", "1e-4"]), ("realnvp", []), ("vae", ["--betas", "0.8,0.99"])):
        code, out, err = run_main(["train", "--model", model, "--runs-dir", str(tmp_path),
                                   "--name", model, *given], capsys)
        assert code == 0, err
        train = json.loads((tmp_path / model / store.CONFIG).read_text())["train"]
        want = {k: list(v) if isinstance(v, tuple) else v for k, v in family_defaults(model).items()}
        if model == "gan":
            want["lr"] = 1e-4
        if model == "vae":
            want["betas"] = [0.8, 0.99]
        assert {k: train[k] for k in want} == want, model
    assert store.read_config(tmp_path / "realnvp").train.ema_decay == 0.9988


# -- genlab sample ------------------------------------------------------------------------
def test_sample_writes_a_grid_of_n_images(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "grid.png"
    code, text, err = run_main(["sample", str(REPO / "checkpoints/realnvp-mnist"), "--n", "10",
                                "--temperature", "0.5", "--out", str(out)], capsys)
    assert code == 0, err
    assert "10 samples" in text and "temperature 0.5" in text
    with Image.open(out) as im:  # 4 x 3 tiles of 28 + 2 padding: ceil(sqrt(10)) per row
        assert im.size == (4 * 30 + 2, 3 * 30 + 2)
    code, text, err = run_main(["sample", str(REPO / "checkpoints/nice-mnist"), "--n", "4", "--out",
                                str(tmp_path / "nice.png")], capsys)
    assert code == 0 and "temperature 0.7" in text  # the flows' default temperature


@pytest.mark.parametrize("argv,says", [
    (["--n", "0"], "--n must be >= 1 and <= 1024"),
    (["--temperature", "0"], "--temperature must be a number > 0"),
    (["--temperature", "nan"], "--temperature must be a number > 0"),
    (["--temperature", "1.5"], "temperature must be > 0 and <= 1"),  # the GAN truncates
    (["--out", "grid.jpg"], "--out must name a .png file"),
    (["--out", "checkpoints/gan-mnist/x.png"], "is inside the shipped run"),
    (["--temperature", "warm"], "invalid float value"),
])
def test_sample_errors_are_one_line(argv, says, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    full = ["sample", "checkpoints/gan-mnist", "--out", str(tmp_path / "g.png"), *argv]
    code, out, err = run_main(full, capsys)
    assert code == 2 and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "g.png").exists() and not (REPO / "checkpoints/gan-mnist/x.png").exists()
    code, _, err = run_main(["sample", str(tmp_path), "--out", str(tmp_path / "g.png")], capsys)
    assert code == 1 and err.count("\n") == 1 and "config.json" in err
    code, _, err = run_main(["sample", "checkpoints/binary-vae-mnist", "--temperature", "0.5",
                             "--out", str(tmp_path / "b.png")], capsys)
    assert code == 2 and "has no sampling temperature" in err and err.count("\n") == 1


def test_kl_warmup_is_refused_for_models_without_a_kl_term(tmp_path, capsys, data_root):
    code, _, err = run_main(["train", "--model", "nice", "--kl-warmup-epochs", "2",
                             "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "--kl-warmup-epochs applies to models with a weighted KL term (vae, binary-vae" in err
    with pytest.raises(ValueError) as ei:  # the Train page's check, the same words
        jobs.check_train("gan", "mnist", {}, {"kl_warmup_epochs": 1.0}, root=data_root)
    assert "gan has none" in str(ei.value) and "\n" not in str(ei.value)
    assert not any(tmp_path.iterdir())
