"""Bijections for normalizing flows, shared by the flow models and the flow-augmented VAEs.

Every layer is a :class:`Bijection`: ``forward(x, context=None) -> (y, log_det)`` and
``inverse(y, context=None) -> (x, log_det_of_inverse)``, with ``log_det`` of shape (B,)
summed over all non-batch dimensions. Layers act on vectors (B, d) and, where it makes
sense, on images (B, C, H, W); features / channels are always dimension 1.

References:
> L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation. 2014.
> L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017.
> D. P. Kingma, P. Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. 2018.
> D. J. Rezende, S. Mohamed. Variational Inference with Normalizing Flows. ICML 2015.

Conditioner nets of couplings are called as ``net(x * mask)`` or, when a context is
given (amortised posteriors), ``net(x * mask, context)``; they return the coupling
parameters stacked along dimension 1: (B, 2F, ...) = [raw log-scale, shift] for
:class:`AffineCoupling`, (B, F, ...) = shift for :class:`AdditiveCoupling`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .nn import gated_net, mlp

Pair = tuple[torch.Tensor, torch.Tensor]

COUPLING_NETS = ("plain", "gated")
"""The conditioner networks of couplings: plain (ReLU: an MLP on vectors, a ResNet on images,
the papers' own) or gated (Flow++'s gated residual blocks, :func:`genlab.nn.gated_net`)."""


def sum_except_batch(t: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,)"""
    return t.sum(-1) if t.dim() == 2 else t.reshape(t.shape[0], -1).sum(-1)


def _feature_view(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-feature vector (F,) shaped to broadcast over x (B, F, ...)."""
    return p.view(1, -1, *([1] * (x.dim() - 2)))


class Bijection(nn.Module):
    """An invertible map with a tractable log|det J|."""

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        raise NotImplementedError


class Compose(Bijection):
    """Bijections in sequence: forward runs them in order, inverse in reverse."""

    def __init__(self, layers: Sequence[Bijection]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, context)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        log_det = y.new_zeros(y.shape[0])
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y, context)
            log_det = log_det + ld
        return y, log_det


class Inverse(Bijection):
    """The inverse of a bijection as a bijection (e.g. an unsqueeze from a Squeeze)."""

    def __init__(self, bijection: Bijection):
        super().__init__()
        self.bijection = bijection

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return self.bijection.inverse(x, context)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return self.bijection(y, context)


# -- masks ---------------------------------------------------------------------------
def half_mask(dim: int, parity: int, kind: str = "half") -> torch.Tensor:
    """(1, dim) mask of the kept part x_A: the first half ("half") or the even indices
    ("alternate", NICE's odd/even split); parity 1 gives the complement."""
    idx = torch.arange(dim)
    keep = idx < dim // 2 if kind == "half" else idx % 2 == 0
    return (keep ^ bool(parity)).float().unsqueeze(0)


def checkerboard_mask(channels: int, height: int, width: int, parity: int) -> torch.Tensor:
    """(1, C, H, W) checkerboard of kept pixels (RealNVP); parity 1 is the complement."""
    ij = torch.arange(height).view(-1, 1) + torch.arange(width).view(1, -1)  # (H, W)
    keep = (ij + parity) % 2 == 0
    return keep.float().expand(channels, height, width).unsqueeze(0).contiguous()


def channel_mask(channels: int, parity: int) -> torch.Tensor:
    """(1, C, 1, 1) mask keeping the first half of the channels (parity 1: the second)."""
    keep = (torch.arange(channels) < channels // 2) ^ bool(parity)
    return keep.float().view(1, channels, 1, 1)


# -- couplings -----------------------------------------------------------------------
class AffineCoupling(Bijection):
    """y_A = x_A, y_B = x_B * exp(s(x_A)) + t(x_A) (Dinh et al. 2017), log|det| = sum s.

    ``mask`` (broadcastable to x) is 1 on the kept part A. The log-scale is stabilised
    as s = scale * tanh(raw) with a learned per-feature ``scale`` (starts at 1).
    ``_scale_and_shift`` is the one hook subclasses override.
    """

    params_per_dim = 2  # the net returns [raw log-scale, shift]

    def __init__(self, mask: torch.Tensor, net: nn.Module):
        super().__init__()
        self.register_buffer("mask", mask)
        self.register_buffer("keep_b", 1.0 - mask, persistent=False)  # 1 on the changed part B
        self.net = net
        if self.params_per_dim == 2:
            self.scale = nn.Parameter(torch.ones(mask.shape[1]))

    def _scale_and_shift(self, params: torch.Tensor, x: torch.Tensor) -> Pair:
        """Conditioner output -> (log-scale s, shift t), both shaped like x."""
        raw, shift = params.chunk(2, dim=1)
        return _feature_view(self.scale, x) * torch.tanh(raw), shift

    def _params(self, x: torch.Tensor, context: torch.Tensor | None) -> Pair:
        x_a = x * self.mask
        params = self.net(x_a) if context is None else self.net(x_a, context)
        log_s, t = self._scale_and_shift(params, x)
        return log_s * self.keep_b, t * self.keep_b  # zero on the kept part A

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        log_s, t = self._params(x, context)
        y = x * torch.exp(log_s) + t  # identity on A since log_s = t = 0 there
        return y, sum_except_batch(log_s)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        log_s, t = self._params(y, context)  # y_A = x_A, so the same parameters
        x = (y - t) * torch.exp(-log_s)
        return x, -sum_except_batch(log_s)


class AdditiveCoupling(AffineCoupling):
    """NICE's additive coupling y_B = x_B + m(x_A) (Dinh et al. 2014): volume preserving."""

    params_per_dim = 1

    def _scale_and_shift(self, params: torch.Tensor, x: torch.Tensor) -> Pair:
        return torch.zeros_like(params), params


class ConditionerMLP(nn.Module):
    """MLP conditioner for vector couplings: the scale s and translation t of the affine
    coupling (Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP. ICLR 2017)
    as two separate nets, the scale net's output going through the coupling's tanh and
    the translation net's output linear, both on [x_A, context]; or, with ``shared``, one
    net whose last layer gives both (as the paper's image conditioners and nflows' do: half
    the work, which decides the speed of tiny 2-D flows). The last layers start at zero, so
    a new coupling is the identity."""

    def __init__(self, dim: int, hidden: Sequence[int], context_dim: int = 0, *, scale: bool = True,
                 shared: bool = False):
        super().__init__()
        sizes = [dim + context_dim, *hidden, dim]
        if shared and scale:  # one net: [raw log-scale, shift] (B, 2d)
            self.t_net, self.s_net = mlp([*sizes[:-1], 2 * dim]), None
        else:
            self.t_net = mlp(sizes)
            self.s_net = mlp(sizes) if scale else None
        for net in (self.t_net, self.s_net):
            if net is not None:
                nn.init.zeros_(net[-1].weight)
                nn.init.zeros_(net[-1].bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = x if context is None else torch.cat([x, context], dim=-1)  # (B, d + c)
        t = self.t_net(h)  # (B, d), or (B, 2d) shared
        return t if self.s_net is None else torch.cat([self.s_net(h), t], dim=1)  # (B, 2d)


class GatedConditioner(nn.Module):
    """Gated residual conditioner for vector couplings (Flow++; :func:`genlab.nn.gated_net`
    with linear layers) on [x_A, context]: one net for all the coupling's parameters,
    (B, d + c) -> (B, out), its last layer at zero so a new coupling is the identity."""

    def __init__(self, dim: int, width: int, blocks: int, out: int, context_dim: int = 0):
        super().__init__()
        self.net = gated_net(dim + context_dim, width, out, blocks, conv=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = x if context is None else torch.cat([x, context], dim=-1)  # (B, d + c)
        return self.net(h)  # (B, out)


def gated_widths(hidden: Sequence[int]) -> tuple[int, int]:
    """(width, residual blocks) of a gated net given as hidden widths: the first layer, then
    one gated block per further width; the widths must be equal (the blocks are residual)."""
    if len(set(hidden)) != 1:
        raise ValueError("a gated coupling net needs equal hidden widths (its blocks are "
                         f"residual; got {','.join(map(str, hidden))})")
    return hidden[0], len(hidden) - 1


def vector_coupling(dim: int, hidden: int | Sequence[int], parity: int, context_dim: int = 0, *,
                    additive: bool = False, mask_kind: str = "half", shared: bool = False,
                    net: str = "plain") -> AffineCoupling:
    """A coupling on (B, dim) vectors with a half (or alternating) mask; ``hidden`` is one
    width (two hidden layers) or a list of widths; ``net`` (:data:`COUPLING_NETS`): "plain",
    an MLP (``shared``: one conditioner net for scale and shift, :class:`ConditionerMLP`),
    or "gated", :class:`GatedConditioner` (always one net; widths as :func:`gated_widths`)."""
    widths = (hidden, hidden) if isinstance(hidden, int) else tuple(hidden)
    if net == "gated":
        width, blocks = gated_widths(widths)
        out = dim if additive else 2 * dim
        conditioner: nn.Module = GatedConditioner(dim, width, blocks, out, context_dim)
    elif net == "plain":
        conditioner = ConditionerMLP(dim, widths, context_dim, scale=not additive, shared=shared)
    else:
        raise ValueError(f"unknown coupling net {net!r}; choose one of {', '.join(COUPLING_NETS)}")
    cls = AdditiveCoupling if additive else AffineCoupling
    return cls(half_mask(dim, parity, mask_kind), conditioner)


# -- element-wise and structural layers ---------------------------------------------
class Permutation(Bijection):
    """Fixed permutation of the features (dimension 1): reversed, or random with a seed."""

    def __init__(self, dim: int, kind: str = "reverse", seed: int = 0):
        super().__init__()
        if kind == "reverse":
            perm = torch.arange(dim - 1, -1, -1)
        elif kind == "random":
            perm = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
        else:
            raise ValueError(f"unknown permutation {kind!r}; choose reverse or random")
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return y[:, self.inv_perm], y.new_zeros(y.shape[0])


def _needs_init(module: nn.Module) -> bool:
    """Whether a layer with data-dependent init still waits for its first batch. The
    ``initialized`` buffer travels in checkpoints; reading it costs a device sync on CUDA,
    so once it reads True the answer is remembered on the module and never read again."""
    if module._init_seen:
        return False
    if bool(module.initialized):
        module._init_seen = True
        return False
    return True


class ActNorm(Bijection):
    """Per-feature affine y = (x - loc) * exp(log_scale) (Kingma & Dhariwal 2018), with
    data-dependent init: the first forward batch comes out with zero mean, unit variance."""

    def __init__(self, num_features: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("initialized", torch.tensor(False))
        self._init_seen = False  # see _needs_init

    @torch.no_grad()
    def _init(self, x: torch.Tensor) -> None:
        feats = x.transpose(0, 1).reshape(x.shape[1], -1)  # (F, B*H*W)
        self.loc.copy_(feats.mean(1))
        self.log_scale.copy_(-torch.log(feats.std(1, unbiased=False).clamp(min=1e-6)))
        self.initialized.fill_(True)
        self._init_seen = True

    def _log_det(self, x: torch.Tensor) -> torch.Tensor:
        per_pixel = math.prod(x.shape[2:])  # 1 for vectors
        return (self.log_scale.sum() * per_pixel).expand(x.shape[0])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        if x.numel() > x.shape[1] and _needs_init(self):  # needs > 1 value per feature
            self._init(x)
        y = (x - _feature_view(self.loc, x)) * torch.exp(_feature_view(self.log_scale, x))
        return y, self._log_det(x)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        x = y * torch.exp(-_feature_view(self.log_scale, y)) + _feature_view(self.loc, y)
        return x, -self._log_det(y)


class DiagonalScaling(Bijection):
    """NICE's last layer y = x * exp(s), one learned s per dimension; log|det| = sum s.
    ``dim`` is an int (vectors) or a shape (C, H, W). With ``init_std``, the first forward
    batch sets s = log(init_std / std(x)) per dimension (data-dependent init, as ActNorm):
    near-constant pixels need s of about +7, which Adam would take thousands of steps to reach."""

    def __init__(self, dim: int | Sequence[int], init_std: float | None = None):
        super().__init__()
        shape = (dim,) if isinstance(dim, int) else tuple(dim)
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.init_std = init_std
        if init_std is not None:
            self.register_buffer("initialized", torch.tensor(False))
            self._init_seen = False  # see _needs_init

    @torch.no_grad()
    def _init(self, x: torch.Tensor) -> None:
        std = x.std(0, unbiased=False).clamp(min=1e-6)  # (dim...)
        self.log_scale.copy_(math.log(self.init_std) - torch.log(std))
        self.initialized.fill_(True)
        self._init_seen = True

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        if self.init_std is not None and len(x) > 1 and _needs_init(self):
            self._init(x)
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return y * torch.exp(-self.log_scale), -self.log_scale.sum().expand(y.shape[0])


class Squeeze(Bijection):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block becomes 4 channels (RealNVP)."""

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return F.pixel_shuffle(y, 2), y.new_zeros(y.shape[0])


class Logit(Bijection):
    """Pixels in [0, 1] -> logit(alpha + (1 - 2 alpha) x) (RealNVP's preprocessing), with
    log|det| = sum log(1 - 2 alpha) - log p - log(1 - p), p = alpha + (1 - 2 alpha) x."""

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        p = self.alpha + (1 - 2 * self.alpha) * x
        y = torch.log(p) - torch.log1p(-p)
        log_det = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return y, sum_except_batch(log_det)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        x = (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)
        log_det = -math.log(1 - 2 * self.alpha) - F.softplus(-y) - F.softplus(y)  # log s(1-s)
        return x, sum_except_batch(log_det)


class FactorOut(Bijection):
    """One scale of a multi-scale flow (RealNVP): run ``head``, factor out the second half
    of its output channels (they go straight to the latent) and run ``tail`` on the first
    half. Nesting FactorOut as the tail gives the full multi-scale architecture."""

    def __init__(self, head: Bijection, tail: Bijection):
        super().__init__()
        self.head, self.tail = head, tail

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        h, ld_head = self.head(x, context)
        keep, out = h.chunk(2, dim=1)  # (B, C/2, ...) each
        keep, ld_tail = self.tail(keep, context)
        return torch.cat([keep, out], dim=1), ld_head + ld_tail

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        keep, out = y.chunk(2, dim=1)
        keep, ld_tail = self.tail.inverse(keep, context)
        x, ld_head = self.head.inverse(torch.cat([keep, out], dim=1), context)
        return x, ld_head + ld_tail


# -- planar flow ---------------------------------------------------------------------
_LOG1P_MIN = -1 + 1e-6  # Planar's log-det argument floor (float32 resolves it)


class Planar(Bijection):
    """f(z) = z + u_hat tanh(w^T z + b) (Rezende & Mohamed 2015), with u constrained to
    u_hat = u + (m(w^T u) - w^T u) w / ||w||^2, m(a) = -1 + softplus(a), so w^T u_hat > -1
    and f is invertible (appendix A). log|det| = log(1 + h'(w^T z + b) w^T u_hat).

    Amortised use: pass ``params=(u, w, b)`` shaped (B, d), (B, d), (B, 1) to use them
    instead of the layer's own parameters. The inverse has no closed form: it solves the
    scalar equation along w by bisection (for tests and sampling, not for training).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.u = nn.Parameter(torch.randn(dim) * 0.01)
        self.w = nn.Parameter(torch.randn(dim) * 0.01)
        self.b = nn.Parameter(torch.zeros(1))

    def _constrained(self, params: Sequence[torch.Tensor] | None = None):
        """(u_hat (B|1, d), w (B|1, d), b (B|1, 1), w^T u_hat (B|1, 1))."""
        u, w, b = params if params is not None else (self.u[None], self.w[None], self.b[None])
        wu = (w * u).sum(-1, keepdim=True)  # (B, 1)
        wu_hat = F.softplus(wu) - 1  # = w^T u_hat exactly; summing w * u_hat instead can round
        u_hat = u + (wu_hat - wu) * w / (w * w).sum(-1, keepdim=True)  # below -1 (a NaN log-det)
        return u_hat, w, b, wu_hat

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None, *,
                params: Sequence[torch.Tensor] | None = None) -> Pair:
        u_hat, w, b, wu_hat = self._constrained(params)
        h = torch.tanh((w * z).sum(-1, keepdim=True) + b)  # (B, 1)
        y = z + u_hat * h  # (B, d)
        # argument >= -1, and -1 only where h = 0 and softplus underflows: clamped, not -inf
        log_det = torch.log1p(((1 - h ** 2) * wu_hat).clamp_min(_LOG1P_MIN)).squeeze(-1)  # (B,)
        return y, log_det

    @torch.no_grad()
    def _solve(self, wy: torch.Tensor, wu_hat: torch.Tensor, b: torch.Tensor, iters: int):
        """The a = w^T z with a + wu_hat tanh(a + b) = w^T y, increasing in a: bisection."""
        lo, hi = wy - wu_hat.abs() - 1, wy + wu_hat.abs() + 1  # |a - w^T y| <= |wu_hat|
        for _ in range(iters):
            mid = (lo + hi) / 2
            above = mid + wu_hat * torch.tanh(mid + b) > wy
            lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
        return (lo + hi) / 2

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None, *,
                params: Sequence[torch.Tensor] | None = None, iters: int = 200) -> Pair:
        u_hat, w, b, wu_hat = self._constrained(params)
        wy = (w * y).sum(-1, keepdim=True)  # (B, 1)
        a = self._solve(wy.detach(), wu_hat.detach(), b.detach(), iters)  # (B, 1), no graph
        # one Newton step at the root: same value, and autograd then gives the exact
        # implicit-function derivatives (the inverse is differentiable)
        h = torch.tanh(a + b)
        a = a - (a + wu_hat * h - wy) / (1 + wu_hat * (1 - h ** 2))
        z = y - u_hat * torch.tanh(a + b)
        _, log_det = self.forward(z, params=params)
        return z, -log_det


# -- radial flow and Glow's invertible linear map ------------------------------------
class Radial(Bijection):
    """f(z) = z + beta h(r) (z - z0), h = 1 / (alpha + r), r = ||z - z0|| (Rezende & Mohamed
    2015), with alpha = softplus(.) > 0 and beta = -alpha + softplus(.) >= -alpha so f is
    invertible (appendix A). log|det| = (d - 1) log(1 + beta h) + log(1 + beta h + beta h' r).
    The inverse is closed form: r solves the quadratic r (1 + beta / (alpha + r)) = ||y - z0||."""

    def __init__(self, dim: int):
        super().__init__()
        self.z0 = nn.Parameter(torch.randn(dim) * 0.5)
        self.alpha_raw = nn.Parameter(torch.zeros(1))
        self.beta_raw = nn.Parameter(torch.zeros(1))

    def _alpha_beta(self) -> Pair:
        alpha = F.softplus(self.alpha_raw)
        return alpha, F.softplus(self.beta_raw) - alpha

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        alpha, beta = self._alpha_beta()
        diff = z - self.z0  # (B, d)
        r = diff.norm(dim=-1, keepdim=True)  # (B, 1)
        h = 1 / (alpha + r)
        bh = beta * h
        log_det = (z.shape[-1] - 1) * torch.log1p(bh) + torch.log1p(bh - beta * h * h * r)
        return z + bh * diff, log_det.squeeze(-1)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        alpha, beta = self._alpha_beta()
        diff = y - self.z0  # (B, d)
        ry = diff.norm(dim=-1, keepdim=True)  # (B, 1)
        c = alpha + beta - ry  # r^2 + c r - alpha ry = 0, the root >= 0
        r = (-c + torch.sqrt(c * c + 4 * alpha * ry)) / 2
        z = self.z0 + diff * (r / ry.clamp_min(1e-30))
        _, log_det = self.forward(z)
        return z, -log_det


class InvertibleLinear(Bijection):
    """Glow's invertible 1x1 convolution (Kingma & Dhariwal 2018) in its LU form,
    W = P L (U + diag(sign_s exp(log_s))), over the features (dimension 1) of vectors
    (B, C) or of every pixel of images (B, C, H, W); log|det| = sum log_s per pixel.
    Starts at a random rotation, as Glow does."""

    def __init__(self, num_features: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(num_features, num_features, generator=g))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("eye", torch.eye(num_features))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> torch.Tensor:
        """W (C, C)."""
        lower = torch.tril(self.lower, -1) + self.eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def _mix(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,bj...->bi...", w, x)  # W acts on dimension 1

    def _log_det(self, x: torch.Tensor) -> torch.Tensor:
        return (self.log_s.sum() * math.prod(x.shape[2:])).expand(x.shape[0])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return self._mix(x, self.weight()), self._log_det(x)

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None) -> Pair:
        return self._mix(y, torch.linalg.inv(self.weight())), -self._log_det(y)
