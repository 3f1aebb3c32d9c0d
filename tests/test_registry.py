"""Every registry model on every dataset shape with its default config: the CLI and the
app build models this way (channels and size come from the dataset)."""
from __future__ import annotations

import pytest
import torch

from genlab.data import DATASETS
from genlab.models import MODELS, build_model

from contract import check_loss_finite, check_sample, tiny_batch

SHAPES = sorted({tuple(spec.shape) for spec in DATASETS.values()})


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(MODELS))
def test_default_model_on_every_dataset_shape(name, shape):
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": shape})
    check_loss_finite(model)
    check_sample(model, n=2)
    x = tiny_batch(model, n=2)
    if model.has_latent:
        z = model.encode(x)
        assert z.shape[0] == 2 and torch.isfinite(z).all()
        assert model.decode(z).shape == x.shape
    if model.has_likelihood:
        lp = model.log_prob(x, k=2)
        assert lp.shape == (2,) and torch.isfinite(lp).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_seeded_builds_are_identical(name):
    a = (torch.manual_seed(3), build_model(name, {}))[1].state_dict()
    b = (torch.manual_seed(3), build_model(name, {}))[1].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def no_distribution_checks():
    """torch.distributions validates arguments by reading values (a device sync on CUDA,
    impossible on the meta device); the model code itself must not need it."""
    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    yield
    torch.distributions.Distribution.set_default_validate_args(before)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_tensor_follows_the_models_device(name, no_distribution_checks):
    """No GPU here, so the CUDA path is checked with the meta device: tensors without data.
    A tensor made on the CPU inside the model (noise, masks, priors, constants) mixed with
    the model's own fails there as on CUDA, and so does reading a value back (.item(),
    bool(tensor): a device sync on every step on CUDA). One CPU forward first, so that
    data-dependent initialisations (ActNorm, NICE's scaling) have happened."""
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": [3, 32, 32]})
    model.train()
    model.loss(tiny_batch(model, n=4))
    model = model.to("meta")
    x = torch.rand(4, 3, 32, 32, device="meta")
    if model.preprocess != "dequantize":
        x = x.round()
    for part in model.loss(x).values():
        assert part.device.type == "meta"
    assert model.sample(2).device.type == "meta"
    if model.has_latent:
        assert model.decode(model.encode(x)).device.type == "meta"
    if model.has_likelihood:
        assert model.log_prob(x, k=3).device.type == "meta"
