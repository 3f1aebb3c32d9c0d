"""genlab.evaluation.mlp_export: a pure-numpy forward of each exported MLP decoder equals the model's
own decode within 1e-5 (the GAN's batch norm folded, with non-trivial running statistics;
a Gaussian decoder's mean rows kept), on tiny models and on the shipped runs; convolutional
and flow decoders are not exported."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.evaluation.mlp_export import CHECK_TOL, MLPExport, decode_error, export_decoder
from genlab.models import build_model
from genlab.runs import store

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
pytestmark = pytest.mark.usefixtures("one_thread")

MLP_DECODERS = {
    "vae": ({"latent_dim": 3, "hidden": [16, 8]}, "sigmoid"),
    "vae-gauss": ({"latent_dim": 3, "hidden": [16], "preprocess": "dequantize"}, "clamp"),
    "binary-vae": ({"latent_dim": 6, "hidden": [16]}, "sigmoid"),
    "ae-gmm": ({"latent_dim": 2, "hidden": [16], "n_components": 3}, "sigmoid"),
    "vae-flow-prior": ({"latent_dim": 2, "hidden": [16]}, "sigmoid"),
    "vae-flow-posterior": ({"latent_dim": 2, "hidden": [16], "flow": "planar", "num_flows": 2}, "sigmoid"),
    "gan": ({"latent_dim": 5, "hidden": [16, 32, 8], "d_hidden": [8]}, "tanh01"),
}


def _scramble(model: torch.nn.Module) -> None:
    """Weights and batch-norm statistics far from their initial values."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 3 + 0.1)


@pytest.mark.parametrize("name", list(MLP_DECODERS))
def test_numpy_forward_of_the_export_equals_decode(name):
    cfg, output = MLP_DECODERS[name]
    model = build_model(name.removesuffix("-gauss"), cfg)
    _scramble(model)
    model.eval()
    export = export_decoder(model)
    assert export is not None and export.output == output
    z = torch.randn(64, cfg["latent_dim"]) * 2
    ref = model.decode(z).float().numpy()
    got = export.forward(z.numpy())
    assert got.shape == ref.shape == (64, 1, 28, 28)
    assert np.abs(got - ref).max() < CHECK_TOL
    assert ref.std() > 0.05  # the images vary: the comparison is not between constants


def test_the_json_arrays_decode_to_the_same_layers():
    model = build_model("gan", MLP_DECODERS["gan"][0])
    _scramble(model)
    model.eval()
    export = export_decoder(model)
    js = export.to_json()
    assert [(l["in"], l["out"]) for l in js["layers"]] == [(5, 16), (16, 32), (32, 8), (8, 784)]
    assert [l["act"] for l in js["layers"]] == ["leaky_relu"] * 3 + ["identity"]
    for layer, enc in zip(export.layers, js["layers"]):
        w = np.frombuffer(base64.b64decode(enc["weight"]), "<f4").reshape(enc["out"], enc["in"])
        assert np.array_equal(w, layer.weight)


@pytest.mark.parametrize("name,cfg", [
    ("vae", {"latent_dim": 2, "arch": "conv"}),
    ("vae-flow-decoder", {"latent_dim": 2, "hidden": [16]}),
    ("nice", {"couplings": 2, "hidden": [16]}),
    ("dcgan", {"latent_dim": 4}),
])
def test_convolutional_and_flow_decoders_are_not_exported(name, cfg):
    assert export_decoder(build_model(name, cfg)) is None


def test_a_wrong_export_is_refused():
    model = build_model("vae", MLP_DECODERS["vae"][0]).eval()
    export = export_decoder(model)
    export.layers[0].bias[0] += 0.5  # one number off
    assert decode_error(model, export) > CHECK_TOL


@pytest.mark.parametrize("run", ["vae-2d-mnist", "binary-vae-mnist", "ae-gmm-mnist", "gan-mnist",
                                 "vae-planar-mnist"])
def test_shipped_mlp_decoders_export(run):
    model, _, _ = store.load_model(SHIPPED / run, map_location="cpu")
    export = export_decoder(model)
    assert isinstance(export, MLPExport)
    assert decode_error(model, export, n=64, seed=3) < CHECK_TOL
