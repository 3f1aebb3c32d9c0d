"""A decoder that is a plain MLP, exported as arrays so another runtime (the browser's
JavaScript, a numpy script) can run its forward pass.

An export is a list of dense layers ``y = act(W x + b)`` (W (out, in), b (out,) float32)
and the output transform that turns the last layer's output into pixels in [0, 1]:
"sigmoid" (Bernoulli decoders: the logits' mean), "tanh01" ((tanh(t) + 1) / 2: the GAN's
generator) or "clamp" (a Gaussian decoder's mean, clamped to [0, 1]; the export keeps only
the mean's rows of the last layer). Batch norm in evaluation mode is an affine map, folded
into the linear layer before it: s = gamma / sqrt(var + eps), W' = s W, b' = s (b - mean) + beta.

Which network decodes, and how its output becomes pixels, the model says through its
``mlp_decoder()`` hook (None: no single network, such as a flow decoder); a network with a
convolution is not exportable either (:func:`export_decoder` returns None), and an export
whose numpy forward does not reproduce ``model.decode`` on random codes within 1e-5 is
refused too, so a caller can never show the wrong pixels.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models.base import GenerativeModel

ACTS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid")
OUTPUTS = ("sigmoid", "tanh01", "clamp")
CHECK_TOL = 1e-5  # the export must reproduce model.decode within this on random codes


class NotAnMLP(ValueError):
    """The decoder holds a layer the export cannot express (a convolution, a flow)."""


@dataclass
class Layer:
    weight: np.ndarray  # (out, in) float32
    bias: np.ndarray  # (out,) float32
    act: str  # one of ACTS
    slope: float = 0.0  # leaky_relu's negative slope


@dataclass
class MLPExport:
    layers: list[Layer]
    output: str  # one of OUTPUTS
    image_shape: tuple[int, int, int]  # (C, H, W): the last layer's output, row-major

    @property
    def latent_dim(self) -> int:
        return self.layers[0].weight.shape[1]

    def forward(self, z: np.ndarray) -> np.ndarray:
        """Pixels in [0, 1] (n, C, H, W) float32 of codes z (n, d), in numpy float32."""
        h = np.asarray(z, dtype=np.float32)
        for layer in self.layers:
            h = _act(h @ layer.weight.T + layer.bias, layer.act, layer.slope)
        h = {"sigmoid": lambda t: np.exp(-np.logaddexp(0, -t)), "tanh01": lambda t: (np.tanh(t) + 1) / 2,
             "clamp": lambda t: np.clip(t, 0, 1)}[self.output](h)
        return h.astype(np.float32).reshape(len(h), *self.image_shape)

    def to_json(self) -> dict:
        """What the browser component receives: shapes, activations and each array as
        base64 of its little-endian float32 bytes (W row-major: W[o, i] at o * in + i)."""
        b64 = (lambda a: base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode())
        return {"output": self.output, "image_shape": list(self.image_shape),
                "layers": [{"in": int(layer.weight.shape[1]), "out": int(layer.weight.shape[0]),
                            "act": layer.act, "slope": layer.slope, "weight": b64(layer.weight),
                            "bias": b64(layer.bias)} for layer in self.layers]}


def _act(h: np.ndarray, act: str, slope: float) -> np.ndarray:
    if act == "relu":
        return np.maximum(h, 0)
    if act == "leaky_relu":
        return np.where(h >= 0, h, slope * h)
    if act == "tanh":
        return np.tanh(h)
    if act == "sigmoid":
        return np.exp(-np.logaddexp(0, -h))
    return h


def _modules(net: nn.Module) -> list[nn.Module]:
    """The leaf modules of nested nn.Sequential containers, in order."""
    if isinstance(net, nn.Sequential):
        return [m for child in net for m in _modules(child)]
    return [net]


_ACT_OF = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


def layers_of(net: nn.Module) -> list[Layer]:
    """The dense layers of a network of Linear, BatchNorm1d (folded), activations,
    Dropout and a final Unflatten; NotAnMLP for anything else."""
    out: list[Layer] = []
    for m in _modules(net):
        if isinstance(m, nn.Linear):
            b = m.bias if m.bias is not None else torch.zeros(m.out_features)
            out.append(Layer(m.weight.detach().double().numpy(), b.detach().double().numpy(), "identity"))
        elif isinstance(m, nn.BatchNorm1d) and out and out[-1].act == "identity":
            s = (m.weight.detach().double() / torch.sqrt(m.running_var.double() + m.eps)).numpy()
            last = out[-1]
            last.weight = s[:, None] * last.weight
            last.bias = s * (last.bias - m.running_mean.double().numpy()) + m.bias.detach().double().numpy()
        elif type(m) in _ACT_OF and out and out[-1].act == "identity":
            out[-1].act = _ACT_OF[type(m)]
            out[-1].slope = float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0
        elif isinstance(m, (nn.Dropout, nn.Unflatten, nn.Identity)):
            continue
        else:
            raise NotAnMLP(f"a {type(m).__name__} layer is not part of a plain MLP")
    if not out:
        raise NotAnMLP("no linear layer")
    for layer in out:
        layer.weight = layer.weight.astype(np.float32)
        layer.bias = layer.bias.astype(np.float32)
    return out


def _raw_export(model) -> MLPExport:
    net = model.mlp_decoder()
    if net is None:
        raise NotAnMLP(f"a {model.kind!r} model's decoder is not one network")
    net, output = net
    if output not in OUTPUTS:
        raise ValueError(f"{type(model).__name__}.mlp_decoder: output must be one of "
                         f"{', '.join(OUTPUTS)} (got {output!r})")
    layers = layers_of(net)
    shape = tuple(int(s) for s in model.cfg.image_shape)
    n_pix = int(np.prod(shape))
    if output == "tanh01":
        if layers[-1].act != "tanh":
            raise NotAnMLP("the network does not end in tanh")
        layers[-1].act = "identity"
    elif output == "clamp":  # a Gaussian decoder: its first C*H*W outputs are the means
        layers[-1].weight, layers[-1].bias = layers[-1].weight[:n_pix], layers[-1].bias[:n_pix]
    if layers[-1].act != "identity" or layers[-1].weight.shape[0] != n_pix:
        raise NotAnMLP(f"the last layer gives {layers[-1].weight.shape[0]} values for {n_pix} pixels")
    return MLPExport(layers, output, shape)


@torch.no_grad()
def decode_error(model: GenerativeModel, export: MLPExport, n: int = 16, seed: int = 0) -> float:
    """Largest |export.forward(z) - model.decode(z)| over n random codes (pixels in [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, export.latent_dim, generator=g, dtype=torch.float32) * 2
    model.eval()
    dtype = next(model.parameters()).dtype
    ref = model.decode(z.to(model.device, dtype)).float().cpu().numpy()
    return float(np.abs(export.forward(z.numpy()) - ref).max())


def export_decoder(model: GenerativeModel) -> MLPExport | None:
    """The model's decoder as dense layers and an output transform, or None when its
    decoder is not a plain MLP or the export would not reproduce ``model.decode``."""
    try:
        export = _raw_export(model)
    except NotAnMLP:
        return None
    return export if decode_error(model, export) <= CHECK_TOL else None
