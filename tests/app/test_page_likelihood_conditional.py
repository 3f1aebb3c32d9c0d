"""Out-of-distribution page for a class-conditional run (AppTest, issue 28's views): beside
the AUROC of the marginal -log p(x), the AUROC of the best class's -max_y log p(x|y), as
genlab.evaluation.ood computes it on the same images, and its column in the table."""
from __future__ import annotations

import pytest
import torch

from explore_fixture import save_untrained
from genlab.data import load_split
from genlab.evaluation import ood
from genlab.runs import store
from runs_fixture import REPO, run_page, shown, texts

PAGE = "pages/likelihood.py"
FLOW = "realnvp-cond-untrained"


@pytest.fixture
def flow_run(tmp_path, data_root, monkeypatch) -> str:
    run = save_untrained(tmp_path, FLOW, "realnvp-cond", {"scales": 1, "couplings": 1, "width": 8},
                         data_root)
    # an untrained flow gives every class the same density (Glow's class table starts at 0):
    # a random per-class base mean and scale make the best class differ from the mixture
    ck = store.load_checkpoint(run / store.CHECKPOINT)
    table = ck["model"]["class_base.table.weight"]
    g = torch.Generator().manual_seed(0)
    ck["model"]["class_base.table.weight"] = 0.3 * torch.randn(table.shape, generator=g)
    store.save_checkpoint(run / store.CHECKPOINT, ck)
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    return str(tmp_path / FLOW)


def test_a_conditional_flow_is_also_scored_by_its_best_class(flow_run, data_root):
    at = run_page(PAGE, flow_run)
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: float(m.value) for m in at.metric}
    model, _, _ = store.load_model(flow_run, map_location="cpu")
    ref = ood.ood_compare(model, load_split("mnist", "test", data_root, limit=500),
                          load_split("fashion-mnist", "test", data_root, limit=500), k=10)
    assert ref.best_auroc is not None and ref.best_auroc != ref.auroc
    assert metrics["AUROC, fashion-mnist vs mnist"] == pytest.approx(ref.auroc, abs=5e-4)
    assert metrics["Best-class AUROC, fashion-mnist vs mnist"] == pytest.approx(ref.best_auroc, abs=5e-4)
    assert f"median -max_y log p(x | y): **{float(ref.best_in.median()):.2f}** bits/dim" in texts(at)
    table = shown(at.table[0])
    assert list(table.columns).index(ood.BEST_AUROC) == list(table.columns).index("AUROC") + 1
    assert table[ood.BEST_AUROC].tolist() == [f"{ref.best_auroc:.3f}"]
    assert "a class-conditional model's AUROC of -max_y log p(x | y)" in texts(at)
