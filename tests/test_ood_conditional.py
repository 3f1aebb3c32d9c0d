"""genlab.evaluation.ood for class-conditional models (issue 28, views): the best class's
score -max_y log p(x|y) beside the marginal -log p(x), both from one pass of per-class
likelihoods, against log_prob's marginal and against hand-made per-class likelihoods
whose AUROCs are known (the marginal ties, the best class separates)."""
from __future__ import annotations

import math

import pytest
import torch

from genlab.data import ImageData
from genlab.evaluation import ood
from genlab.evaluation.metrics import bits_per_dim, class_log_prob_split
from genlab.models import FAMILIES, build_model

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 8, 8)


def model_of(name: str, **over):
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": SHAPE, **FAMILIES[name].tiny, **over}).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():  # random weights: the classes differ
            p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        w = torch.arange(1.0, model.num_classes + 1) % 4 + 1
        model.log_class_prior.copy_((w / w.sum()).log())  # a skewed p(y)
    return model


def images(n: int, seed: int = 0, value: int | None = None) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    x = (torch.full((n, *SHAPE), value, dtype=torch.uint8) if value is not None
         else torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8))
    return ImageData(x, torch.zeros(n, dtype=torch.int64), "mnist", "test")


@pytest.mark.parametrize("name,unit", [("cvae", "nats"), ("realnvp-cond", "bits/dim"),
                                       ("nice-cond", "bits/dim")])
def test_both_scores_come_from_the_per_class_likelihoods(name, unit):
    model, data = model_of(name), images(12)
    got = ood.class_scores(model, data, k=4, seed=3)
    assert ood.score_unit(model) == unit
    per_class = class_log_prob_split(model, data, k=4, seed=3)  # (N, K) nats
    D = math.prod(SHAPE)
    to_unit = (lambda nll: bits_per_dim(nll, D)) if unit == "bits/dim" else (lambda nll: nll)
    log_py = model.log_class_prior.double()
    torch.testing.assert_close(got.marginal, to_unit(-torch.logsumexp(per_class + log_py, -1)))
    torch.testing.assert_close(got.best, to_unit(-per_class.max(-1).values))
    assert torch.equal(got.best_class, per_class.argmax(-1))
    # the marginal is what log_prob(x) gives: per_image_scores' figure, same seed
    torch.testing.assert_close(got.marginal, ood.per_image_scores(model, data, k=4, seed=3))
    # max_y [log p(x|y) + log p(y)] <= log p(x) <= max_y log p(x|y)
    assert (got.best <= got.marginal + 1e-9).all()
    lower = to_unit(-(per_class + log_py).max(-1).values)
    assert (got.marginal <= lower + 1e-9).all()


def test_the_best_class_separates_what_the_marginal_gets_backwards(monkeypatch):
    """Two classes, p(y) = 1/2 each. An own image is certainly class 0: log p(x|y) =
    (0, -inf), so log p(x) = log 1/2 and max_y log p(x|y) = 0. An image of the other set
    fits both classes fairly well: (-1/2, -1/2), so log p(x) = -1/2, *more* likely than
    every own image, but max_y log p(x|y) = -1/2, less likely than each. The marginal's
    AUROC is 0 (the model prefers the other set), the best class's 1."""
    model = model_of("cvae", num_classes=2)
    model.log_class_prior.fill_(math.log(0.5))
    half = math.log(0.5)

    def class_log_probs(x, k=1):  # black images (own set) vs white ones (the other set)
        white = x.flatten(1).mean(1, keepdim=True) > 0.5
        return torch.where(white, torch.tensor([-0.5, -0.5]), torch.tensor([0.0, -math.inf]))

    monkeypatch.setattr(model, "class_log_probs", class_log_probs)
    own, other = images(6, value=0), images(5, value=255)
    other = ImageData(other.x, other.y, "fashion-mnist", "test")
    res = ood.ood_compare(model, own, other, k=1, n_extremes=2)
    torch.testing.assert_close(res.score_in, torch.full((6,), -half, dtype=torch.float64))
    torch.testing.assert_close(res.score_out, torch.full((5,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(res.best_in, torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(res.best_out, torch.full((5,), 0.5, dtype=torch.float64))
    assert res.auroc == 0.0 and res.best_auroc == 1.0
    s = res.summary()
    assert s["auroc_best"] == 1.0 and s["prefers"] == "fashion-mnist"
    assert s["median_best_in"] == pytest.approx(0.0) and s["median_best_out"] == pytest.approx(0.5)
    row = ood.table_row("cvae-mnist", "cvae", s, exact=False)
    assert row[ood.BEST_AUROC] == pytest.approx(1.0)
    assert list(row).index(ood.BEST_AUROC) == list(row).index("AUROC") + 1


def test_an_unconditional_model_has_no_best_class_score_and_the_table_lines_up():
    vae = build_model("vae", {"image_shape": SHAPE, **FAMILIES["vae"].tiny})
    res = ood.ood_compare(vae, images(4), images(4, seed=1), k=2, n_extremes=1)
    assert res.best_in is None and res.best_auroc is None and "auroc_best" not in res.summary()
    with pytest.raises(ValueError, match="not class-conditional") as e:
        ood.class_scores(vae, images(2))
    assert "\n" not in str(e.value)
    plain = ood.table_row("vae-mnist", "vae", res.summary(), exact=False)
    assert ood.BEST_AUROC not in plain
    rows, formats = ood.table_rows([plain])
    assert rows == [plain] and formats == ood.TABLE_FORMATS
    cond = ood.table_row("cvae-mnist", "cvae", {**res.summary(), "auroc_best": 0.9}, exact=False)
    rows, formats = ood.table_rows([plain, cond])
    assert [list(r) for r in rows] == [list(cond)] * 2  # one set of columns, in one order
    assert rows[0][ood.BEST_AUROC] is None and rows[1][ood.BEST_AUROC] == 0.9
    assert formats[ood.BEST_AUROC] == ".3f"
