"""The shipped runs in checkpoints/: each loads with today's code (``weights_only``, the
state_dict keys it was saved with) and reproduces a figure of its eval.json, and the
latent statistics in every eval.json have the shape the models' ``caps`` promise.

The figure reproduced, chosen to be exact where that is cheap:
- latent-variable models: the code variance of every latent unit and, where declared,
  the KL of every unit, over the whole test split (the encoder only, seeded
  preprocessing as in ``eval``), to the 5 decimals eval.json keeps;
- GANs: mean D(x) of the discriminator on the whole test split, exactly;
- flows (a full-split pass of realnvp takes a minute on one CPU thread): the exact
  -log p(x) of the first 200 test images, within 5 standard errors of eval.json's mean
  (the per-image spread from its ``nll_sem``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from genlab.data import ImageData, load_split, preprocess
from genlab.evaluation.metrics import latent_stats, log_prob_split
from genlab.models import MODELS
from genlab.runs.store import load_model

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
RUNS = sorted(p.parent for p in CHECKPOINTS.glob("*/eval.json"))
N_FLOW = 200


def read(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def test_every_shipped_run_is_covered():
    assert len(RUNS) >= 20 and all((r / "checkpoint.pt").exists() for r in RUNS)


MAX_BYTES = 75_000_000  # what checkpoints/ may hold in all (the shipped runs and FID networks)


def test_the_shipped_folder_stays_within_its_budget():
    size = sum(p.stat().st_size for p in CHECKPOINTS.rglob("*") if p.is_file())
    assert size <= MAX_BYTES, f"checkpoints/ holds {size / 1e6:.2f} MB, more than {MAX_BYTES / 1e6:.0f} MB"


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_eval_json_latent_statistics_are_per_unit(run):
    """One value per latent unit; the per-unit KL sums to the KL of the same split."""
    ev, cfg = read(run, "eval.json"), read(run, "config.json")["model_config"]
    caps = MODELS[ev["model"]][0].caps
    if not caps.latent_stats:  # GANs (no encoder) and flows (the code is x transformed)
        assert not {"active_units", "code_variance", "kl_per_dim"} & set(ev)
        return
    d = cfg["latent_dim"]
    assert ev["latent_dim"] == d and len(ev["code_variance"]) == d and 0 <= ev["active_units"] <= d
    if not caps.kl_per_dim:
        assert "kl_per_dim" not in ev
        return
    kl = ev["kl_per_dim"]
    assert len(kl) == d and min(kl) >= 0
    # each value is rounded to 5 decimals
    assert sum(kl) == pytest.approx(ev["kl"], abs=d * 5e-6 + 1e-4 * ev["kl"])


@pytest.fixture(scope="module")
def test_splits(data_root):
    cache = {}

    def get(dataset: str):
        if dataset not in cache:
            cache[dataset] = load_split(dataset, "test", data_root, download=False)
        return cache[dataset]
    return get


def close_lists(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(abs(a - b) <= 2e-5 + 1e-5 * abs(b) for a, b in zip(got, want))


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_shipped_checkpoint_reproduces_its_eval(run, test_splits):
    torch.set_num_threads(1)
    ev = read(run, "eval.json")
    model, ckpt, _ = load_model(run)
    assert ckpt["epoch"] == ev["epoch"]
    data = test_splits(ev["dataset"])
    assert ev["n_images"] == len(data)
    caps = model.caps
    if caps.latent_stats:
        stats = latent_stats(model, data)
        assert close_lists(stats["code_variance"], ev["code_variance"])
        assert stats["active_units"] == ev["active_units"]
        if caps.kl_per_dim:
            assert close_lists(stats["kl_per_dim"], ev["kl_per_dim"])
    elif caps.likelihood == "exact":
        head = ImageData(data.x[:N_FLOW], data.y[:N_FLOW], data.dataset, data.split)
        nll = -log_prob_split(model, head, k=1).mean()
        spread = ev["nll_sem"] * math.sqrt(ev["n_images"])  # per-image std over the split
        assert abs(float(nll) - ev["nll_nats"]) < 5 * spread / math.sqrt(N_FLOW), (float(nll), ev["nll_nats"])
    else:  # a GAN: mean D(x) (a conditional one's D(x, y)) on the test images, dequantised
        model.eval()  # with eval's seeded noise
        g = torch.Generator().manual_seed(0)
        total = 0.0
        with torch.no_grad():
            for x, y in zip(data.x.split(500), data.y.split(500)):  # eval's batches, in order
                real = 2 * preprocess(x, model.preprocess, generator=g) - 1
                total += float(torch.sigmoid(model.critic(real, y)).double().sum())
        assert total / len(data) == pytest.approx(ev["d_real"], rel=1e-5)
