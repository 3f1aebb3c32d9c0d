"""AppTest, faults and bad input (issue 6): a run whose checkpoint is truncated, empty,
another model's or code-carrying, or whose config.json no longer fits its weights, is one
st.error line naming the file on every page that loads models (Latent explorer, Clusters,
Interpolation, Compare), never an exception, and the code in a hostile checkpoint never
runs; the Train page bounds what a widget can bound and explains the rest before it
starts anything."""
from __future__ import annotations

import json
import pathlib
import shutil
from pathlib import Path

import pytest
import torch

from genlab.data import DATASETS
from genlab.models import build_model
from genlab.runs import jobs, store, status
from runs_fixture import GOOD, REPO, run_page, texts


class RunsCode:
    """Unpickling this calls Path(marker).touch(): what a hostile checkpoint would do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


# run name -> (the file the error names, what it says)
FAULTS = {
    "vae-truncated": (store.CHECKPOINT, "not a readable checkpoint"),
    "vae-empty": (store.CHECKPOINT, "checkpoint file is empty"),
    "vae-gan-weights": (store.CHECKPOINT, "holds a 'gan' model but config.json says 'vae'"),
    "vae-code": (store.CHECKPOINT, "refused to load"),
    "vae-latent-edited": (store.CHECKPOINT, "weights do not fit the model in config.json"),
    "vae-latent-zero": (store.CONFIG, "latent_dim must be >= 1"),
}


def _damage(run: Path, name: str, marker: Path) -> None:
    ck, cfg_path = run / store.CHECKPOINT, run / store.CONFIG
    good = store.load_checkpoint(ck)
    cfg = json.loads(cfg_path.read_text())
    if name == "vae-truncated":
        ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    elif name == "vae-empty":
        ck.write_bytes(b"")
    elif name == "vae-gan-weights":
        gan = build_model("gan", {"latent_dim": 2, "hidden": [16]})
        torch.save({**good, "kind": "gan", "model": gan.state_dict()}, ck)
    elif name == "vae-code":
        torch.save({**good, "model": {**good["model"], "x": RunsCode(marker)}}, ck)
    elif name == "vae-latent-edited":
        cfg["model_config"]["latent_dim"] = 3
    elif name == "vae-latent-zero":
        cfg["model_config"]["latent_dim"] = 0
    cfg_path.write_text(json.dumps(cfg))


@pytest.fixture(scope="module")
def fault_root(runs_root, tmp_path_factory) -> Path:
    """Copies of the shared fixture's trained VAE run, each damaged one way."""
    root = tmp_path_factory.mktemp("fault-runs")
    shutil.copytree(runs_root / GOOD, root / GOOD)
    for name in FAULTS:
        _damage(Path(shutil.copytree(runs_root / GOOD, root / name)), name, root / "payload-ran")
    return root


@pytest.fixture
def faults(fault_root, data_root, monkeypatch) -> Path:
    monkeypatch.setenv("GENLAB_RUNS", str(fault_root))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    yield fault_root
    assert not (fault_root / "payload-ran").exists(), "a page ran the checkpoint's code"


def _assert_one_error(at, run: Path, name: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    file, says = FAULTS[name]
    errors = [e.value for e in at.error]
    assert any(str(run / file) in e and says in e and "\n" not in e.strip() for e in errors), errors
    assert "Traceback" not in texts(at)


@pytest.mark.parametrize("name", list(FAULTS))
def test_the_latent_explorer_shows_one_line(faults, name):
    at = run_page("pages/latent.py", str(faults / name))
    _assert_one_error(at, faults / name, name)


@pytest.mark.parametrize("page, name", [("pages/clusters.py", "vae-latent-edited"),
                                        ("pages/clusters.py", "vae-code"),
                                        ("pages/interpolate.py", "vae-gan-weights"),
                                        ("pages/interpolate.py", "vae-truncated")])
def test_clusters_and_interpolation_show_one_line(faults, page, name):
    at = run_page(page, str(faults / name))
    _assert_one_error(at, faults / name, name)


@pytest.mark.parametrize("names", [list(FAULTS)[:3], list(FAULTS)[3:]], ids=["ckpt", "mixed"])
def test_compare_explains_each_broken_run_and_shows_the_good_one(faults, names):
    at = run_page("pages/compare.py")
    at = at.multiselect(key="compare-runs-mnist").set_value(
        [str(faults / n) for n in (GOOD, *names)]).run()  # at most 4 at once
    for name in names:
        _assert_one_error(at, faults / name, name)
    assert any(GOOD in cap for im in at.image for cap in im.captions)  # its reconstructions
    k = at.select_slider(key="bound-k")
    assert min(float(o) for o in k.options) >= 1  # k < 1 is not offered


# -- invalid hyperparameters on the Train page --------------------------------------------------
def test_train_form_bounds_sizes_and_explains_what_it_cannot_bound(train_env):
    at = run_page("pages/train.py")
    at = at.get_by_key("train-model").set_value("ae-gmm").run()
    assert not at.exception, [e.value for e in at.exception]
    # no number is bounded in the browser, which blocked Start with only a red mark (issue 13,
    # item 7): each field's help states its range, and Start explains a value outside it
    assert not any(w.proto.has_min or w.proto.has_max for w in at.number_input if w.key.startswith(("m-", "t-")))
    assert ">= 1 and <= 1000" in at.get_by_key("m-ae-gmm-n_components").help
    offered = [o.split(" ")[0] for o in at.get_by_key("train-dataset").options]  # "mnist (1x28x28)"
    assert offered and set(offered) <= set(DATASETS)  # a wrong dataset name cannot be picked
    for key, value, needle in [("m-ae-gmm-hidden", "64,0", "hidden must be >= 1 and <= 8192 (got 0)"),
                               ("m-ae-gmm-hidden", "64,-8", "hidden must be >= 1 and <= 8192 (got -8)"),
                               ("t-lr", 0.0, "lr must be > 0 and <= 1 (got 0)"),
                               ("m-ae-gmm-n_components", 0, "n-components must be >= 1 and <= 1000 (got 0)")]:
        at = run_page("pages/train.py")
        at.get_by_key("train-model").set_value("ae-gmm").run()
        at.get_by_key(key).set_value(value)
        at = at.form_submit_button[0].click().run()
        assert not at.exception
        errors = "\n".join(e.value for e in at.error)
        assert "Not started" in errors and needle in errors, errors
    assert not train_env.exists() or not any(train_env.iterdir()), "a bad form started a run"


def test_a_damaged_checkpoint_is_broken_everywhere_with_one_reason(faults):
    """Issue 13, item 6: a truncated checkpoint.pt is "broken" on Home (not a green tick),
    on the Train page (no Resume) and in Compare (not picked, not offered for eval), with
    the same one-line reason, and no page opens on it by default."""
    bad = faults / "vae-truncated"
    reason = status.checkpoint_damage(bad)
    assert reason and "not a readable checkpoint" in reason and str(bad / store.CHECKPOINT) in reason
    assert status.checkpoint_damage(faults / GOOD) is None
    home = run_page("pages/home.py")
    assert home.table[0].value.set_index("run").loc["vae-truncated", "status"] == "broken"
    assert any(reason in e.value for e in home.error)
    train = run_page("pages/train.py")
    train = train.get_by_key("train-watch").set_value(str(bad)).run()
    assert any(reason in e.value for e in train.error)
    assert not [b for b in train.button if b.label in ("Resume", "Continue training in a copy")]
    with pytest.raises(jobs.JobError, match="cannot resume"):
        jobs.start_resume(bad, epochs=5)
    for page in ("pages/latent.py", "pages/interpolate.py", "pages/clusters.py"):
        at = run_page(page)
        assert Path(at.selectbox(key="pick_run").value).name not in ("vae-truncated", "vae-empty"), page
    compare = run_page("pages/compare.py")
    assert str(bad) not in compare.multiselect(key="compare-runs-mnist").value
