"""Out-of-distribution (AppTest): the fixture's 2-D VAE scored on MNIST and Fashion-MNIST
(histograms of both as one plotly figure, each the densities of its per-image scores, the
AUROC equal to genlab.evaluation.ood's on the same images, the extremes in likelihood order and a
computed verdict), another image count recomputes it; with no likelihood model in the
folder the page says how to train one."""
from __future__ import annotations

import numpy as np
import pytest

from explore_fixture import FLOW, figures
from genlab.data import load_split
from genlab.evaluation import ood
from genlab.runs import store
from runs_fixture import GOOD, run_page, shown, texts

PAGE = "pages/likelihood.py"
NAMES = ["mnist (own test set)", "fashion-mnist test set"]


def _histogram(at) -> list[dict]:
    """The one histogram figure's bar traces."""
    found = [f for f in figures(at) if f["data"] and all(t.get("type") == "bar" for t in f["data"])]
    assert len(found) == 1
    lay = found[0]["layout"]
    assert lay["barmode"] == "overlay" and lay["yaxis"]["title"]["text"] == "density"
    return found[0]["data"]


def _same_bins(bars: list[dict], ref: ood.OODResult) -> None:
    """The bars are the density histograms of ref's scores (one per image) on common bins."""
    scores = [ref.score_in.numpy(), ref.score_out.numpy()]
    centres = np.asarray(bars[0]["x"], dtype=float)
    width = np.diff(centres).mean()
    assert np.diff(centres) == pytest.approx(np.full(len(centres) - 1, width), rel=1e-3)
    assert [np.asarray(b["x"], dtype=float).tolist() for b in bars] == [centres.tolist()] * 2  # common bins
    edges = np.append(centres - width / 2, centres[-1] + width / 2)
    for b, s in zip(bars, scores):
        dens = np.asarray(b["y"], dtype=float)
        assert (dens * width).sum() == pytest.approx(1.0, abs=0.02)  # all but the tails
        assert dens == pytest.approx(np.histogram(s, bins=edges)[0] / (len(s) * width), rel=2e-3)


def test_two_datasets_their_auroc_and_a_verdict(explore_runs, data_root):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    bars = _histogram(at)
    assert [b["name"] for b in bars] == NAMES
    shown = float(next(m for m in at.metric if m.label.startswith("AUROC")).value)
    model, _, _ = store.load_model(explore_runs[GOOD], map_location="cpu")
    ref = ood.ood_compare(model, load_split("mnist", "test", data_root, limit=500),
                          load_split("fashion-mnist", "test", data_root, limit=500), k=10)
    assert shown == pytest.approx(ref.auroc, abs=5e-4)  # same images, same seed, 3 decimals
    _same_bins(bars, ref)
    verdicts = at.session_state["ood_verdicts"]
    assert len(verdicts) == 1 and verdicts[0].startswith(f"{GOOD} (vae on mnist) gives fashion-mnist")
    assert f"AUROC {ref.auroc:.3f}" in verdicts[0]
    captions = [c for im in at.image for c in im.captions]
    assert "mnist: the 8 most likely images" in captions
    assert "fashion-mnist: the 8 least likely images" in captions
    at.select_slider(key="ood-n").set_value(200).run()
    assert not at.exception
    ref200 = ood.ood_compare(model, load_split("mnist", "test", data_root, limit=200),
                             load_split("fashion-mnist", "test", data_root, limit=200), k=10)
    got = float(next(m for m in at.metric if m.label.startswith("AUROC")).value)
    assert got == pytest.approx(ref200.auroc, abs=5e-4)
    _same_bins(_histogram(at), ref200)  # one score per image of the 200


def test_no_likelihood_model_says_how_to_train(empty_runs):
    at = run_page(PAGE)
    assert not at.exception
    assert "No run to show here" in texts(at) and "python -m genlab train" in texts(at)


def test_the_chosen_runs_in_one_auroc_table_and_headings_that_name_the_run(explore_runs):
    """Issue 24, item 10: a table across the chosen runs (one row per run and other set:
    the AUROC as each run's own section shows it, the medians, their unit, how log p(x)
    was got), and each section's headings name the run, not only its family."""
    at = run_page(PAGE, explore_runs[GOOD])
    at.multiselect(key="ood_runs").set_value([explore_runs[GOOD], explore_runs[FLOW]]).run()
    assert not at.exception, [e.value for e in at.exception]
    headers = [h.value for h in at.header]
    assert headers[0] == "AUROC across the chosen runs"
    assert f"{GOOD}: vae on mnist" in headers and f"{FLOW}: realnvp on mnist" in headers
    subs = [h.value for h in at.subheader]
    assert f"{GOOD}: mnist vs fashion-mnist" in subs and f"{FLOW}: mnist vs fashion-mnist" in subs
    table = shown(at.table[0])
    assert table["run"].tolist() == [GOOD, FLOW]
    assert table["unit"].tolist() == ["nats", "bits/dim"]  # the binarised VAE, the 8-bit flow
    assert table["log p(x)"].tolist() == ["IWAE, k = 10", "exact"]
    metrics = [m.value for m in at.metric if m.label.startswith("AUROC")]
    assert table["AUROC"].tolist() == metrics  # the table says what each section says
    rows = at.session_state["ood_rows"]
    assert [f"{r['median -log p(x), own test set']:.2f}" for r in rows] == \
        table["median -log p(x), own test set"].tolist()
    assert table["images per set"].tolist() == ["500", "500"]
    assert "One row per run and other set, on the first 500 images of each test split" in texts(at)
