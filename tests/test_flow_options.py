"""The flow architecture options (issue 31): Flow++'s gated coupling nets (``coupling_net``),
Glow's ActNorm (``actnorm``) and invertible 1x1 convolution (``permute=conv1x1``), and
variational dequantisation (``dequantization=variational``, Ho et al. 2019). Each keeps the
likelihood exact (whole-image autograd Jacobians), the defaults build what the shipped runs
hold, and each option lowers the loss on real MNIST in a few dozen steps."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
from torch import distributions as D
from torch.autograd.functional import jacobian

from genlab.config import from_dict
from genlab.data import preprocess
from genlab.flows import ActNorm, InvertibleLinear
from genlab.models import MODELS, build_model
from genlab.models.flow import VariationalDequantizer

import contract
from test_flow_models import batched_jacobian, dequantized_image, head, random_flow_model
from test_flows import randomize

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small ops, a shared CPU

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
TINY = {"couplings": 1, "width": 4, "res_blocks": 1}  # realnvp
OPTIONS = {
    "gated": {"coupling_net": "gated"},
    "conv1x1": {"permute": "conv1x1"},
    "no-actnorm": {"actnorm": False},
    "glow-gated": {"coupling_net": "gated", "permute": "conv1x1"},
}


def layer_types(model) -> list[str]:
    return [type(m).__name__ for m in model.modules()]


# -- the defaults are what the shipped runs hold ---------------------------------------------
@pytest.mark.parametrize("run", ["realnvp-mnist", "nice-mnist", "vae-flow-decoder-mnist"])
def test_default_options_build_the_shipped_state_dict(run):
    """A model built from a shipped run's config.json (which names none of the new options)
    has exactly the tensors, of the same shapes, that its checkpoint holds."""
    cfg = json.loads((CHECKPOINTS / run / "config.json").read_text())
    ckpt = torch.load(CHECKPOINTS / run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = build_model(cfg["model"], cfg["model_config"])
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert mine == {k: tuple(v.shape) for k, v in ckpt["model"].items()}
    assert "InvertibleLinear" not in layer_types(model) and "GatedResBlock" not in layer_types(model)
    if cfg["model"] != "vae-flow-decoder":
        assert model.dequantizer is None and model.dequantization == "uniform"
        assert model.log_prob_method == "exact change of variables"


def test_bad_option_values_are_one_line_errors():
    cls = MODELS["realnvp"][1]
    with pytest.raises(ValueError, match=r"^coupling_net must be one of plain, gated \(got 'resnet'\)$"):
        from_dict(cls, {"coupling_net": "resnet"})
    with pytest.raises(ValueError, match=r"^permute must be one of alternate, conv1x1"):
        from_dict(cls, {"permute": "reverse"})
    with pytest.raises(ValueError, match=r"^dequantization must be one of uniform, variational"):
        from_dict(MODELS["nice"][1], {"dequantization": "gaussian"})
    with pytest.raises(ValueError, match="dequantization=variational is for the unconditional "
                                         "flows; realnvp-cond takes uniform"):
        build_model("realnvp-cond", {**TINY, "dequantization": "variational"})


# -- exact likelihoods with the options --------------------------------------------------------
@pytest.mark.parametrize("option", ["gated", "conv1x1", "no-actnorm"])
def test_realnvp_log_prob_is_exact_with_the_option(option, data_root):
    """log p(x) = log N(f(x)) + log|det df/dx| of the whole 784-pixel map, against autograd."""
    model = random_flow_model("realnvp", {**TINY, **OPTIONS[option]})
    x = dequantized_image(data_root)
    z = model(x)[0][0]
    sign, log_det = torch.linalg.slogdet(batched_jacobian(lambda t: model(t)[0], x))
    assert sign != 0
    expected = D.Normal(torch.zeros(784, dtype=torch.double), 1.0).log_prob(z).sum() + log_det
    torch.testing.assert_close(model.log_prob(x)[0], expected, rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(model.decode(model.encode(x)), x, rtol=0, atol=1e-9)


def test_nice_with_gated_nets_is_exact_and_volume_preserving_but_for_its_scaling(data_root):
    model = random_flow_model("nice", {"couplings": 2, "hidden": [16, 16], "coupling_net": "gated",
                                       "prior": "gaussian"})
    x = dequantized_image(data_root)
    sign, log_det = torch.linalg.slogdet(batched_jacobian(lambda t: model(t)[0], x))
    assert sign != 0
    scaling = model.flow.layers[-1].log_scale.sum()  # the couplings are additive
    torch.testing.assert_close(log_det, scaling, rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(model(x)[1][0], scaling)


@pytest.mark.parametrize("option", ["glow-gated", "no-actnorm"])
def test_three_scales_invert_with_the_options(option):
    model = random_flow_model("realnvp", {"scales": 3, "couplings": 1, "width": 4,
                                          **OPTIONS[option]}, (3, 32, 32))
    x = torch.rand(2, 3, 32, 32, dtype=torch.double)
    z, _ = model(x)
    assert z.shape == (2, 3072)
    torch.testing.assert_close(model.inverse(z), x)


def test_conv1x1_layers_have_their_own_rotations_and_the_lu_log_det():
    """Before every coupling on more than one channel; distinct seeds, so distinct W; each
    log-det is H W log|det W| (slogdet of the assembled matrix)."""
    model = build_model("realnvp", {**TINY, "permute": "conv1x1"})
    convs = [m for m in model.modules() if isinstance(m, InvertibleLinear)]
    couplings = layer_types(model).count("AffineCoupling")
    checker_first = TINY["couplings"]  # the first scale's checkerboard couplings see 1 channel
    assert len(convs) == couplings - checker_first
    ws = [c.weight().detach() for c in convs]
    assert all(not torch.allclose(a, b) for i, a in enumerate(ws) for b in ws[i + 1:]
               if a.shape == b.shape)
    x = torch.randn(3, 4, 5, 5)
    for conv in convs[:1]:
        _, ld = conv(x[:, :conv.lower.shape[0]])
        torch.testing.assert_close(ld, torch.full((3,), 25 * float(torch.linalg.slogdet(ws[0])[1])))
    assert not build_model("realnvp", TINY).flow(torch.rand(2, 1, 28, 28))[1].isnan().any()


# -- ActNorm: the data-dependent init, and that it survives a checkpoint ---------------------
def test_every_actnorm_starts_with_zero_mean_unit_variance_and_keeps_its_init_through_weights_only():
    model = build_model("realnvp", TINY)
    outs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outs.append(o[0].detach()))
             for m in model.modules() if isinstance(m, ActNorm)]
    x = torch.rand(32, 1, 28, 28)
    model.flow(x)
    for h in hooks:
        h.remove()
    assert len(outs) == 3 * TINY["couplings"] + 1
    for y in outs:  # per channel over the batch and the pixels
        torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(y.shape[1]), atol=1e-4, rtol=0)
        torch.testing.assert_close(y.std((0, 2, 3), unbiased=False), torch.ones(y.shape[1]),
                                   atol=1e-3, rtol=0)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = build_model("realnvp", TINY)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert all(bool(m.initialized) for m in fresh.modules() if isinstance(m, ActNorm))
    other = torch.rand(8, 1, 28, 28) * 0.3  # a batch that would initialise it otherwise
    torch.testing.assert_close(fresh.log_prob(other), model.log_prob(other), rtol=0, atol=0)
    assert "ActNorm" not in layer_types(build_model("realnvp", {**TINY, "actnorm": False}))


# -- variational dequantisation -----------------------------------------------------------------
def test_dequantizer_log_q_is_minus_the_log_det_of_its_noise_map():
    """u0 -> u for a fixed 8-bit image is a bijection with log q(u|x) = -log|du/du0| (u0 is
    uniform): against the autograd Jacobian, float64, random (not identity) couplings."""
    dq = randomize(VariationalDequantizer((1, 4, 4), couplings=2, width=4), 0.3).double()
    g = torch.Generator().manual_seed(0)
    k = torch.randint(0, 256, (3, 1, 4, 4), generator=g).double()
    u0 = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.double)
    kk, u, log_q = dq.noise((k + u0) / 256)
    assert torch.equal(kk, k)
    for i in range(3):
        jac = jacobian(lambda t: dq.noise((k[i:i + 1] + t.view(1, 1, 4, 4)) / 256)[1].reshape(-1),
                       u0[i].reshape(-1))
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign > 0
        torch.testing.assert_close(log_q[i], -logabs, atol=1e-8, rtol=1e-8)
    assert not torch.allclose(u, u0, atol=1e-3)  # the couplings did move the noise


@pytest.mark.parametrize("std", [0.0, 0.3, 3.0])
def test_dequantized_pixels_stay_in_their_bin(std):
    """u in [0, 1) and x' = (k + u)/256 in [k/256, (k + 1)/256), float32, at the corners (k = 0
    and 255, u0 = 0 and just below 1) and with large weights that saturate the sigmoid."""
    dq = VariationalDequantizer((1, 6, 6), couplings=2, width=4)
    if std:
        randomize(dq, std)
    g = torch.Generator().manual_seed(1)
    k = torch.randint(0, 256, (16, 1, 6, 6), generator=g, dtype=torch.uint8)
    k[:4], k[4:8] = 0, 255
    x = preprocess(k, "dequantize", generator=g)
    x[::3] = k[::3].float() / 256  # u0 = 0
    x[1::3] = (k[1::3].float() + (1 - 2.0 ** -16)) / 256  # u0 just below 1
    with torch.no_grad():
        kk, u, log_q = dq.noise(x)
        x2, log_q2 = dq(x)
    assert torch.equal(kk, k.float()) and torch.isfinite(log_q).all()
    assert float(u.min()) >= 0 and float(u.max()) < 1
    assert torch.equal(torch.floor(256 * x2), k.float()) and float(x2.max()) < 1
    torch.testing.assert_close(log_q2, log_q)
    if not std:  # identity couplings: u is the pipeline's u0, up to the logit's alpha
        torch.testing.assert_close(u, 256 * x - k.float(), atol=1e-4, rtol=0)
        assert float(log_q.abs().max()) < 0.01


def test_variational_log_prob_is_the_flow_at_the_new_noise_minus_log_q():
    model = build_model("realnvp", {**TINY, "dequantization": "variational"}).eval()
    randomize(model.dequantizer, 0.1)
    x = contract.tiny_batch(model)
    x2, log_q = model.dequantizer(x)
    z, log_det = model(x2)
    expected = D.Normal(0.0, 1.0).log_prob(z).sum(-1) + log_det - log_q
    torch.testing.assert_close(model.log_prob(x), expected)
    assert not torch.allclose(model.log_prob(x), model.log_prior(model(x)[0]) + model(x)[1])
    assert model.dequantization == "variational" and "q(u|x)" in model.log_prob_method


def test_variational_loss_is_finite_and_falls_in_a_few_steps(mnist_small):
    """20 Adam steps on one batch of 64 real MNIST images lower the bound's loss on it, and
    move the dequantiser (its gradient is not cut off)."""
    torch.manual_seed(0)
    model = build_model("realnvp", {**TINY, "dequantization": "variational"})
    g = torch.Generator().manual_seed(0)
    x = preprocess(mnist_small[0].x[:64], "dequantize", generator=g)
    (opt,) = model.configure_optimizers(3e-3)
    start = {k: p.detach().clone() for k, p in model.dequantizer.named_parameters()}
    losses = []
    for _ in range(20):
        out = model.train_step(x, [opt])
        assert all(torch.isfinite(v) for v in out.values())
        losses.append(float(out["loss"]))
    assert losses[-1] < losses[0] - 0.05 * abs(losses[0]), losses
    assert all(not torch.equal(p, start[k]) for k, p in model.dequantizer.named_parameters())


def test_eval_json_names_the_bound(mnist_small):
    from genlab.evaluation.metrics import DEQUANTIZATION_BOUNDS, _nll

    data = head(mnist_small[1], 20)
    for deq in ("uniform", "variational"):
        model = build_model("realnvp", {**TINY, "dequantization": deq})
        out = _nll(model, data, k=1, progress=False)
        assert out["dequantization"] == deq and out["dequantization_bound"] == DEQUANTIZATION_BOUNDS[deq]
        assert math.isfinite(out["bpd"])
    assert out["proposal"].startswith("q(u|x)")
    vae = build_model("vae", {"latent_dim": 2, "hidden": [8], "preprocess": "dequantize"})
    assert _nll(vae, data, k=2, progress=False)["dequantization"] == "uniform"
    binary = build_model("vae", {"latent_dim": 2, "hidden": [8]})  # binarised: no bins to fill
    assert "dequantization" not in _nll(binary, data, k=2, progress=False)


# -- each option trains: a few dozen steps on real MNIST ----------------------------------------
TRAINS = {
    "realnvp-gated": ("realnvp", {**TINY, "coupling_net": "gated"}),
    "realnvp-conv1x1": ("realnvp", {**TINY, "permute": "conv1x1"}),
    "realnvp-no-actnorm": ("realnvp", {**TINY, "actnorm": False}),
    "realnvp-variational": ("realnvp", {**TINY, "dequantization": "variational",
                                        "dequant_couplings": 2, "dequant_width": 4}),
    "nice-gated": ("nice", {"couplings": 4, "hidden": [32, 32], "coupling_net": "gated"}),
    "nice-variational": ("nice", {"couplings": 4, "hidden": [32], "dequantization": "variational",
                                  "dequant_couplings": 2, "dequant_width": 4}),
    "vae-flow-decoder-gated": ("vae-flow-decoder", {"hidden": [64], "latent_dim": 4, "couplings": 2,
                                                    "flow_hidden": [32, 32], "coupling_net": "gated"}),
    "vae-flow-decoder-realnvp-gated": ("vae-flow-decoder", {"hidden": [64], "latent_dim": 4,
                                                            "couplings": 1, "width": 4,
                                                            "decoder_flow": "realnvp",
                                                            "coupling_net": "gated"}),
}


@pytest.mark.parametrize("key", list(TRAINS))
def test_short_run_with_the_option_lowers_validation_loss(key, mnist_small):
    """512 real MNIST images in batches of 16 (32 steps; NICE 2 epochs of 32, as
    test_flow_models runs it), 200 validation images: every parameter (the gated nets' zero
    layers, the 1x1 convolutions, the dequantiser) trains. NICE's gated nets take lr 1e-4:
    their LayerNorm'd features move the pixel-space shifts, which the diagonal scaling
    multiplies by up to e^7, much faster than a ReLU MLP's (at 1e-3 the loss rises)."""
    name, cfg = TRAINS[key]
    train, val = mnist_small
    if name == "nice":
        lr, epochs, batch = (1e-4 if cfg.get("coupling_net") == "gated" else 5e-3), 2, 32
    else:
        lr, epochs, batch = 3e-3, 1, 16
    contract.check_short_run_lowers_loss(name, cfg, head(train, 512), head(val, 200),
                                         epochs=epochs, lr=lr, batch_size=batch)


def test_checkpoint_round_trip_with_every_option(tmp_path, mnist_small):
    cfg = {**TINY, "coupling_net": "gated", "permute": "conv1x1", "dequantization": "variational",
           "dequant_couplings": 2, "dequant_width": 4}
    contract.check_checkpoint_round_trip("realnvp", cfg, tmp_path, head(mnist_small[0], 256))


def test_contract_with_every_option():
    for name, cfg in TRAINS.values():
        torch.manual_seed(0)
        model = build_model(name, cfg)
        contract.check_loss_finite(model)
        contract.check_step_changes_weights(model)
        contract.check_sample(model)
