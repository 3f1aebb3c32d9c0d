"""Class-conditional models (issue 28): the contract checks on every conditional family,
log p(x|y) and the marginal log p(x) against independent computations, the Bayes-rule
classifier against the Bayes-optimal accuracy of a problem with known class densities, the
label's effect on a CVAE's decode, one-line label errors, and real runs through fit, the
CLI and eval (MNIST from $GENLAB_DATA)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch.distributions import (AffineTransform, Independent, Normal, SigmoidTransform,
                                 TransformedDistribution, Uniform)

import contract
from genlab.data import ImageData, load_split
from genlab.evaluation.metrics import ECE_BINS, classifier_metrics
from genlab.models import FAMILIES, MODELS, build_model, conditional_variants, unconditional_family

pytestmark = pytest.mark.usefixtures("one_thread")

CONDITIONAL = [name for name, (cls, _) in MODELS.items() if cls.caps.conditional]
SHAPE = (1, 8, 8)


def tiny(name: str, shape=SHAPE, seed: int = 0, **over):
    torch.manual_seed(seed)
    return build_model(name, {"image_shape": shape, **FAMILIES[name].tiny, **over})


def randomize(model, scale: float = 0.3, seed: int = 1):
    """Every parameter drawn at random (zero-initialised last layers and class tables would
    make every class alike)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def skewed_prior(model, weights) -> torch.Tensor:
    """Set p(y) to ``weights`` (normalised) and return log p(y)."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    log_p = (w / w.sum()).log()
    model.log_class_prior.copy_(log_p.to(model.log_class_prior))
    return log_p


def head(data: ImageData, n: int) -> ImageData:
    return ImageData(data.x[:n], data.y[:n], data.dataset, data.split)


# -- the registry and the contract ------------------------------------------------------------
def test_every_conditional_family_is_the_variant_of_an_unconditional_one():
    assert set(CONDITIONAL) == {"cvae", "realnvp-cond", "nice-cond", "cgan"}
    for name in CONDITIONAL:
        base = unconditional_family(name)
        assert base is not None and not MODELS[base][0].caps.conditional
        assert name in conditional_variants(base)
        assert FAMILIES[name].defaults == FAMILIES[base].defaults  # its family's recipe
    assert all(unconditional_family(n) is None for n in MODELS if n not in CONDITIONAL)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_contract(name, mnist_small, tmp_path):
    """tests/contract.py's checks, as every family's test file runs them, on 8x8 images
    and on real MNIST for the checkpoint round trip (labels through batch_loss)."""
    model = tiny(name)
    contract.check_loss_finite(model)
    contract.check_step_changes_weights(tiny(name))
    contract.check_sample(tiny(name))
    contract.check_sample(tiny(name, (3, 32, 32)))
    train, _ = mnist_small
    contract.check_checkpoint_round_trip(name, {**FAMILIES[name].tiny, "image_shape": (1, 28, 28)},
                                         tmp_path, head(train, 128))


@pytest.mark.parametrize("name", CONDITIONAL)
def test_num_classes_comes_from_the_dataset(name):
    from genlab.runs import store

    rc = store.new_config(name, "mnist", {}, {})
    assert rc.model_config.num_classes == 10 and tuple(rc.model_config.image_shape) == (1, 28, 28)
    assert tiny(name).log_class_prior.shape == (10,)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_sample_grid_has_one_row_per_class_and_samples_follow_the_label(name):
    model = randomize(tiny(name), 0.2).eval()
    imgs, per_row = model.sample_grid(20, seed=3)
    assert per_row == 2 and imgs.shape == (20, *SHAPE)  # 10 rows of 2: class c in row c
    again = model.seeded_sample(20, seed=3, y=torch.arange(10).repeat_interleave(2))
    torch.testing.assert_close(imgs, again, rtol=0, atol=0)
    a, b = (model.seeded_sample(4, seed=5, y=c) for c in (2, 7))  # same noise, other class
    assert not torch.allclose(a, b)


# -- log p(x|y) and the marginal ----------------------------------------------------------------
def _base(model, c: int, D: int):
    """The class-c base distribution of a conditional flow, built with torch.distributions
    from the learned table (mean, log-scale): normal, or logistic (a uniform through the
    logit, moved and scaled)."""
    mu, log_s = model.class_base.table.weight[c].double().chunk(2)
    if model.prior_family == "normal":
        return Independent(Normal(mu, log_s.exp()), 1)
    logistic = [SigmoidTransform().inv, AffineTransform(mu, log_s.exp())]
    return Independent(TransformedDistribution(Uniform(torch.zeros(D, dtype=torch.float64),
                                                       torch.ones(D, dtype=torch.float64)),
                                               logistic), 1)


@pytest.mark.parametrize("name, over", [("realnvp-cond", {}), ("nice-cond", {}),
                                        ("nice-cond", {"prior": "gaussian"})])
def test_flow_marginal_is_the_prior_weighted_mixture_of_its_class_densities(name, over):
    """log p(x) = log sum_y p(y) p(x|y) with p(x|y) computed apart, class by class, from the
    flow's forward (context: the one-hot label) and the class's base distribution in
    torch.distributions, against the model's log_prob(x) (no label) and log_prob(x, y)."""
    torch.set_default_dtype(torch.float64)
    try:
        model = tiny(name, (1, 4, 4), **over)
        model.loss(torch.rand(16, 1, 4, 4), torch.arange(16) % 10)  # data-dependent inits
        model = randomize(model, 0.1).eval()
        log_py = skewed_prior(model, torch.arange(1, 11))
        x = torch.rand(6, 1, 4, 4)
        per_class = []
        for c in range(10):
            onehot = torch.nn.functional.one_hot(torch.full((6,), c), 10).double()
            z, log_det = model(x, onehot)
            per_class.append(_base(model, c, 16).log_prob(z) + log_det)
            torch.testing.assert_close(model.log_prob(x, y=c), per_class[-1])
        per_class = torch.stack(per_class, -1)  # (6, 10)
        assert per_class.std(-1).min() > 0.1  # the classes really differ
        marginal = torch.logsumexp(per_class + log_py, -1)
        torch.testing.assert_close(model.log_prob(x), marginal)
        torch.testing.assert_close(model.class_log_probs(x), per_class)
        y = torch.tensor([0, 3, 3, 9, 5, 1])
        torch.testing.assert_close(model.log_prob(x, y=y), per_class.gather(1, y[:, None])[:, 0])
    finally:
        torch.set_default_dtype(torch.float32)


def test_flow_marginal_density_integrates_to_one():
    """p(x) = sum_y p(y) p(x|y) of a class-conditional NICE on R^2 (no logit: the density
    is on the plane) integrates to 1 over a grid, with random couplings and class tables."""
    torch.set_default_dtype(torch.float64)
    try:
        model = tiny("nice-cond", (1, 1, 2), prior="gaussian", hidden=(8,))
        model.loss(torch.randn(32, 1, 1, 2), torch.arange(32) % 10)
        model = randomize(model, 0.3).eval()
        skewed_prior(model, [5, 1, 1, 1, 1, 1, 1, 1, 1, 3])
        n, lim = 500, 9.0
        g = torch.linspace(-lim, lim, n)
        xy = torch.cartesian_prod(g, g).view(-1, 1, 1, 2)
        cell = (g[1] - g[0]) ** 2
        mass = float(torch.cat([model.log_prob(b).exp() for b in xy.split(50_000)]).sum() * cell)
        assert mass == pytest.approx(1.0, abs=2e-3)
        one = float(torch.cat([model.log_prob(b, y=4).exp() for b in xy.split(50_000)]).sum() * cell)
        assert one == pytest.approx(1.0, abs=2e-3)  # and each class's density too
    finally:
        torch.set_default_dtype(torch.float32)


def _cvae_exact(model, x: torch.Tensor) -> torch.Tensor:
    """log p(x|y) of every class (B, K) of a CVAE with a 1-D latent, by quadrature over z
    (trapezoid on [-9, 9], 3601 points: exact to far below the tolerances)."""
    z = torch.linspace(-9, 9, 3601, dtype=torch.float64)
    cols = []
    for c in range(model.num_classes):
        with model.given(torch.full((len(x),), c)):
            zz = z[:, None, None].expand(-1, len(x), 1)  # (G, B, 1)
            log_joint = model.log_likelihood(x, zz) + model.log_prior(zz)  # (G, B)
        w = torch.full_like(z, float(z[1] - z[0]))
        w[[0, -1]] /= 2
        cols.append(torch.logsumexp(log_joint + w.log()[:, None], 0))
    return torch.stack(cols, -1)


def test_cvae_log_p_x_given_y_and_its_marginal_converge_to_the_exact_values():
    """A CVAE with a 1-D latent on 2x2 binary images: log p(x|y) by importance sampling
    (k = 20000; observed within 0.006 nats) of the quadrature; the marginal log p(x) from K x k
    samples (log_prob without y) and from k joint draws of (y, z) (log_prob_marginal, the
    proposal r(y|x) here the exact posterior mixed with p(y)) both within Monte Carlo error
    of logsumexp_y over the exact values."""
    torch.set_default_dtype(torch.float64)
    try:
        model = randomize(tiny("cvae", (1, 2, 2), latent_dim=1, hidden=(8,)), 0.5).eval()
        with torch.no_grad():  # q(z|x, y) near the prior: a proposal that settles by k = 20000
            model.encoder.net[-1].weight.mul_(0.1)
            model.encoder.net[-1].bias.mul_(0.1)
        log_py = skewed_prior(model, torch.arange(1, 11))
        x = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=torch.float64).view(3, 1, 2, 2)
        exact = _cvae_exact(model, x)  # (3, 10)
        assert exact.std(-1).min() > 0.1
        exact_px = torch.logsumexp(exact + log_py, -1)
        torch.manual_seed(0)
        torch.testing.assert_close(model.class_log_probs(x, 20000), exact, atol=0.02, rtol=0)
        torch.testing.assert_close(model.log_prob(x, k=20000), exact_px, atol=0.02, rtol=0)
        post = torch.softmax(exact + log_py, -1)
        log_r = torch.log(0.95 * post + 0.05 * log_py.exp())
        torch.testing.assert_close(model.log_prob_marginal(x, 20000, log_r), exact_px, atol=0.02, rtol=0)
        # a poor proposal (uniform over classes) still converges, only more slowly
        uniform = torch.full((3, 10), -math.log(10))
        torch.testing.assert_close(model.log_prob_marginal(x, 50000, uniform), exact_px,
                                   atol=0.03, rtol=0)
    finally:
        torch.set_default_dtype(torch.float32)


# -- the generative classifier ------------------------------------------------------------------
MEANS, SIGMA, PRIOR = (-2.0, 0.0, 2.0), 1.0, (0.5, 0.3, 0.2)


def _bayes_optimal() -> tuple[float, float, float]:
    """Three classes N(m_c, 1) in one dimension with priors PRIOR: the decision boundaries
    where p(i) N(x; m_i) = p(j) N(x; m_j), x = (m_i + m_j) / 2 + sigma^2 ln(p_j / p_i) /
    (m_i - m_j), and the Bayes-optimal accuracy sum_c p(c) P(x in region c | c), closed form."""
    (m0, m1, m2), (p0, p1, p2) = MEANS, PRIOR
    t01 = (m0 + m1) / 2 + SIGMA ** 2 * math.log(p1 / p0) / (m0 - m1)
    t12 = (m1 + m2) / 2 + SIGMA ** 2 * math.log(p2 / p1) / (m1 - m2)
    Phi = Normal(0.0, 1.0).cdf
    f = lambda v: float(Phi(torch.tensor(v / SIGMA)))
    acc = p0 * f(t01 - m0) + p1 * (f(t12 - m1) - f(t01 - m1)) + p2 * (1 - f(t12 - m2))
    return t01, t12, acc


def _toy_classifier():
    """nice-cond made into the known class densities: identity couplings (their zero start),
    no scaling, Gaussian prior, class table = (mean, log sigma) of each class in dimension 0
    and one shared Gaussian in dimension 1 (which the classifier must ignore)."""
    model = build_model("nice-cond", {"image_shape": (1, 1, 2), "couplings": 2, "hidden": (4,),
                                      "prior": "gaussian", "num_classes": 3}).double().eval()
    scaling = model.flow.layers[-1]
    scaling.initialized.fill_(True)  # no data-dependent start: s = 0, the identity
    with torch.no_grad():
        table = torch.tensor([[m, 0.7, math.log(SIGMA), 0.4] for m in MEANS], dtype=torch.float64)
        model.class_base.table.weight.copy_(table)  # rows: mu_0, mu_1, log s_0, log s_1
    skewed_prior(model, PRIOR)
    return model


def test_bayes_rule_classifier_reaches_the_bayes_optimal_accuracy():
    """On draws from the known mixture the model's Bayes rule takes exactly the optimal
    decision at every point (the boundaries in closed form), so its accuracy is the Bayes-
    optimal one up to sampling error (within 4 standard errors of 200,000 draws), and the
    model, being the true density, is calibrated (ECE at sampling noise, below 0.01)."""
    t01, t12, optimal = _bayes_optimal()
    model = _toy_classifier()
    g = torch.Generator().manual_seed(0)
    n = 200_000
    y = torch.multinomial(torch.tensor(PRIOR, dtype=torch.float64), n, True, generator=g)
    x0 = torch.tensor(MEANS, dtype=torch.float64)[y] + SIGMA * torch.randn(n, generator=g, dtype=torch.float64)
    x1 = 0.7 + math.exp(0.4) * torch.randn(n, generator=g, dtype=torch.float64)
    x = torch.stack([x0, x1], -1).view(n, 1, 1, 2)
    per_class = model.class_log_probs(x)  # (n, 3)
    torch.testing.assert_close(per_class[:, 0], Normal(MEANS[0], SIGMA).log_prob(x0)
                               + Normal(0.7, math.exp(0.4)).log_prob(x1))
    m = classifier_metrics(per_class, model.log_class_prior, y)
    bayes = torch.bucketize(x0, torch.tensor([t01, t12], dtype=torch.float64))  # 0, 1, 2
    pred = model.predict(x)
    near = torch.minimum((x0 - t01).abs(), (x0 - t12).abs()) < 1e-9
    assert torch.equal(pred[~near], bayes[~near])
    assert m["accuracy"] == pytest.approx(float((pred == y).double().mean()), abs=1e-12)
    se = math.sqrt(optimal * (1 - optimal) / n)
    assert abs(m["accuracy"] - optimal) < 4 * se, (m["accuracy"], optimal, se)
    assert m["ece"] < 0.01 and m["bins"] == ECE_BINS == 15 and sum(m["bin_counts"]) == n
    # a wrong prior moves the boundaries, and the accuracy falls below the optimum
    skewed_prior(model, (0.1, 0.1, 0.8))
    worse = classifier_metrics(model.class_log_probs(x), model.log_class_prior, y)["accuracy"]
    assert worse < optimal - 10 * se


def test_ece_and_accuracy_on_hand_made_posteriors():
    """ECE = sum over 15 equal-width bins of |accuracy - mean confidence| x the bin's share:
    four images, two at confidence 0.9 (one right), two at 0.7 (both right)."""
    post = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.7, 0.3], [0.3, 0.7]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1])
    m = classifier_metrics(post.log(), torch.zeros(2, dtype=torch.float64), y)
    assert m["accuracy"] == 0.75
    assert m["ece"] == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.7))
    assert m["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.1) + 2 * math.log(0.7)) / 4)
    torch.testing.assert_close(m["log_px"], torch.zeros(4, dtype=torch.float64))  # rows sum to 1
    assert m["bin_counts"][13] == 2 and m["bin_counts"][10] == 2  # (0.867, 0.933], (0.667, 0.733]


# -- the CVAE's label ----------------------------------------------------------------------------
def test_changing_the_label_changes_the_cvae_decode_and_only_through_its_one_hot():
    model = randomize(tiny("cvae"), 0.3).eval()
    z = torch.randn(4, 3)
    images = [model.decode(z, y=c) for c in range(10)]
    for a in range(10):
        for b in range(a + 1, 10):
            assert (images[a] - images[b]).abs().max() > 1e-3, (a, b)
    for c in (0, 7):  # the decoder reads [z, one-hot(y)]
        onehot = torch.nn.functional.one_hot(torch.full((4,), c), 10).float()
        torch.testing.assert_close(images[c], torch.sigmoid(model.decoder(torch.cat([z, onehot], 1))))
    log_py = skewed_prior(model, torch.arange(1, 11))
    mean = sum(log_py[c].exp().float() * images[c] for c in range(10))
    torch.testing.assert_close(model.decode(z), mean)  # no label: p(y)-weighted average
    x = contract.tiny_batch(model, 4)
    assert not torch.allclose(model.encode(x, y=1), model.encode(x, y=2))  # q(z|x, y) reads y


def test_cvae_encode_without_a_label_uses_its_own_prediction():
    model = randomize(tiny("cvae"), 0.3).eval()
    x = contract.tiny_batch(model, 6)
    torch.manual_seed(4)
    pred = model.predict(x)
    torch.manual_seed(4)
    torch.testing.assert_close(model.encode(x), model.encode(x, y=pred))


# -- label errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONDITIONAL)
def test_label_errors_are_one_line_value_errors(name):
    model = tiny(name)
    x = contract.tiny_batch(model, 4)
    calls = {
        "needs the class labels": lambda: model.loss(x),
        "not one of this": lambda: model.sample(2, y=10),
        "classes 0..9": lambda: model.sample(2, y=-1),
        "labels of shape \\(3,\\) for 4 images": lambda: model.loss(x, torch.tensor([0, 1, 2])),
        "must be integers": lambda: model.loss(x, torch.tensor([0.0, 1.0, 2.0, 3.0])),
        "must lie in 0..9 \\(got 0..12\\)": lambda: model.loss(x, torch.tensor([0, 1, 12, 3])),
        "train_step needs the class labels|loss needs the class labels":
            lambda: model.train_step(x, model.configure_optimizers(1e-3)),
    }
    if model.caps.likelihood:
        calls["label 2.5 is not one of"] = lambda: model.log_prob(x, y=2.5)
    if model.caps.encode:
        calls["labels of shape \\(2,\\) for 4 images"] = lambda: model.encode(x, y=torch.tensor([1, 2]))
    for words, call in calls.items():
        with pytest.raises(ValueError, match=words) as e:
            call()
        assert "\n" not in str(e.value)


def test_unconditional_models_ignore_labels_given_through_label_kwargs():
    model = tiny("vae")
    x, y = contract.tiny_batch(model, 4), torch.arange(4)
    assert model.label_kwargs(y) == {} and tiny("cvae").label_kwargs(y) == {"y": y}
    torch.manual_seed(1)
    a = model.batch_loss(x, y)["loss"]
    torch.manual_seed(1)
    assert torch.equal(a, model.loss(x)["loss"])


# -- real runs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cfg, epochs", [
    ("cvae", {"hidden": [64], "latent_dim": 4}, 4),
    ("nice-cond", {"couplings": 2, "hidden": [64]}, 4),
])
def test_a_short_mnist_run_lowers_the_loss_and_trains_every_parameter(name, cfg, epochs, mnist_small):
    """About 250 steps (2,000 images, batch 32, 4 epochs): the validation loss falls and
    every parameter moved (each class's row of the class tables, the label's inputs)."""
    train, val = mnist_small
    contract.check_short_run_lowers_loss(name, cfg, train, val, epochs=epochs, batch_size=32)


def test_class_prior_is_the_training_labels_frequencies(mnist_small):
    train, _ = mnist_small
    model = tiny("cvae", (1, 28, 28))
    model.on_epoch_end(train)
    counts = torch.bincount(train.y, minlength=10).double()
    torch.testing.assert_close(model.log_class_prior.double(), ((counts + 1) / (counts.sum() + 10)).log(),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, options", [
    ("cvae", ["--hidden", "64", "--latent-dim", "4"]),
    ("realnvp-cond", ["--scales", "2", "--couplings", "1", "--width", "8", "--res-blocks", "0"]),
])
def test_cli_train_and_eval_write_the_classifier_and_both_likelihoods(name, options, data_root,
                                                                      tmp_path, capsys):
    """A tiny conditional run through `genlab train` and `genlab eval`: the epoch grid has
    one row per class, eval.json holds log p(x|y) and log p(x) in nats (and bits/dim on 8-bit
    data), the classifier's accuracy and calibration with its k and bins, and the FID
    network's accuracy beside them; per image log p(x) >= log p(x|y) + log p(y), so on
    average too (exactly for the flow, within Monte Carlo error for the CVAE)."""
    from PIL import Image

    from genlab.cli import main
    from genlab.runs import store

    run = tmp_path / "run"
    assert main(["train", "--model", name, *options, "--limit", "600", "--epochs", "1",
                 "--batch-size", "50", "--n-samples", "20", "--run-dir", str(run),
                 "--data-root", str(data_root), "--quiet", "--device", "cpu"]) == 0
    grid = Image.open(run / "samples" / "epoch_001.png")
    assert grid.size == (2 * 30 + 2, 10 * 30 + 2)  # 2 a row, 10 rows: 28 px + 2 px padding
    assert main(["eval", str(run), "--k", "10", "--limit", "100", "--fid-n", "0", "--quiet",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "generative classifier (Bayes' rule" in out and "-log p(x|y)" in out
    ev = json.loads((run / store.EVAL).read_text())
    exact = name != "cvae"
    assert 0.0 <= ev["classifier_ece"] <= 1.0 and ev["classifier_ece_bins"] == 15
    assert 0.1 < ev["classifier_accuracy"] <= 1.0  # better than chance after one epoch
    assert ev["classifier_k"] == (None if exact else 20) and ev["fid_net_accuracy"] == 0.9934
    assert ev["classifier_nll"] > 0 and ev["classifier_seconds"] >= 0
    model, _, _ = store.load_model(run)
    test_y = load_split("mnist", "test", data_root, limit=100).y
    mean_log_py = float(model.log_class_prior.double()[test_y].mean())
    assert -ev["nll_nats"] >= -ev["nll_given_nats"] + mean_log_py - (1e-6 if exact else 1.0)
    if exact:
        assert ev["bpd"] > 0 and ev["bpd_given"] > 0 and "exact" in ev["nll_method"]
    else:
        assert ev["k"] == 10 and "nll_given_nats_k_tenth" in ev and "(y, z)" in ev["nll_method"]
