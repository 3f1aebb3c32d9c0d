"""The lab's targets and quadrature: every density integrates to 1 on its grid, the
mixtures' exact densities already do before normalising (their mass is inside the box),
an energy's normaliser agrees with scipy's adaptive quadrature, the exact KL of a model
against itself is 0 and against a shifted Gaussian matches the closed form, and the lab's
new bijections (Radial, InvertibleLinear) invert exactly with autograd's log-determinant."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.flows import InvertibleLinear, Radial
from genlab.lab.quadrature import entropy, exact_figures, log_normaliser
from genlab.lab.targets import (ENERGIES, TOY, Grid, MixtureTarget, get_target, grid_density,
                                image_target, text_target)
from test_flows import assert_bijection, randomize

pytestmark = pytest.mark.usefixtures("one_thread")
GRID = Grid(96)


@pytest.mark.parametrize("name", TOY + ENERGIES)
def test_every_target_integrates_to_one_on_its_grid(name):
    t = get_target(name)
    p = grid_density(t, GRID)
    assert p.shape == (GRID.n ** 2,) and (p >= 0).all()
    assert p.sum() * GRID.cell_area == pytest.approx(1.0, abs=1e-9)
    x = t.sample(2000, torch.Generator().manual_seed(0))
    assert x.shape == (2000, 2) and torch.isfinite(x).all()
    # the samples follow the density: the fraction in the right half-plane matches its mass
    right = (GRID.points()[:, 0] > 0).numpy()
    mass_right = p[right].sum() * GRID.cell_area
    assert (x[:, 0] > 0).float().mean().item() == pytest.approx(mass_right, abs=0.05)


@pytest.mark.parametrize("name", ["moons", "rings", "8gaussians", "pinwheel", "spirals"])
def test_the_mixtures_are_normalised_before_the_grid_normalises_them(name):
    """Their log_density is normalised on the plane: the raw quadrature is already 1."""
    t = get_target(name)
    assert math.exp(log_normaliser(t, Grid(128))) == pytest.approx(1.0, abs=1e-3)


def test_an_energy_normaliser_matches_adaptive_quadrature():
    scipy_integrate = pytest.importorskip("scipy.integrate")
    t = get_target("u1")

    def f(y, x):
        z = torch.tensor([[x, y]], dtype=torch.float64)
        return math.exp(float(t.log_density(z)))

    z_ref, _ = scipy_integrate.dblquad(f, -4, 4, -4, 4, epsabs=1e-6)
    assert math.exp(log_normaliser(t, Grid(128))) == pytest.approx(z_ref, rel=2e-3)


def test_kl_of_a_model_against_itself_is_zero_and_a_shift_matches_the_closed_form():
    sigma, shift = 0.7, torch.tensor([0.5, -0.3], dtype=torch.float64)
    target = MixtureTarget("g", "Gaussian", np.zeros((1, 2)), np.ones(1), sigma)
    pts = GRID.points().double()
    same = target.log_density(pts).numpy()
    figs = exact_figures(target, same, GRID)
    assert figs.kl == pytest.approx(0.0, abs=1e-3)
    assert figs.entropy == pytest.approx(1 + math.log(2 * math.pi * sigma ** 2), abs=2e-3)
    moved = target.log_density(pts - shift).numpy()  # N(shift, sigma^2 I)
    closed = float((shift ** 2).sum()) / (2 * sigma ** 2)
    assert exact_figures(target, moved, GRID).kl == pytest.approx(closed, rel=1e-2)


def test_words_and_pictures_become_densities():
    t = text_target("Hi", GRID)
    p = grid_density(t, GRID)
    assert p.sum() * GRID.cell_area == pytest.approx(1.0)
    assert (p == 0).mean() > 0.5  # most of the box carries no ink
    assert entropy(p, GRID) < entropy(np.full_like(p, 1 / 64), GRID)  # less than uniform
    x = t.sample(500, torch.Generator().manual_seed(0))
    assert (t.log_density(x) > math.log(1e-3) + 0.5).float().mean() > 0.95  # drawn on the ink
    with pytest.raises(ValueError, match="1 to 12 characters"):
        text_target("a" * 13, GRID)
    with pytest.raises(ValueError, match="not a readable image"):
        image_target(b"not a png", GRID)


def test_unknown_target_is_one_line():
    with pytest.raises(ValueError, match="unknown target 'nope'; choose one of moons"):
        get_target("nope")


def test_radial_and_invertible_linear_are_bijections():
    for seed in range(3):
        f = randomize(Radial(2), 0.8, seed)
        assert_bijection(f, torch.randn(8, 2, generator=torch.Generator().manual_seed(seed)) * 2)
    lin = InvertibleLinear(3, seed=1)
    with torch.no_grad():
        lin.log_s.add_(0.3)
    assert_bijection(lin, torch.randn(6, 3))
    assert_bijection(InvertibleLinear(2), torch.randn(4, 2, 3, 3), n_jac=1)  # a 1x1 conv on images
