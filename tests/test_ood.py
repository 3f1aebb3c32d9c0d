"""genlab.evaluation.ood: the AUROC against a hand-counted Mann-Whitney statistic with ties,
per-image scores against metrics (nats, bits/dim), image matching (greyscale, resize),
extremes, determinism, and a real MNIST vs Fashion-MNIST comparison."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.data import ImageData
from genlab.evaluation import ood
from genlab.evaluation.metrics import bits_per_dim, log_prob_split
from genlab.models import build_model

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "vae-2d-mnist"


def mann_whitney(s_in, s_out) -> float:
    """P(out > in) + P(tie)/2 by counting every pair."""
    wins = sum(1.0 if o > i else 0.5 if o == i else 0.0 for i in s_in for o in s_out)
    return wins / (len(s_in) * len(s_out))


def test_auroc_is_the_mann_whitney_count_with_ties():
    s_in = torch.tensor([1.0, 2.0, 2.0, 3.0])
    s_out = torch.tensor([2.0, 3.0, 3.0, 5.0, 0.0])
    # pairs: out=2 -> 1 + 0.5 + 0.5 + 0 = 2; out=3 -> 3.5 each; out=5 -> 4; out=0 -> 0
    assert mann_whitney(s_in.tolist(), s_out.tolist()) == pytest.approx(13 / 20)
    assert ood.auroc(s_in, s_out) == pytest.approx(13 / 20)
    assert ood.auroc(s_out, s_in) == pytest.approx(1 - 13 / 20)
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (30,), generator=g).double()  # many ties
    b = torch.randint(1, 8, (25,), generator=g).double()
    assert ood.auroc(a, b) == pytest.approx(mann_whitney(a.tolist(), b.tolist()))
    with pytest.raises(ValueError, match="at least one image"):
        ood.auroc(torch.tensor([]), b)


def random_images(n: int, shape=(1, 28, 28), seed: int = 0, name: str = "mnist") -> ImageData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    return ImageData(x, torch.zeros(n, dtype=torch.int64), name, "test")


def test_bits_per_dim_scores_agree_with_metrics():
    model = build_model("nice", {"couplings": 2, "hidden": [16]})
    data = random_images(12)
    scores = ood.per_image_scores(model, data, seed=3)
    assert ood.score_unit(model) == "bits/dim"
    nll = -log_prob_split(model, data, k=1, seed=3)
    D = 28 * 28
    torch.testing.assert_close(scores, torch.tensor([bits_per_dim(float(v), D) for v in nll],
                                                    dtype=torch.float64))
    # the mean of per-image bits/dim is the bits/dim of the mean nll (eval.json's figure)
    assert float(scores.mean()) == pytest.approx(bits_per_dim(float(nll.mean()), D))
    torch.testing.assert_close(ood.per_image_scores(model, data, seed=3), scores)  # seeded


def test_binarised_scores_are_nats_and_seeded():
    model = build_model("vae", {"latent_dim": 2, "hidden": [16]})
    data = random_images(10)
    assert ood.score_unit(model) == "nats"
    a = ood.per_image_scores(model, data, k=5, seed=1)
    torch.testing.assert_close(a, -log_prob_split(model, data, k=5, seed=1))
    torch.testing.assert_close(ood.per_image_scores(model, data, k=5, seed=1), a)
    assert not torch.equal(ood.per_image_scores(model, data, k=5, seed=2), a)


def test_match_images_greyscales_and_resizes():
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    x[0, 0], x[0, 1], x[0, 2] = 200, 100, 50  # a flat colour
    x[1, :, :16] = 255  # top half white
    data = ImageData(x, torch.zeros(2, dtype=torch.int64), "svhn", "test")
    matched, note = ood.match_images(data, (1, 28, 28))
    assert matched.x.shape == (2, 1, 28, 28) and matched.x.dtype == torch.uint8
    assert note == "greyscaled, resized from 32x32 to 28x28"
    luma = 0.2989 * 200 + 0.587 * 100 + 0.114 * 50
    assert (matched.x[0].float() - luma).abs().max() <= 1
    assert matched.x[1, 0, :12].min() >= 254 and matched.x[1, 0, 16:].max() == 0
    same, note = ood.match_images(random_images(3), (1, 28, 28))
    assert note == "" and torch.equal(same.x, random_images(3).x)
    rgb, note = ood.match_images(random_images(2), (3, 28, 28))
    assert note == "grey copied to 3 channels" and torch.equal(rgb.x[:, 0], rgb.x[:, 2])
    with pytest.raises(ValueError, match="channels"):
        ood.match_images(random_images(2, (2, 28, 28)), (1, 28, 28))


def test_ood_compare_extremes_and_errors():
    model = build_model("nice", {"couplings": 2, "hidden": [16]})
    a, b = random_images(9, seed=0), random_images(7, seed=1, name="fashion-mnist")
    b.x[:3] = 0  # three blank images: by far the most likely under a flow
    r = ood.ood_compare(model, a, b, k=1, n_extremes=3)
    assert r.unit == "bits/dim" and r.in_dataset == "mnist" and r.out_dataset == "fashion-mnist"
    assert r.auroc == pytest.approx(ood.auroc(r.score_in, r.score_out))
    assert sorted(r.most_likely_out.tolist()) == [0, 1, 2]
    order = torch.argsort(r.score_in)
    assert r.most_likely_in.tolist() == order[:3].tolist()
    assert r.least_likely_in.tolist() == order.flip(0)[:3].tolist()
    s = r.summary()
    assert s["n_in"] == 9 and s["n_out"] == 7 and s["auroc"] == r.auroc
    with pytest.raises(ValueError, match="no likelihood"):
        ood.per_image_scores(build_model("gan", {}), a)
    with pytest.raises(ValueError, match="match them first"):
        ood.per_image_scores(model, random_images(2, (3, 32, 32)))
    with pytest.raises(ValueError, match="unknown dataset"):
        ood.ood_partners("cifar")


@pytest.mark.skipif(not (SHIPPED / "checkpoint.pt").exists(), reason="shipped vae-2d-mnist absent")
def test_shipped_vae_mnist_against_fashion_mnist(data_root):
    from genlab.runs.store import load_model

    model, _, _ = load_model(SHIPPED)
    if not dict(ood.ood_partners("mnist", data_root))["fashion-mnist"]:
        pytest.skip("Fashion-MNIST absent")
    results = ood.ood_for_model(model, "mnist", data_root, k=10, limit=40, n_extremes=4)
    r = results["fashion-mnist"]
    assert r.note == "" and len(r.score_in) == 40 and len(r.score_out) == 40
    assert 0.0 <= r.auroc <= 1.0 and r.unit == "nats"
    assert torch.isfinite(r.score_in).all() and torch.isfinite(r.score_out).all()
    again = ood.ood_for_model(model, "mnist", data_root, k=10, limit=40, n_extremes=4)["fashion-mnist"]
    torch.testing.assert_close(again.score_out, r.score_out)
    assert again.auroc == r.auroc
    assert "svhn" in results or not dict(ood.ood_partners("mnist", data_root))["svhn"]


def test_a_table_row_names_the_run_its_unit_and_how_log_p_was_got():
    s_in, s_out = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([3.5, 5.0, 0.5])
    res = ood.OODResult("mnist", "fashion-mnist", "bits/dim", "", 10, s_in, s_out,
                        ood.auroc(s_in, s_out), *ood.extremes(s_in, 2), *ood.extremes(s_out, 2))
    row = ood.table_row("nice-mnist", "nice", res.summary(), exact=True)
    assert row == {"run": "nice-mnist", "model": "nice", "trained on": "mnist",
                   "other set": "fashion-mnist", "AUROC": pytest.approx(mann_whitney(s_in.tolist(), s_out.tolist())),
                   "median -log p(x), own test set": 2.0, "median -log p(x), other set": 3.5,
                   "unit": "bits/dim", "other set more likely than own median": pytest.approx(1 / 3),
                   "images per set": 4, "log p(x)": "exact"}
    assert ood.table_row("vae-2d", "vae", res.summary(), exact=False)["log p(x)"] == "IWAE, k = 10"
    assert set(ood.TABLE_FORMATS) <= set(row)  # every format names a column
