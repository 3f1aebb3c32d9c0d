"""Compare page, a class-conditional run beside its unconditional family (AppTest, issue 28):
the section's table holds both runs with the likelihoods genlab.evaluation.compare computes
and eval.json's, its figures are plotly charts, the second pick defaults to the family's
run, and a conditional run picked without its family gets one line naming that family's
runs (or saying there is none)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from explore_fixture import figures, save_untrained
from genlab.evaluation import compare
from genlab.evaluation.images import test_images as first_test_images
from genlab.evaluation.metrics import evaluate_run
from genlab.runs import store
from runs_fixture import point_app_at, run_page, texts

PAGE = "pages/compare.py"
COND, FLOW, CGAN, GAN = "realnvp-cond-tiny", "realnvp-tiny", "cgan-tiny", "gan-tiny"
GAN_CFG = {"latent_dim": 8, "hidden": [32]}
FLOW_CFG = {"scales": 1, "couplings": 1, "width": 8}
SECTION = "Conditional against unconditional"


def initialised(run: Path, data_root: Path, *, class_table: bool) -> None:
    """The run's checkpoint with its ActNorm layers initialised on 100 training images (else
    each fresh load would initialise them on whatever it scores first), and for a
    conditional flow a random class table (an untrained one gives every class the same
    density: Glow's table starts at 0)."""
    from genlab.data import load_split, prepare, preprocess

    model, _, _ = store.load_model(run, map_location="cpu")
    data = prepare(load_split("mnist", "train", data_root, limit=100), model.preprocess)
    with torch.no_grad():
        if class_table:
            table = model.class_base.table.weight
            table.copy_(0.3 * torch.randn(table.shape, generator=torch.Generator().manual_seed(0)))
        model.log_prob(preprocess(data.x, model.preprocess))
    ck = store.load_checkpoint(run / store.CHECKPOINT)
    store.save_checkpoint(run / store.CHECKPOINT, {**ck, "model": model.state_dict()})


@pytest.fixture(scope="module")
def cond_root(tmp_path_factory, data_root) -> Path:
    """An untrained realnvp-cond and realnvp (:func:`initialised`), both evaluated on 100
    test images, and an untrained cgan and gan; the flow the oldest run."""
    root = tmp_path_factory.mktemp("compare-conditional")
    for name, model, cfg in ((FLOW, "realnvp", FLOW_CFG), (GAN, "gan", GAN_CFG),
                             (CGAN, "cgan", GAN_CFG), (COND, "realnvp-cond", FLOW_CFG)):
        run = save_untrained(root, name, model, cfg, data_root)
        if "gan" not in model:
            initialised(run, data_root, class_table=model == "realnvp-cond")
            evaluate_run(run, limit=100, device="cpu", fid_n=0, data_root=data_root)
    for age, name in enumerate((FLOW, GAN, CGAN, COND)):  # find_runs lists the newest first
        os.utime(root / name / store.CONFIG, (1e9 + age, 1e9 + age))
    return root


@pytest.fixture
def env(cond_root, data_root, monkeypatch) -> Path:
    return point_app_at(cond_root, data_root, monkeypatch)


@pytest.fixture
def alone(cond_root, data_root, tmp_path, monkeypatch) -> Path:
    """The two conditional runs without their families."""
    for name in (CGAN, COND):
        shutil.copytree(cond_root / name, tmp_path / name)
    return point_app_at(tmp_path, data_root, monkeypatch)


def pick(at, root: Path, *names: str):
    return at.multiselect(key="compare-runs-mnist").set_value([str(root / n) for n in names]).run()


def section_table(at):
    return next(d.value for d in at.table if compare.GIVEN in d.value.columns)


def test_the_conditional_run_beside_its_family(env, data_root):
    at = run_page(PAGE, str(env / COND))
    assert not at.exception, [e.value for e in at.exception]
    # the second pick is the family's run, though the cgan and gan are listed before it
    assert at.multiselect(key="compare-runs-mnist").value == [str(env / COND), str(env / FLOW)]
    assert SECTION in [h.value for h in at.header]
    at = at.select_slider(key="cond-n").set_value(100).run()
    assert not at.exception, [e.value for e in at.exception]
    table = section_table(at)
    assert list(table["run"]) == [COND, FLOW]
    assert list(table["labels"]) == ["class-conditional", "unconditional"]
    assert list(table["unit"]) == ["bits/dim", "bits/dim"] and list(table["images"]) == [100, 100]
    data = first_test_images("mnist", 100, data_root)
    for i, name in enumerate((COND, FLOW)):
        model, _, _ = store.load_model(env / name, map_location="cpu")
        want = compare.likelihoods(model, data).summary()
        row = table.iloc[i]
        assert row[compare.MARGINAL] == pytest.approx(want["nll"])
        ev = json.loads((env / name / store.EVAL).read_text())
        assert row[compare.STORED] == pytest.approx(ev["bpd"])  # eval's, on its own 100 images
        assert row[compare.MARGINAL] == pytest.approx(ev["bpd"], abs=1e-4)  # the same images
    cond = table.iloc[0]
    assert cond[compare.GIVEN] == pytest.approx(want_given(env, data))
    assert cond[compare.GAP] == pytest.approx(cond[compare.MARGINAL] - cond[compare.GIVEN])
    assert np.isfinite(cond[list(compare.PAIR_FORMATS)].to_numpy(float)).all()
    assert np.isfinite(table.iloc[1][[compare.MARGINAL, compare.STORED]].to_numpy(float)).all()
    charts = [c for c in figures(at) if c["data"]]
    scatter = next(c for c in charts if c["data"][0].get("name", "").startswith("y = x"))
    assert sum(len(t["customdata"]) for t in scatter["data"][1:]) == 100  # every image a point
    hist = next(c for c in charts if "−log p(x)" in c["data"][0].get("name", ""))
    assert [t["name"] for t in hist["data"]] == [f"{COND}: −log p(x)", f"{FLOW}: −log p(x)"]
    assert "both hold on all 100 images" in texts(at)
    assert "one row per class" not in texts(at)  # untrained: no sample grids stored


def want_given(env: Path, data) -> float:
    model, _, _ = store.load_model(env / COND, map_location="cpu")
    return compare.likelihoods(model, data).summary()["nll_given"]


def test_without_its_family_one_line_names_the_familys_runs(env):
    at = pick(run_page(PAGE), env, COND, CGAN)
    assert not at.exception, [e.value for e in at.exception]
    assert SECTION in [h.value for h in at.header]
    assert notes(at) == [
        f"**{COND}** (realnvp-cond) is the class-conditional variant of realnvp: pick one of its "
        f"runs to set beside it ({FLOW}).",
        f"**{CGAN}** (cgan) is the class-conditional variant of gan: pick one of its runs to set "
        f"beside it ({GAN})."]
    assert not any(compare.GIVEN in d.value.columns for d in at.table)  # no pair, no table
    assert "Traceback" not in texts(at)


def test_with_no_run_of_its_family_one_line_says_so(alone):
    at = pick(run_page(PAGE), alone, COND, CGAN)
    assert not at.exception, [e.value for e in at.exception]
    assert notes(at) == [
        f"**{COND}** (realnvp-cond) is the class-conditional variant of realnvp; there is no "
        "realnvp run on mnist to set beside it.",
        f"**{CGAN}** (cgan) is the class-conditional variant of gan; there is no gan run on mnist "
        "to set beside it."]
    assert "Traceback" not in texts(at)


def notes(at) -> list[str]:
    return [c.value for c in at.caption if "class-conditional variant of" in c.value]


def test_gans_show_their_samples_and_no_likelihood(env):
    at = pick(run_page(PAGE), env, CGAN, GAN)
    assert not at.exception, [e.value for e in at.exception]
    table = section_table(at)
    assert list(table["run"]) == [CGAN, GAN] and list(table["log p(x)"]) == ["no likelihood"] * 2
    assert table[list(compare.PAIR_FORMATS)].isna().all().all()
    assert f"{CGAN}: no likelihood; its samples are what compares." in texts(at)
    assert not any(c["data"] and c["data"][0].get("name", "").startswith("y = x") for c in figures(at))


def test_a_selection_without_a_conditional_run_has_no_section(env):
    at = pick(run_page(PAGE), env, FLOW, GAN)
    assert not at.exception
    assert SECTION not in [h.value for h in at.header]
