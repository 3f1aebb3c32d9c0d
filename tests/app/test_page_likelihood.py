"""Out-of-distribution (AppTest): the fixture's 2-D VAE scored on MNIST and Fashion-MNIST
(histograms of both, the AUROC equal to genlab.ood's on the same images, the extremes in
likelihood order and a computed verdict), another image count recomputes it; with no
likelihood model in the folder the page says how to train one."""
from __future__ import annotations

import pytest

from explore_fixture import explore_root, explore_runs, figures, values  # noqa: F401
from genlab import ood, runs
from genlab.data import load_split
from runs_fixture import GOOD, run_page, texts

PAGE = "pages/likelihood.py"


def test_two_datasets_their_auroc_and_a_verdict(explore_runs, data_root):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    hist = [f for f in figures(at) if f["data"][0]["type"] == "histogram"]
    assert len(hist) == 1 and [t["name"] for t in hist[0]["data"]] == [
        "mnist (own test set)", "fashion-mnist test set"]
    shown = float(next(m for m in at.metric if m.label.startswith("AUROC")).value)
    model, _, _ = runs.load_model(explore_runs[GOOD], map_location="cpu")
    ref = ood.ood_compare(model, load_split("mnist", "test", data_root, limit=500),
                          load_split("fashion-mnist", "test", data_root, limit=500), k=10)
    assert shown == pytest.approx(ref.auroc, abs=5e-4)  # same images, same seed, 3 decimals
    verdicts = at.session_state["ood_verdicts"]
    assert len(verdicts) == 1 and verdicts[0].startswith("vae (mnist) gives fashion-mnist")
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
    hist = [f for f in figures(at) if f["data"][0]["type"] == "histogram"][0]
    assert [len(values(t["x"])) for t in hist["data"]] == [200, 200]  # one score per image


def test_no_likelihood_model_says_how_to_train(empty_runs):
    at = run_page(PAGE)
    assert not at.exception
    assert "No run to show here" in texts(at) and "python -m genlab train" in texts(at)
