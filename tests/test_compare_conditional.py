"""genlab.evaluation.compare for a class-conditional run beside its unconditional family
(issue 28, Compare): which runs pair up, log p(x) computed as logsumexp_y [log p(x|y) +
log p(y)] against the model's own log_prob, the bounds log p(x|y) + log p(y) <= log p(x)
<= max_y log p(x|y) and the gap's identity log p(x|y) - log p(x) = log p(y|x) - log p(y),
units (nats on binarised pixels, bits/dim on 8-bit ones), the table's rows and the figure."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.data import ImageData, prepare, preprocess
from genlab.evaluation import compare, ood
from genlab.evaluation.metrics import bits_per_dim, log_prob_split
from genlab.figures.likelihood_figures import given_scatter_figure
from genlab.models import FAMILIES, build_model
from genlab.runs.status import RunSummary

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 8, 8)
D = math.prod(SHAPE)
CONDITIONAL = ("cvae", "realnvp-cond", "nice-cond")


def model_of(name: str):
    """A tiny model with random weights (so the classes' densities differ) and a skewed p(y)."""
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": SHAPE, **FAMILIES[name].tiny}).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        if model.caps.conditional:
            w = torch.arange(1.0, model.num_classes + 1) % 4 + 1
            model.log_class_prior.copy_((w / w.sum()).log())
    return model


def images(n: int, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8)
    return ImageData(x, torch.randint(0, 10, (n,), generator=g), "mnist", "test")


def run(name: str, model: str | None, dataset: str = "mnist", **kw) -> RunSummary:
    return RunSummary(path=Path("runs") / name, name=name, model=model, dataset=dataset, **kw)


# -- which runs pair up ---------------------------------------------------------------------
def test_each_conditional_run_pairs_with_its_familys_runs_on_its_dataset():
    runs = [run("vae-a", "vae"), run("cvae-a", "cvae"), run("vae-fashion", "vae", "fashion-mnist"),
            run("flow", "realnvp"), run("flow-cond", "realnvp-cond"), run("vae-b", "vae"),
            run("cgan-a", "cgan"), run("broken", None), run("nice", "nice")]
    pairs = compare.conditional_pairs(runs)
    assert [(p.conditional.name, p.family, [u.name for u in p.unconditional]) for p in pairs] == [
        ("cvae-a", "vae", ["vae-a", "vae-b"]),  # not the fashion-mnist one
        ("flow-cond", "realnvp", ["flow"]),  # not nice: another family
        ("cgan-a", "gan", [])]
    assert compare.conditional_pairs([r for r in runs if r.model != "cvae" and r.model != "realnvp-cond"
                                      and r.model != "cgan"]) == []


# -- the computed marginal and its bounds ---------------------------------------------------
@pytest.mark.parametrize("name", ["realnvp-cond", "nice-cond"])
def test_the_computed_marginal_is_the_models_own_log_prob(name):
    model, data = model_of(name), images(16)
    got = compare.likelihoods(model, data, seed=2)
    assert got.conditional and got.k is None and got.num_classes == 10
    x = preprocess(prepare(data, model.preprocess).x, model.preprocess,
                   generator=torch.Generator().manual_seed(2))  # the inputs it scored
    with torch.no_grad():
        own = model.log_prob(x).double()  # (N,) the model's logsumexp, in float32
        given = model.log_prob(x, data.y).double()
    torch.testing.assert_close(got.log_px, own, rtol=0, atol=1e-4)
    torch.testing.assert_close(got.log_px_given, given, rtol=0, atol=1e-4)
    # not a test that passes by accident: the label changes the likelihood
    assert got.gap().abs().max() > 1e-2


@pytest.mark.parametrize("name", CONDITIONAL)
def test_the_bounds_and_the_gap_are_bayes_rule(name):
    model, data = model_of(name), images(24)
    got = compare.likelihoods(model, data, k=3)
    assert got.bounds_hold()
    log_py = model.log_class_prior.double()[data.y]
    torch.testing.assert_close(got.log_py, log_py)
    assert (got.log_px_given + log_py <= got.log_px + 1e-9).all()  # log p(x|y) + log p(y) <= log p(x)
    assert (got.log_px <= got.log_px_best + 1e-9).all()  # log p(x) <= max_y log p(x|y)
    assert (got.log_px_given <= got.log_px_best + 1e-9).all()
    # log p(x|y) - log p(x) = log p(y|x) - log p(y), with p(y|x) Bayes' rule on the same K values
    log_post = got.log_px_given + log_py - got.log_px
    assert (log_post <= 1e-9).all() and (got.gap() <= -log_py + 1e-9).all()
    assert (got.gap() < 0).any() and (got.gap() > 0).any()  # both sides of the line occur
    # the check can fail: a marginal pushed above the best class breaks it
    broken = compare.Likelihoods(**{**vars(got), "log_px": got.log_px_best + 1.0})
    assert not broken.bounds_hold()


def test_an_unconditional_model_is_scored_as_ood_scores_it():
    model, data = model_of("realnvp"), images(10)
    got = compare.likelihoods(model, data, seed=4)
    assert not got.conditional and got.bounds_hold() and got.k is None
    torch.testing.assert_close(got.nll, ood.per_image_scores(model, data, seed=4))
    torch.testing.assert_close(got.log_px, log_prob_split(model, data, k=1, seed=4))
    vae = compare.likelihoods(model_of("vae"), data, k=5)
    assert vae.k == 5 and vae.unit == "nats" and set(vae.summary()) == {"n", "unit", "k", "nll"}


def test_a_gan_has_no_likelihood_in_one_line():
    with pytest.raises(ValueError, match="'cgan' model has no likelihood") as e:
        compare.likelihoods(model_of("cgan"), images(2))
    assert "\n" not in str(e.value)


# -- units ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,unit", [("cvae", "nats"), ("realnvp-cond", "bits/dim"),
                                       ("nice-cond", "bits/dim")])
def test_means_are_in_the_runs_unit(name, unit):
    got = compare.likelihoods(model_of(name), images(12), k=2)
    assert got.unit == unit
    to_unit = (lambda nll: bits_per_dim(nll, D)) if unit == "bits/dim" else (lambda nll: nll)
    torch.testing.assert_close(got.nll, to_unit(-got.log_px))
    torch.testing.assert_close(got.nll_given, to_unit(-got.log_px_given))
    m = got.summary()
    assert m["n"] == 12 and m["unit"] == unit and m["accuracy"] == got.accuracy
    assert m["nll"] == pytest.approx(float(to_unit(-got.log_px).mean()))
    assert m["nll_given"] == pytest.approx(float(to_unit(-got.log_px_given).mean()))
    per_unit = D * math.log(2) if unit == "bits/dim" else 1.0  # nats in one unit of the gap
    assert m["gap"] == pytest.approx(float(got.gap().mean()) / per_unit)
    assert 0.0 <= got.accuracy <= 1.0


def test_eval_json_is_read_in_the_runs_unit():
    ev = {"nll_nats": -900.0, "bpd": 1.5, "nll_given_nats": -910.0, "bpd_given": 1.4}
    assert compare.eval_nll(ev, "bits/dim") == 1.5 and compare.eval_nll(ev, "nats") == -900.0
    assert compare.eval_nll(ev, "bits/dim", given=True) == 1.4
    assert compare.eval_nll({"fid": 3.0}, "nats") is None and compare.eval_nll(None, "nats") is None


def test_the_table_rows():
    got = compare.likelihoods(model_of("realnvp-cond"), images(8))
    s = run("flow-cond", "realnvp-cond", eval={"bpd": 7.25, "nll_nats": 123.0})
    row = compare.pair_row(s, got)
    m = got.summary()
    assert row[compare.GIVEN] == m["nll_given"] and row[compare.MARGINAL] == m["nll"]
    assert row[compare.STORED] == 7.25 and row[compare.GAP] == m["gap"]
    assert (row["unit"], row["images"], row["log p(x)"], row["labels"]) == (
        "bits/dim", 8, "exact", "class-conditional")
    cvae = compare.pair_row(run("c", "cvae"), compare.likelihoods(model_of("cvae"), images(4), k=3))
    assert cvae["log p(x)"] == "IW, k = 3 per class" and cvae[compare.STORED] is None
    gan = compare.pair_row(run("g", "gan"), "no likelihood")
    assert gan["log p(x)"] == "no likelihood" and gan["labels"] == "unconditional"
    assert all(gan[c] is None for c in compare.PAIR_FORMATS)
    assert list(gan) == list(row)  # the same columns, so one table


# -- the figure ---------------------------------------------------------------------------------
def test_the_scatter_splits_at_the_line_y_equals_x():
    nll = np.array([10.0, 11.0, 12.0, 13.0])
    given = np.array([9.0, 11.5, 11.0, 14.0])  # below, above, below, above
    fig = given_scatter_figure(nll, given, "nats")
    line, below, above = fig.data
    assert list(line.x) == list(line.y)  # y = x
    assert list(below.x) == [10.0, 12.0] and list(below.y) == [9.0, 11.0]
    assert list(above.customdata) == [1, 3] and "(2 images)" in above.name
    assert fig.layout.yaxis.scaleanchor == "x"
    assert below.type == "scatter"
    many = np.linspace(0, 1, 3000)
    assert given_scatter_figure(many, many - 0.1, "bits/dim").data[1].type == "scattergl"
