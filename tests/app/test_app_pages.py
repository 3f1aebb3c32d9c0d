"""AppTest: every page of the navigation runs without an exception on the fixture runs,
and Home shows each run, the empty-folder message and a broken run's error line."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from pages import PAGES
from runs_fixture import BROKEN, FAIL_MSG, FAILED, GOOD, NO_RUNS, REPO, TIMEOUT, run_page, shown, texts

HOME = next(p.file for p in PAGES if not p.url_path)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.url_path or "home")
def test_every_page_runs(app_runs, page):
    at = run_page(page.file)
    assert not at.exception, [e.value for e in at.exception]
    assert "Device" in "\n".join(m.value for m in at.sidebar.markdown)  # the shared sidebar
    assert str(app_runs) in "\n".join(c.value for c in at.sidebar.caption)


def test_home_shows_every_run(app_runs):
    at = run_page(HOME)
    assert not at.exception
    tiles = "\n".join(m.value for m in at.markdown)
    for name in (GOOD, FAILED, BROKEN):
        assert f"**{name}**" in tiles, (name, tiles)
    assert not at.subheader and len(at.image) == 1  # no card until one is asked for (only
    # the good run's tile has a readable grid) ...
    assert "Pick a run here or with a tile's Details button" in texts(at)
    at.button(key=f"details-{app_runs / GOOD}").click().run()  # ... its tile's Details button
    assert at.subheader[0].value.endswith(GOOD) and at.selectbox(key="home-details").value == str(app_runs / GOOD)
    text = texts(at)
    assert "latent_dim=2" in text and "hidden=64" in text  # key config of the real run
    assert "nats" in text and "active latent units" in text  # its eval.json line
    assert len(at.image) == 2  # the good run's sample grid: its tile and its card
    assert "epoch_001.png: not a readable image" in text  # the failed run's broken one


def test_home_is_ordered_labelled_and_counts_what_it_shows(app_runs):
    """Issue 13, item 5: runs by dataset and family, each tile with its headline figure,
    a filtered list says how many of how many, and empty cells read "—", not "None"."""
    at = run_page(HOME)
    names = list(at.table[0].value["run"])
    assert names == [FAILED, GOOD, BROKEN]  # mnist vae runs by name, the unreadable one last
    ev = json.loads((app_runs / GOOD / "eval.json").read_text())
    assert f"{ev['nll_nats']:.1f} nats" in "\n".join(c.value for c in at.caption)
    overview = at.table[0].value
    assert overview.isna().any().any()  # some cells are empty (a failed run has no eval) ...
    cells = shown(at.table[0]).to_numpy().ravel().tolist()
    assert "—" in cells and not {"None", "nan", "<NA>"} & set(cells)  # ... and read "—"
    assert at.header[0].value == "Runs (3)"
    at.multiselect(key="home-status").set_value(["done"]).run()
    assert at.header[0].value == "Runs (1 of 3)"
    assert list(at.table[0].value["run"]) == [GOOD]


def test_home_tables_hold_the_run_files_numbers(app_runs):
    at = run_page(HOME)
    overview = at.table[0].value
    assert set(overview["run"]) == {GOOD, FAILED, BROKEN}
    good = overview[overview["run"] == GOOD].iloc[0]
    assert good["model"] == "vae" and good["epoch"] == 2 and good["status"] == "done"
    records = [json.loads(line) for line in (app_runs / GOOD / "metrics.jsonl").open()]
    last_val = [r for r in records if r["event"] == "epoch" and r["split"] == "val"][-1]
    ev = json.loads((app_runs / GOOD / "eval.json").read_text())
    assert good["val loss (nats)"] == pytest.approx(last_val["loss"])
    assert good["test −log p(x) (nats)"] == pytest.approx(ev["nll_nats"])
    at.button(key=f"details-{app_runs / GOOD}").click().run()  # its card's table
    table = next(df.value for df in at.table[1:] if "test" in df.value.columns)
    assert list(table.columns) == ["metric", "train", "val", "test"]
    assert list(table["metric"])[:2] == ["loss", "elbo"]
    by_metric = table.set_index("metric")
    for name in ("loss", "recon", "kl"):
        assert by_metric.loc[name, "val"] == pytest.approx(last_val[name])
        assert by_metric.loc[name, "test"] == pytest.approx(ev[name])


def test_failed_and_broken_runs_show_one_line_not_a_traceback(app_runs):
    at = run_page(HOME)
    assert not at.exception
    errors = "\n".join(e.value for e in at.error)
    assert FAIL_MSG in errors
    assert f"{BROKEN}/config.json: not valid JSON" in errors
    assert "Traceback" not in texts(at)
    warnings = "\n".join(w.value for w in at.warning)
    assert "1 unreadable line(s)" in warnings  # the failed run's torn metrics line


def test_empty_folder_says_how_to_train(empty_runs):
    at = run_page(HOME)
    assert not at.exception
    info = "\n".join(i.value for i in at.info)
    assert NO_RUNS in info and "python -m genlab train --model vae" in info
    assert not at.subheader


def test_sidebar_folder_input_switches_runs(app_runs, empty_runs):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.sidebar.text_input(key="runs_folders").set_value(str(app_runs)).run()
    assert not at.exception
    assert f"**{GOOD}**" in "\n".join(m.value for m in at.markdown)  # its tile
    at.sidebar.text_input(key="runs_folders").set_value(str(empty_runs)).run()
    assert NO_RUNS in "\n".join(i.value for i in at.info)
