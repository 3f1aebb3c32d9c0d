"""nice, realnvp and vae-flow-decoder: exact likelihoods against autograd Jacobians of
the whole map from [0, 1] pixels, the model contract, and short real-MNIST runs."""
from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D
from torch.autograd.functional import jacobian

from genlab.data import ImageData
from genlab.models import build_model
from genlab.models.vae import VAE, VAEConfig

import contract

TINY = {
    "nice": {"couplings": 4, "hidden": [32]},
    "realnvp": {"couplings": 1, "width": 4, "res_blocks": 0},
    "vae-flow-decoder": {"hidden": [64], "latent_dim": 4, "couplings": 2, "flow_hidden": [32]},
    "vae-flow-decoder-realnvp": {"hidden": [64], "latent_dim": 4, "couplings": 1, "width": 4,
                                 "decoder_flow": "realnvp"},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small ops, a shared CPU


def model_name(key: str) -> str:
    return "vae-flow-decoder" if key.startswith("vae-flow-decoder") else key


def random_flow_model(name: str, cfg: dict, shape=(1, 28, 28), seed: int = 0):
    """A model whose flow has random (not identity) couplings and initialised ActNorms;
    float64, eval mode."""
    torch.manual_seed(seed)
    model = build_model(name, {**cfg, "image_shape": list(shape)})
    model.flow(torch.rand(8, *shape))  # data-dependent ActNorm init
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.double().eval()


def batched_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """d fn(x) / dx (D_out, D) for one example x (1, ...) by reverse-mode autograd: D copies
    of x in one batch, one backward pass with the identity as output gradients (rows of J).
    Valid because the model treats the examples of a batch independently (eval mode)."""
    d = x.numel()
    xs = x.expand(d, *x.shape[1:]).clone().requires_grad_()  # (D, ...)
    y = fn(xs).reshape(d, -1)  # (D, D_out)
    (rows,) = torch.autograd.grad(y, xs, torch.eye(d, y.shape[1], dtype=y.dtype))
    return rows.reshape(d, d)


def dequantized_image(data_root) -> torch.Tensor:
    from genlab.data import load_split, preprocess

    x = load_split("mnist", "val", data_root, download=False, limit=1).x
    return preprocess(x, "dequantize", torch.Generator().manual_seed(0)).double()


@pytest.mark.parametrize("name,prior", [("nice", "logistic"), ("nice", "gaussian"),
                                        ("realnvp", "gaussian")])
def test_log_prob_is_exact_on_a_full_image(name, prior, data_root):
    cfg = {**TINY[name], **({"prior": prior} if name == "nice" else {})}
    model = random_flow_model(name, cfg)
    x = dequantized_image(data_root)  # (1, 1, 28, 28) in (0, 1)
    z = model(x)[0][0]  # (784,)
    jac = batched_jacobian(lambda t: model(t)[0], x)  # (784, 784)
    sign, log_det = torch.linalg.slogdet(jac)
    assert sign != 0
    if prior == "logistic":  # the standard logistic as a transformed uniform
        base = D.TransformedDistribution(D.Uniform(torch.zeros(784, dtype=torch.double), 1.0),
                                         [D.SigmoidTransform().inv])
    else:
        base = D.Normal(torch.zeros(784, dtype=torch.double), 1.0)
    expected = base.log_prob(z).sum() + log_det
    torch.testing.assert_close(model.log_prob(x)[0], expected, rtol=1e-9, atol=1e-7)
    out = model.loss(x)
    # bits/dim from first principles: the 8-bit bin of x has probability p(x) 256^-784, and
    # its code length -log2 of that is shared by the 784 dimensions
    bin_log2 = expected.item() / math.log(2) - 784 * 8  # log2 P(bin)
    assert out["bpd"].item() == pytest.approx(-bin_log2 / 784, rel=1e-9)
    torch.testing.assert_close(model.decode(model.encode(x)), x, rtol=0, atol=1e-9)


def test_realnvp_three_scales_on_svhn_shape():
    model = random_flow_model("realnvp", {"scales": 3, "couplings": 1, "width": 4}, (3, 32, 32))
    x = torch.rand(2, 3, 32, 32, dtype=torch.double)
    z, log_det = model(x)
    assert z.shape == (2, 3072) and model.latent_shape == (12, 16, 16)
    torch.testing.assert_close(model.inverse(z), x)
    with pytest.raises(ValueError, match="divisible"):
        build_model("realnvp", {"scales": 4, "image_shape": [1, 28, 28]})


@pytest.mark.parametrize("key", ["vae-flow-decoder", "vae-flow-decoder-realnvp"])
def test_flow_decoder_likelihood_counts_the_flow_jacobian(key):
    model = random_flow_model("vae-flow-decoder", TINY[key], (1, 4, 4))
    x = torch.rand(3, 1, 4, 4, dtype=torch.double)
    z = torch.randn(2, 3, 4, dtype=torch.double)  # (k, B, d)
    mu, logvar = model.decoder_params(z).chunk(2, dim=2)  # (k, B, 1, 4, 4)
    for i in range(3):
        y = model.flow(x[i:i + 1])[0].reshape(-1)
        jac = jacobian(lambda t: model.flow(t.view(1, 1, 4, 4))[0].reshape(-1), x[i].reshape(-1))
        gauss = D.Normal(mu[:, i].flatten(1), torch.exp(0.5 * logvar[:, i].flatten(1)))
        expected = gauss.log_prob(y).sum(-1) + torch.linalg.slogdet(jac)[1]  # (k,)
        torch.testing.assert_close(model.log_likelihood(x, z)[:, i], expected)


def test_flow_decoder_with_identity_flow_is_the_gaussian_vae():
    cfg = {"hidden": [32], "latent_dim": 3, "image_shape": [1, 4, 4], "preprocess": "dequantize"}
    flow_vae = build_model("vae-flow-decoder", {**cfg, "couplings": 2, "flow_hidden": [8]})
    vae = VAE(VAEConfig(hidden=(32,), latent_dim=3, image_shape=(1, 4, 4), preprocess="dequantize"))
    vae.load_state_dict(flow_vae.state_dict(), strict=False)  # new couplings are the identity
    x, z = torch.rand(5, 1, 4, 4), torch.randn(2, 5, 3)
    torch.testing.assert_close(flow_vae.log_likelihood(x, z), vae.log_likelihood(x, z))
    torch.manual_seed(1)
    a = flow_vae.loss(x)
    torch.manual_seed(1)
    b = vae.loss(x)
    torch.testing.assert_close(a["bpd"], b["bpd"])
    torch.testing.assert_close(b["bpd"], (-b["elbo"] + 16 * math.log(256)) / (16 * math.log(2)))


@pytest.mark.parametrize("key", list(TINY))
def test_contract(key):
    name = model_name(key)
    torch.manual_seed(0)
    model = build_model(name, TINY[key])
    assert model.preprocess == "dequantize" and model.caps.likelihood is not None and model.caps.encode
    contract.check_loss_finite(model)
    contract.check_step_changes_weights(model)
    contract.check_sample(model)


def head(data: ImageData, n: int) -> ImageData:
    return ImageData(data.x[:n], data.y[:n], data.dataset, data.split)


@pytest.mark.parametrize("key", ["nice", "realnvp", "vae-flow-decoder"])
def test_checkpoint_round_trip(key, tmp_path, mnist_small):
    contract.check_checkpoint_round_trip(model_name(key), TINY[key], tmp_path,
                                         head(mnist_small[0], 256))


@pytest.mark.parametrize("key,epochs,lr", [("nice", 2, 5e-3), ("realnvp", 1, 3e-3),
                                           ("vae-flow-decoder", 1, 3e-3)])
def test_short_run_lowers_validation_loss(key, epochs, lr, mnist_small):
    """512 real MNIST training images, 200 validation images."""
    train, val = mnist_small
    contract.check_short_run_lowers_loss(model_name(key), TINY[key], head(train, 512),
                                         head(val, 200), epochs=epochs, lr=lr, batch_size=32)


# -- sampling temperature (issue 12): z ~ N(0, T^2 I), Kingma & Dhariwal 2018 ------------
@pytest.mark.parametrize("name,prior,unit_std", [("realnvp", "gaussian", 1.0),
                                                 ("nice", "gaussian", 1.0),
                                                 ("nice", "logistic", math.pi / math.sqrt(3))])
@pytest.mark.parametrize("t", [0.5, 0.7, 1.3])
def test_prior_draws_have_std_t(name, prior, unit_std, t):
    """The std of the latent draws is T times the prior's (for 784 x 400 draws, the sample
    std is within 1% of it: its relative standard error is about 0.1%); the mean stays 0."""
    cfg = {**TINY[name], **({"prior": prior} if name == "nice" else {})}
    model = build_model(name, cfg)
    torch.manual_seed(0)
    z = model.sample_prior(400, temperature=t)  # (400, 784)
    assert z.shape == (400, 784)
    assert float(z.std()) == pytest.approx(t * unit_std, rel=0.01)
    assert abs(float(z.mean())) < 0.01 * t * unit_std * 3
    torch.manual_seed(0)
    plain = model.sample_prior(400)  # T = 1 is the prior as trained, draw for draw
    torch.manual_seed(0)
    assert torch.equal(model.sample_prior(400, temperature=1.0), plain)
    torch.manual_seed(0)
    assert torch.allclose(model.sample_prior(400, temperature=t), t * plain)
    assert model.caps.temperature == 0.7  # the flows' grid temperature
    x = model.sample(3, temperature=t)
    assert x.shape == (3, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_latent_models_scale_their_prior_and_refuse_bad_temperatures():
    from genlab.models import MODELS

    for name in ("vae", "vae-flow-posterior", "vae-flow-prior"):
        model = build_model(name, {"latent_dim": 8, "hidden": [16]})
        torch.manual_seed(0)
        plain = model.sample_prior(5000)
        torch.manual_seed(0)
        cold = model.sample_prior(5000, temperature=0.5)
        if name == "vae-flow-prior":  # the flow's base is tempered: f^-1(T eps); identity at init
            assert torch.allclose(cold, 0.5 * plain, atol=1e-6)
        else:
            assert torch.allclose(cold, 0.5 * plain) and float(cold.std()) == pytest.approx(0.5, rel=0.02)
    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a number > 0"):
            build_model("vae", {"latent_dim": 2, "hidden": [8]}).sample(2, temperature=t)
    binary = build_model("binary-vae", {"latent_dim": 4, "hidden": [8]})
    assert binary.caps.temperature is None and binary.sample(2, temperature=1.0).shape[0] == 2
    with pytest.raises(ValueError, match="has no sampling temperature"):
        binary.sample(2, temperature=0.7)
    for name, (cls, _) in MODELS.items():  # a temperature exactly where there is a prior
        assert (cls.caps.temperature is None) == (cls.caps.prior in (None, "bernoulli")), name


def test_seeded_samples_repeat_leave_the_global_rng_and_the_slider_range_follows_caps():
    """What the app's temperature sliders draw with (issue 15, section 5): the same seed and
    T give the same images, the global RNG is untouched, the range comes from caps."""
    from pages.ui.widgets import temperature_note

    expect = {"vae": (0.05, 1.5, 1.0), "nice": (0.05, 1.5, 0.7), "gan": (0.05, 1.0, 1.0),
              "binary-vae": None}
    models = {name: build_model(name, {"latent_dim": 4, "hidden": [8]} if name != "nice" else
                                {"couplings": 2, "hidden": [8]}).eval() for name in expect}
    torch.manual_seed(123)
    state = torch.get_rng_state()
    for name, rng in expect.items():
        model = models[name]
        assert model.temperature_range() == rng, name
        a = model.seeded_sample(6, 1.0, seed=3)
        assert torch.equal(a, model.seeded_sample(6, 1.0, seed=3)) and a.shape == (6, 1, 28, 28)
        assert not torch.equal(a, model.seeded_sample(6, 1.0, seed=4))
        if rng is not None:
            assert not torch.equal(a, model.seeded_sample(6, 0.5, seed=3))
    assert torch.equal(torch.get_rng_state(), state)
    gan = build_model("gan", {"latent_dim": 4, "hidden": [8]})
    assert temperature_note(gan, 1.4) == (1.0, "; gan goes up to T = 1")
    assert temperature_note(gan, 0.5) == (0.5, "")
    binary = build_model("binary-vae", {"latent_dim": 4, "hidden": [8]})
    t, note = temperature_note(binary, 0.5)
    assert t == 1.0 and "T = 1 only" in note and "bernoulli" in note
