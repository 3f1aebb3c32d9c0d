"""AppTest, Home (issue 24): each run's sample grid at its model's default temperature
(the flows at 0.7) with that T in the caption; an unreadable eval.json and a run folder
whose config.json was deleted named as such (the latter listed as broken, not dropped);
the links into the pages offered only for runs those pages list; one unit a column in the
runs table; a budget-limited run read as a budget."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from genlab.evaluation.metrics import evaluate_run
from genlab.figures import tables
from genlab.models.gan import GANConfig
from genlab.models.realnvp import RealNVPConfig
from genlab.runs import store, status, views
from genlab.training.train import TrainConfig, train_run
from pages import PAGES
from runs_fixture import GOOD, REPO, run_page, shown, texts

HOME = "pages/home.py"
NO_CONFIG, BAD_EVAL, FLOW, GAN = "vae-no-config", "vae-garbage-eval", "realnvp-tiny", "gan-tiny"
BUDGET = {"epochs": 100000, "max_minutes": 8.0, "budget_clock": "cpu"}  # as the shipped recipe


def _tiny(root: Path, name: str, model: str, cfg, data_root: Path) -> Path:
    run = store.new_run_dir(root, name)
    store.write_config(run, model, cfg, TrainConfig(
        dataset="mnist", epochs=1, batch_size=100, limit=200, log_every=1, n_samples=4,
        data_root=str(data_root), device="cpu"))
    train_run(run)
    return run


@pytest.fixture(scope="module")
def home_root(runs_root, data_root, tmp_path_factory) -> Path:
    """The shared fixture's trained VAE, a copy whose config.json was deleted, one whose
    eval.json is garbage, a real one-epoch RealNVP (evaluated; its config then made a
    budget run's, as the shipped runs are) and a real one-epoch GAN."""
    root = tmp_path_factory.mktemp("home-runs")
    for name in (GOOD, NO_CONFIG, BAD_EVAL):
        shutil.copytree(runs_root / GOOD, root / name)
    (root / NO_CONFIG / store.CONFIG).unlink()
    (root / BAD_EVAL / store.EVAL).write_text('{"split": "test", "nll_nats": 8')  # cut short
    flow = _tiny(root, FLOW, "realnvp", RealNVPConfig(scales=1, couplings=1, width=8), data_root)
    evaluate_run(flow, k=1, limit=100, device="cpu")
    cfg = json.loads((flow / store.CONFIG).read_text())
    cfg["train"].update(BUDGET)
    (flow / store.CONFIG).write_text(json.dumps(cfg))
    _tiny(root, GAN, "gan", GANConfig(latent_dim=8, hidden=(32,)), data_root)
    return root


@pytest.fixture
def home(home_root, data_root, monkeypatch) -> Path:
    monkeypatch.setenv("GENLAB_RUNS", str(home_root))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    return home_root


def _card(home: Path, name: str):
    at = run_page(HOME)
    at.button(key=f"details-{home / name}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.subheader[0].value.endswith(name)
    return at


def _tiles(at) -> dict[str, tuple[str, str]]:
    """Each run's tile image as (URL, caption); the tiles come in the table's order, each
    with its grid. The URL is a hash of the pixels shown: the same pixels, the same URL."""
    return {name: (im.value[0], im.captions[0])
            for name, im in zip(at.table[0].value["run"], at.image)}


# -- item 5: the default temperature --------------------------------------------------------
def test_each_run_is_shown_at_its_default_temperature_and_says_which(home, tmp_path, monkeypatch):
    """Beside the flow, a copy whose only grid is the flow's T = 0.7 grid stored as its T = 1
    grid, and one whose only grid is its T = 1 grid: the flow's tile shows the pixels of the
    first, not of the second."""
    flow_t1 = home / FLOW / "samples" / "epoch_001.png"
    flow_t07 = store.sample_grid(home / FLOW, 1, 0.7)
    assert flow_t1.read_bytes() != flow_t07.read_bytes()  # the two grids differ
    root = tmp_path / "runs"
    for name in (FLOW, GOOD):
        shutil.copytree(home / name, root / name)
    as_t1, t1_only = (shutil.copytree(home / FLOW, root / n) for n in ("flow-07-as-t1", "flow-t1-only"))
    for run in (as_t1, t1_only):
        shutil.rmtree(run / "samples" / "t0.7")
    shutil.copy(flow_t07, as_t1 / "samples" / "epoch_001.png")
    monkeypatch.setenv("GENLAB_RUNS", str(root))
    at = run_page(HOME)
    assert not at.exception, [e.value for e in at.exception]
    tiles = _tiles(at)
    assert tiles[FLOW][1] == "T = 0.7" and tiles[t1_only.name][1] == "T = 1"
    assert tiles[FLOW][0] == tiles[as_t1.name][0] != tiles[t1_only.name][0]
    assert tiles[GOOD][1] == "T = 1"  # a VAE declares T = 1: its plain grid
    at.button(key=f"details-{root / FLOW}").click().run()
    captions = [c for im in at.image for c in im.captions]
    assert "samples after epoch 1, T = 0.7 (realnvp's default)" in captions
    at.button(key=f"details-{root / GOOD}").click().run()
    captions = [c for im in at.image for c in im.captions]
    assert "samples after epoch 2, T = 1 (vae's default)" in captions


def test_a_run_without_its_default_temperature_grid_falls_back_to_t1_and_says_so(home, tmp_path):
    old = shutil.copytree(home / FLOW, tmp_path / "realnvp-old")
    shutil.rmtree(old / "samples" / "t0.7")  # a flow trained before the tempered grids
    s = status.summarize(old)
    assert s.sample == old / "samples" / "epoch_001.png" and s.sample_temperature == 1.0
    assert tables.sample_caption(s) == "samples after epoch 1, T = 1 (no grid at realnvp's default T = 0.7)"
    assert status.summarize(home / FLOW).sample == store.sample_grid(home / FLOW, 1, 0.7)


# -- item 7: faults named as what they are ---------------------------------------------------
def test_a_garbage_eval_json_is_named_not_called_missing(home):
    at = _card(home, BAD_EVAL)
    path = home / BAD_EVAL / store.EVAL
    warnings = [w.value for w in at.warning]
    line = next(w for w in warnings if f"{path}: not valid JSON" in w and "python -m genlab eval" in w)
    assert "\n" not in line.strip()
    assert "No eval.json yet" not in texts(at)
    assert any(f"**{BAD_EVAL}**: {path}: not valid JSON" in w for w in warnings)  # the list's line too
    compare = run_page("pages/compare.py")  # Compare, which offers to evaluate it, says the same
    compare = compare.multiselect(key="compare-runs-mnist").set_value(
        [str(home / GOOD), str(home / BAD_EVAL)]).run()
    assert not compare.exception, [e.value for e in compare.exception]
    warnings = [w.value for w in compare.warning]
    assert any(f"**{BAD_EVAL}**: {path}: not valid JSON" in w for w in warnings), warnings
    assert not any(w.startswith("No eval.json yet") and BAD_EVAL in w for w in warnings), warnings
    shutil.move(home / GOOD / store.EVAL, home / "eval.kept")
    try:  # a run with no eval.json at all still says so
        good = _card(home, GOOD)
        assert f"No eval.json yet: `python -m genlab eval {home / GOOD}`" in texts(good)
        assert not [w for w in good.warning if str(home / GOOD / store.EVAL) in w.value]
    finally:
        shutil.move(home / "eval.kept", home / GOOD / store.EVAL)


def test_a_run_whose_config_was_deleted_is_listed_as_broken_with_the_reason(home):
    at = run_page(HOME)
    assert at.header[0].value == "Runs (5)"
    overview = at.table[0].value.set_index("run")
    assert overview.loc[NO_CONFIG, "status"] == "broken"
    path = home / NO_CONFIG / store.CONFIG
    errors = [e.value for e in at.error]
    assert any(f"**{NO_CONFIG}** broken: {path}: missing" in e and "checkpoint.pt" in e
               and "cannot be rebuilt" in e for e in errors), errors
    assert NO_CONFIG in [Path(p).name for p in map(str, status.run_dirs(home))]
    assert NO_CONFIG not in [p.name for p in store.find_runs(home)]  # the pages' pickers' list
    latent = run_page("pages/latent.py")
    assert not latent.exception
    assert str(home / NO_CONFIG) not in latent.selectbox(key="pick_run").options


# -- item 9: links only into pages that list the run -------------------------------------------
def _links(at) -> set[str]:
    return {b.label for b in at.button if b.key and b.key.startswith("open-")}


def test_home_offers_each_page_only_for_the_runs_it_can_show(home):
    offered = {name: _links(_card(home, name)) for name in (GOOD, FLOW, GAN)}
    assert "True posterior" in offered[GOOD]  # a VAE with a 2-D latent
    assert "True posterior" not in offered[FLOW] and "True posterior" not in offered[GAN]
    assert "Out-of-distribution" in offered[FLOW] and "Out-of-distribution" not in offered[GAN]
    assert "Clusters" not in offered[GAN]  # no encoder
    assert {"Train", "Compare", "Latent explorer", "Interpolation"} <= offered[GAN]
    # the same function decides on Home and in the page's picker: Clusters lists exactly the
    # runs Home offers it for (no GAN, no run without a config)
    clusters = run_page("pages/clusters.py")
    assert not clusters.exception, [e.value for e in clusters.exception]
    listed = {label.split(" · ")[0] for label in clusters.selectbox(key="pick_run").options}
    assert listed == {GOOD, BAD_EVAL, FLOW}
    assert {n for n, links in offered.items() if "Clusters" in links} == listed & set(offered)


def test_each_page_lists_runs_by_the_function_pages_names():
    """The pickers pass genlab.runs.views' functions (not a copy of the test): each page's
    source names the function its PageSpec holds, and no page compares a family's name."""
    for p in (p for p in PAGES if p.shows is not None):
        source = (REPO / p.file).read_text()
        assert f"views.{p.shows.__name__}" in source, p.file
        assert p.shows.__module__ == views.__name__
    from genlab.models import MODELS

    posterior = next(p for p in PAGES if p.url_path == "posterior")
    can = {m for m, (cls, _) in MODELS.items() if posterior.can_show(cls, {"latent_dim": 2})}
    assert "realnvp" not in can and "gan" not in can and "vae" in can
    vae = MODELS["vae"][0]
    assert not posterior.can_show(vae, {"latent_dim": 20}) and not posterior.can_show(None, {})


# -- item 10: one unit a column ---------------------------------------------------------------
def test_the_runs_table_keeps_one_unit_a_column(home):
    at = run_page(HOME)
    table = at.table[0].value.set_index("run")
    cols = list(table.columns)
    assert "val loss" not in cols
    assert {"val loss (nats)", "val bits/dim", "val D loss", "val G loss",
            "test −log p(x) (nats)", "test bits/dim"} <= set(cols)
    last_val = {}
    for name in (GOOD, FLOW, GAN):
        recs = [json.loads(line) for line in (home / name / store.METRICS).open()]
        last_val[name] = [r for r in recs if r.get("event") == "epoch" and r.get("split") == "val"][-1]
    assert table.loc[GOOD, "val loss (nats)"] == pytest.approx(last_val[GOOD]["loss"])
    assert table.loc[FLOW, "val bits/dim"] == pytest.approx(last_val[FLOW]["bpd"])
    assert table.loc[GAN, "val D loss"] == pytest.approx(last_val[GAN]["d_loss"])
    assert table.loc[GAN, "val G loss"] == pytest.approx(last_val[GAN]["g_loss"])
    cells = shown(at.table[0]).set_index("run")
    # the flow's negative nats and the GAN's losses are not in the nats column, and so on
    assert cells.loc[FLOW, "val loss (nats)"] == "—" and cells.loc[GAN, "val loss (nats)"] == "—"
    assert cells.loc[GOOD, "val bits/dim"] == "—" and cells.loc[GOOD, "val D loss"] == "—"
    assert cells.loc[FLOW, "test −log p(x) (nats)"] == "—"
    ev = json.loads((home / FLOW / store.EVAL).read_text())
    assert table.loc[FLOW, "test bits/dim"] == pytest.approx(ev["bpd"])
    assert "nats per image" in texts(at) and "bits/dim on 8-bit pixels" in texts(at)


# -- item 8 (Home's part): a budget reads as one --------------------------------------------
def test_a_budget_run_reads_as_a_budget_not_of_100000_epochs(home):
    text = texts(_card(home, FLOW))
    assert "train and val after 1 epoch in an 8-CPU-minute budget" in text
    assert "100000" not in text.replace("epochs=100000", "")  # the config line may list it
    text = texts(_card(home, GOOD))
    assert "train and val after epoch 2 of 2" in text


@pytest.mark.parametrize("epoch, train, says", [
    (67, BUDGET, "67 epochs in an 8-CPU-minute budget"),
    (1, {**BUDGET, "max_minutes": 20}, "1 epoch in a 20-CPU-minute budget"),
    (3, {"epochs": 50, "max_minutes": 11, "budget_clock": "wall"}, "3 epochs in an 11-minute budget"),
    (20, {"epochs": 20, "max_minutes": 5, "budget_clock": "wall"}, "epoch 20 of 20 (within a 5-minute budget)"),
    (2, {"epochs": 20, "max_minutes": 0.0}, "epoch 2 of 20"),
    (2, {}, "epoch 2 of ?"),
])
def test_budget_phrase(epoch, train, says):
    assert status.budget_phrase(epoch, train) == says
