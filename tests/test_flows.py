"""Every bijection in genlab.flows: exact inverse, and a log-determinant that equals
log|det| of the autograd Jacobian in both directions (float64, small dimensions)."""
from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from genlab.flows import (ActNorm, AffineCoupling, Bijection, Compose, DiagonalScaling, FactorOut,
                          Inverse, InvertibleLinear, Logit, Permutation, Planar, Squeeze,
                          channel_mask, checkerboard_mask, half_mask, vector_coupling)
from genlab.models.realnvp import ConvConditioner


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small ops, a shared CPU


def randomize(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (the zero-initialised outputs would make couplings trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def log_abs_det_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """log|det d fn(x) / dx| for one example x (1, ...) by autograd."""
    jac = jacobian(lambda t: fn(t.view_as(x)).reshape(-1), x.reshape(-1))  # (D, D)
    sign, logabs = torch.linalg.slogdet(jac)
    assert sign != 0
    return logabs


def assert_bijection(f: Bijection, x: torch.Tensor, context: torch.Tensor | None = None,
                     n_jac: int = 2) -> None:
    f = f.double()
    x = x.double()
    context = None if context is None else context.double()
    y, ld = f(x, context)
    x_back, ld_inv = f.inverse(y, context)
    assert ld.shape == ld_inv.shape == (len(x),)
    torch.testing.assert_close(x_back, x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(ld_inv, -ld, atol=1e-9, rtol=1e-9)
    for i in range(min(n_jac, len(x))):
        ctx = None if context is None else context[i:i + 1]
        fwd = log_abs_det_jacobian(lambda t: f(t, ctx)[0], x[i:i + 1])
        inv = log_abs_det_jacobian(lambda t: f.inverse(t, ctx)[0], y[i:i + 1])
        torch.testing.assert_close(ld[i], fwd, atol=1e-8, rtol=1e-8)
        torch.testing.assert_close(ld_inv[i], inv, atol=1e-8, rtol=1e-8)


def initialized_actnorm(shape: tuple[int, ...]) -> ActNorm:
    a = ActNorm(shape[0]).double()
    a(torch.randn(16, *shape, dtype=torch.double) * 3 + 1)
    return a


def image_coupling(mask: torch.Tensor, coarse: bool = False, net: str = "plain") -> AffineCoupling:
    return randomize(AffineCoupling(mask, ConvConditioner(mask.shape[1], 4, 1, coarse, net=net)), 0.2)


class AmortisedPlanar(Bijection):
    """A planar layer whose (u, w, b) come per example in the context (B, 2d + 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim, self.planar = dim, Planar(dim)

    def _params(self, context):
        u, w, b = context.split([self.dim, self.dim, 1], dim=1)
        return u, w, b

    def forward(self, x, context=None):
        return self.planar(x, params=self._params(context))

    def inverse(self, y, context=None):
        return self.planar.inverse(y, params=self._params(context))


CASES = {
    "affine-vector": lambda: (randomize(vector_coupling(6, 8, 0)), torch.randn(4, 6), None),
    "affine-context": lambda: (randomize(vector_coupling(5, (8, 8), 1, context_dim=3)),
                               torch.randn(4, 5), torch.randn(4, 3)),
    "affine-shared": lambda: (randomize(vector_coupling(6, 8, 1, shared=True)), torch.randn(4, 6), None),
    "affine-shared-context": lambda: (randomize(vector_coupling(5, (8, 8), 0, context_dim=3,
                                                                shared=True)),
                                      torch.randn(4, 5), torch.randn(4, 3)),
    "additive-alternate": lambda: (randomize(vector_coupling(6, 8, 1, additive=True,
                                                             mask_kind="alternate")),
                                   torch.randn(4, 6), None),
    "checkerboard-conv": lambda: (image_coupling(checkerboard_mask(2, 4, 4, 0)),
                                  torch.randn(3, 2, 4, 4), None),
    "checkerboard-coarse": lambda: (image_coupling(checkerboard_mask(1, 4, 4, 1), coarse=True),
                                    torch.randn(3, 1, 4, 4), None),
    "channel-conv": lambda: (image_coupling(channel_mask(4, 1)), torch.randn(3, 4, 2, 2), None),
    "gated-vector": lambda: (randomize(vector_coupling(6, (8, 8), 0, net="gated")),
                             torch.randn(4, 6), None),
    "gated-additive-context": lambda: (randomize(vector_coupling(6, (8, 8, 8), 1, context_dim=2,
                                                                 additive=True, net="gated",
                                                                 mask_kind="alternate")),
                                       torch.randn(4, 6), torch.randn(4, 2)),
    "checkerboard-gated": lambda: (image_coupling(checkerboard_mask(2, 4, 4, 1), net="gated"),
                                   torch.randn(3, 2, 4, 4), None),
    "channel-gated-coarse": lambda: (image_coupling(channel_mask(4, 0), coarse=True, net="gated"),
                                     torch.randn(3, 4, 2, 2), None),
    "conv1x1-image": lambda: (randomize(InvertibleLinear(3, seed=2), 0.5),
                              torch.randn(3, 3, 2, 2), None),
    "actnorm-vector": lambda: (initialized_actnorm((5,)), torch.randn(4, 5), None),
    "actnorm-image": lambda: (initialized_actnorm((2, 3, 3)), torch.randn(3, 2, 3, 3), None),
    "diagonal-scaling": lambda: (randomize(DiagonalScaling(5)), torch.randn(4, 5), None),
    "diagonal-scaling-image": lambda: (randomize(DiagonalScaling((1, 3, 3))),
                                       torch.randn(3, 1, 3, 3), None),
    "permutation-reverse": lambda: (Permutation(5), torch.randn(4, 5), None),
    "permutation-random": lambda: (Permutation(6, "random", seed=3), torch.randn(4, 6), None),
    "squeeze": lambda: (Squeeze(), torch.randn(3, 2, 4, 4), None),
    "unsqueeze": lambda: (Inverse(Squeeze()), torch.randn(3, 8, 2, 2), None),
    "logit": lambda: (Logit(0.05), torch.rand(3, 1, 3, 3), None),
    "logit-tiny-alpha": lambda: (Logit(1e-6), torch.rand(3, 1, 3, 3), None),
    "planar": lambda: (randomize(Planar(4), 1.0), torch.randn(4, 4), None),
    "planar-amortised": lambda: (AmortisedPlanar(3), torch.randn(4, 3), torch.randn(4, 7) * 2),
    "factor-out": lambda: (FactorOut(Compose([image_coupling(checkerboard_mask(1, 4, 4, 0)),
                                              Squeeze()]),
                                     image_coupling(channel_mask(2, 0))),
                           torch.randn(3, 1, 4, 4), None),
    "compose": lambda: (Compose([Logit(0.05), image_coupling(checkerboard_mask(1, 4, 4, 0)),
                                 initialized_actnorm((1, 4, 4)), Squeeze(),
                                 image_coupling(channel_mask(4, 1))]),
                        torch.rand(3, 1, 4, 4), None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_inverse_and_log_det_match_autograd(name):
    f, x, context = CASES[name]()
    assert_bijection(f, x, context)


def test_coupling_keeps_its_half_and_additive_preserves_volume():
    x = torch.randn(5, 6)
    f = randomize(vector_coupling(6, 8, 0))
    y, _ = f(x)
    torch.testing.assert_close(y[:, :3], x[:, :3], rtol=0, atol=0)
    assert not torch.allclose(y[:, 3:], x[:, 3:])
    _, ld = randomize(vector_coupling(6, 8, 0, additive=True))(x)
    assert torch.equal(ld, torch.zeros(5))


def test_new_couplings_start_as_identity_and_context_matters():
    x, ctx = torch.randn(4, 6), torch.randn(4, 2)
    y, ld = vector_coupling(6, 8, 0, context_dim=2)(x, ctx)
    assert torch.equal(y, x) and torch.equal(ld, torch.zeros(4))
    f = randomize(vector_coupling(6, 8, 0, context_dim=2))
    assert not torch.allclose(f(x, ctx)[0], f(x, ctx + 1)[0])


def test_shared_conditioner_is_one_net_starting_at_identity_and_keep_b_is_not_saved():
    """``shared``: one MLP whose last layer gives [raw log-scale, shift] (2d outputs), zero at
    the start; an additive coupling has no scale, so ``shared`` changes nothing there. The
    cached complement of the mask is no state: checkpoints keep the keys they had."""
    f = vector_coupling(6, 8, 0, context_dim=2, shared=True)
    assert f.net.s_net is None and f.net.t_net[-1].out_features == 12
    x, ctx = torch.randn(4, 6), torch.randn(4, 2)
    y, ld = f(x, ctx)
    assert torch.equal(y, x) and torch.equal(ld, torch.zeros(4))
    assert vector_coupling(6, 8, 0, additive=True, shared=True).net.t_net[-1].out_features == 6
    two = vector_coupling(6, 8, 0)
    assert sum(p.numel() for p in f.parameters()) < sum(p.numel() for p in two.parameters())
    assert "keep_b" not in two.state_dict() and "mask" in two.state_dict()
    torch.testing.assert_close(two.keep_b, 1 - two.mask)


def test_sum_except_batch_sums_every_dimension_but_the_first():
    from genlab.flows import sum_except_batch

    for shape in [(3, 4), (3, 2, 5), (3, 1, 2, 2), (3, 1)]:
        t = torch.randn(*shape, dtype=torch.double)
        torch.testing.assert_close(sum_except_batch(t), t.flatten(1).sum(-1))


def test_masks_and_squeeze_layout():
    m = checkerboard_mask(2, 4, 4, 0)
    assert torch.equal(m + checkerboard_mask(2, 4, 4, 1), torch.ones(1, 2, 4, 4))
    assert m[0, 0, 0, 0] == 1 and m[0, 0, 0, 1] == 0 and m[0, 0, 1, 1] == 1
    assert channel_mask(4, 0).flatten().tolist() == [1, 1, 0, 0]
    assert half_mask(4, 1).flatten().tolist() == [0, 0, 1, 1]
    assert half_mask(4, 0, "alternate").flatten().tolist() == [1, 0, 1, 0]
    x = torch.randn(2, 3, 4, 6)
    y, _ = Squeeze()(x)
    assert y.shape == (2, 12, 2, 3)
    for c, i, j in [(0, 0, 0), (1, 1, 0), (2, 1, 1)]:  # y[:, 4c + 2i + j, h, w] = x[:, c, 2h+i, 2w+j]
        torch.testing.assert_close(y[:, 4 * c + 2 * i + j], x[:, c, i::2, j::2])


def test_actnorm_data_dependent_init():
    x = torch.randn(64, 3, 5, 5) * torch.tensor([0.5, 2.0, 7.0]).view(1, 3, 1, 1) + 4
    a = ActNorm(3)
    y, _ = a(x)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    y2, _ = a(x * 2)  # initialised once: the second batch does not re-initialise
    torch.testing.assert_close(y2, 2 * y + a.loc.view(1, 3, 1, 1) * torch.exp(a.log_scale).view(1, 3, 1, 1))


def test_diagonal_scaling_data_init_matches_the_prior_scale():
    x = torch.rand(256, 6) * torch.tensor([1.0, 0.5, 0.01, 1 / 256, 0.2, 1.0])
    f = DiagonalScaling(6, init_std=1.8)
    y, ld = f(x)
    torch.testing.assert_close(y.std(0, unbiased=False), torch.full((6,), 1.8), rtol=1e-4, atol=0)
    assert f.log_scale[3] > 6  # a dequantised constant pixel gets a large scale at once
    y2, _ = f(2 * x)  # initialised once
    torch.testing.assert_close(y2, 2 * y)
    assert_bijection(f, torch.rand(3, 6))


def _violating_planar(dim: int, seed: int) -> Planar:
    """A planar layer whose raw parameters break invertibility: w^T u < -1."""
    g = torch.Generator().manual_seed(seed)
    p = Planar(dim).double()
    with torch.no_grad():
        w = torch.randn(dim, generator=g, dtype=torch.double)
        p.w.copy_(w)
        p.u.copy_(-(2 + 3 * torch.rand(1, generator=g, dtype=torch.double)) * w / w.dot(w)
                  + 0.3 * torch.randn(dim, generator=g, dtype=torch.double))
        p.b.copy_(torch.randn(1, generator=g, dtype=torch.double))
    return p


@pytest.mark.parametrize("seed", range(5))
def test_planar_constraint_keeps_it_invertible(seed):
    p = _violating_planar(3, seed)
    assert p.w.dot(p.u) < -1
    u_hat, w, b, wu_hat = p._constrained()
    assert wu_hat.item() > -1
    # monotone along w: t -> w^T f(t w / |w|^2 + r) is strictly increasing for any offset r
    t = torch.linspace(-8, 8, 2001, dtype=torch.double).unsqueeze(1)
    r = torch.randn(1, 3, dtype=torch.double)
    line = t * p.w / p.w.dot(p.w) + r
    along = (p(line)[0] * p.w).sum(-1)
    assert (along.diff() > 0).all()
    # the same map with the raw u (no constraint) folds over: not monotone, not invertible
    h = torch.tanh((line * p.w).sum(-1, keepdim=True) + p.b)
    raw = ((line + p.u * h) * p.w).sum(-1)
    assert (raw.diff() < 0).any()
    # Jacobian determinant > 0 everywhere we look, and the numerical inverse recovers z
    z = torch.randn(50, 3, dtype=torch.double) * 3
    dets = torch.stack([torch.linalg.det(jacobian(lambda v: p(v[None])[0][0], zi)) for zi in z])
    assert (dets > 0).all()
    assert_bijection(p, z, n_jac=3)


def test_planar_log_det_stays_finite_at_the_constraint_edge():
    """float32, w^T u far below -1: w^T u_hat = -1 + softplus(w^T u) is a hair above -1, and
    summing w * u_hat rounds it below -1 for some w (a NaN log-det at h = 0, seen in a
    2-D planar VAE after 25,000 steps). On the hyperplane w^T z + b = 0, h = 0 exactly."""
    g = torch.Generator().manual_seed(0)
    p = Planar(2)
    bad = 0
    with torch.no_grad():
        for _ in range(200):
            p.w.copy_(torch.randn(2, generator=g) * 3)
            p.u.copy_(-40 * p.w / p.w.dot(p.w) + torch.randn(2, generator=g) * 0.1)
            p.b.zero_()
            z = torch.stack([p.w[1], -p.w[0]])[None] * torch.randn(8, 1, generator=g)  # w^T z = 0
            y, log_det = p(z)
            bad += int((~torch.isfinite(log_det)).any())
    assert bad == 0
    u_hat, w, _, wu_hat = p._constrained()
    assert wu_hat.item() >= -1 and torch.isclose((w * u_hat).sum(), wu_hat[0, 0], atol=1e-5)


def test_planar_amortised_params_equal_own_params():
    p = randomize(Planar(4), 1.0).double()
    z = torch.randn(6, 4, dtype=torch.double)
    params = (p.u.expand(6, 4), p.w.expand(6, 4), p.b.expand(6, 1))
    y1, ld1 = p(z)
    y2, ld2 = p(z, params=params)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(ld1, ld2)


def test_planar_inverse_is_differentiable():
    p = randomize(Planar(3), 1.0).double()
    y = torch.randn(2, 3, dtype=torch.double, requires_grad=True)
    z, _ = p.inverse(y)
    (g,) = torch.autograd.grad(z.sum(), y)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_planar_inverse_gradient_is_the_inverse_jacobian():
    """The inverse is found by bisection without a graph, then one Newton step: autograd
    through that step must give the implicit-function derivative, d f^-1/dy at y equal to
    the inverse of the forward Jacobian at z = f^-1(y) (autograd, float64)."""
    p = randomize(Planar(3), 1.0).double()
    for y in torch.randn(4, 3, dtype=torch.double) * 2:
        j_inv = jacobian(lambda v: p.inverse(v[None])[0][0], y)  # (3, 3)
        z = p.inverse(y[None])[0][0].detach()
        j_fwd = jacobian(lambda v: p(v[None])[0][0], z)  # (3, 3)
        torch.testing.assert_close(j_inv, torch.linalg.inv(j_fwd), atol=1e-10, rtol=1e-10)
    # the same for the amortised parameters: d f^-1 / d(u, w, b) against finite differences
    g = torch.Generator().manual_seed(1)
    y, u, w = (torch.randn(2, 3, generator=g, dtype=torch.double, requires_grad=True) for _ in range(3))
    b = torch.randn(2, 1, generator=g, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: p.inverse(a[0], params=a[1:])[0], (y, u, w, b))


@pytest.mark.parametrize("make", [
    lambda: (vector_coupling(6, (8, 8), 0, context_dim=2, net="gated"), torch.randn(4, 6)),
    lambda: (vector_coupling(6, (8, 8), 1, context_dim=2, net="gated", additive=True),
             torch.randn(4, 6)),
    lambda: (AffineCoupling(checkerboard_mask(2, 4, 4, 0), ConvConditioner(2, 4, 2, net="gated")),
             torch.randn(3, 2, 4, 4)),
    lambda: (AffineCoupling(channel_mask(4, 1), ConvConditioner(4, 4, 1, coarse=True, net="gated")),
             torch.randn(3, 4, 2, 2)),
], ids=["vector", "additive", "checkerboard", "channel-coarse"])
def test_gated_couplings_start_as_the_identity_and_train_away_from_it(make):
    """The gated net's last layer starts at zero: y = x and log|det| = 0 exactly; one
    gradient step on a loss with a gradient moves it (the zero layer gets a gradient)."""
    f, x = make()
    ctx = torch.randn(len(x), 2) if x.dim() == 2 else None
    y, ld = f(x, ctx)
    assert torch.equal(y, x) and torch.equal(ld, torch.zeros(len(x)))
    opt = torch.optim.SGD(f.parameters(), lr=0.1)
    (f(x, ctx)[0] * torch.randn_like(x)).sum().backward()  # a loss whose gradient is not 0
    opt.step()
    assert not torch.allclose(f(x, ctx)[0], x)


def test_gated_nets_normalise_each_pixel_and_want_equal_widths():
    from genlab.nn import ChannelNorm, gated_net

    norm = ChannelNorm(5)
    x = torch.randn(3, 5, 4, 4) * 3 + 2
    y = norm(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(3, 4, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(3, 4, 4), atol=1e-3, rtol=0)
    net = gated_net(3, 8, 6, blocks=2)  # conv in, 2 x (gated block, norm), ConcatELU, conv out
    assert [type(m).__name__ for m in net] == ["Conv2d", "GatedResBlock", "ChannelNorm",
                                               "GatedResBlock", "ChannelNorm", "ConcatELU", "Conv2d"]
    assert net[-1].in_channels == 16 and not net[-1].weight.any()
    with pytest.raises(ValueError, match="equal hidden widths .*got 16,8"):
        vector_coupling(6, (16, 8), 0, net="gated")
    with pytest.raises(ValueError, match="unknown coupling net 'resnet'; choose one of plain, gated"):
        vector_coupling(6, 8, 0, net="resnet")
