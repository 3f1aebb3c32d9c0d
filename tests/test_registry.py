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
