"""Every lab family learns two moons in a few hundred steps, each by its own yardstick: the
flows and the mixture by the exact KL(target || model) on the grid, the reverse-KL flows by
their KL(model || target), the VAE by its ELBO, the GAN by how likely its samples are under
the target; and the stepper, the page's state and the URL behave."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.lab.families import FAMILIES, Options, make_family
from genlab.lab.state import LabState, from_query, to_query
from genlab.lab.targets import Grid, get_target
from genlab.lab.train import Experiment

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = Options(couplings=4, k=8, hidden=64, components=8, anneal=0)  # beta = 1 from the start:
# the default annealing would still be fitting p^0.3 at step 300
GRID = Grid(64)


def _mean(rows, key, sl):
    return float(np.mean([r[key] for r in rows[sl]]))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_lowers_its_loss_on_two_moons(name):
    moons = get_target("moons")
    lr = 1e-3 if name == "gan" else 3e-3  # the GAN's game is unstable at 3e-3
    ex = Experiment.start(moons, name, SMALL, lr=lr, seed=0, grid=GRID)
    fam = ex.family
    first = ex.figures()
    before = moons.log_density(fam.sample(2000)).median().item()  # robust to a few far samples
    ex.advance(300, batch=128)
    after = moons.log_density(fam.sample(2000)).median().item()
    h = ex.history
    assert len(h) == 300 and h[-1]["step"] == 300
    if fam.density == "exact" and fam.fits_by == "samples":  # flows and the mixture: the exact KL
        # falls by half or more (reverse KL seeks modes: the forward KL need not fall)
        last = ex.figures()
        assert last.kl < 0.5 * first.kl and last.kl < 1.0, (first.kl, last.kl)
    headline = fam.headline
    sign = -1 if headline == "elbo" else 1  # the ELBO rises; every other headline falls
    if headline != "d_loss":
        assert sign * _mean(h, headline, slice(-30, None)) < sign * _mean(h, headline, slice(0, 10)) - 0.2
    assert after > before + 0.5, (before, after)  # its samples move onto the moons (GAN included)


def test_a_flows_density_is_normalised_and_matches_its_samples():
    ex = Experiment.start(get_target("moons"), "realnvp", SMALL, lr=3e-3, grid=Grid(128))
    ex.advance(100, batch=128)  # drawn in from N(0, I), whose tails leave the box
    q = np.exp(ex.log_q())
    assert q.sum() * ex.grid.cell_area == pytest.approx(1.0, abs=0.03)  # the box holds its mass
    x = ex.family.sample(4000)
    right = (ex.grid.points()[:, 0] > 0).numpy()
    assert (x[:, 0] > 0).float().mean().item() == pytest.approx(q[right].sum() * ex.grid.cell_area, abs=0.04)


def test_planar_density_by_its_inverse_matches_its_samples():
    ex = Experiment.start(get_target("u1"), "planar", SMALL, lr=1e-2, grid=Grid(64))
    ex.advance(200, batch=128)
    q = np.exp(ex.log_q())
    assert q.sum() * ex.grid.cell_area == pytest.approx(1.0, abs=0.03)
    x = ex.family.sample(4000)  # the fraction of samples in the right half-plane = its mass there
    right = (ex.grid.points()[:, 0] > 0).numpy()
    assert (x[:, 0] > 0).float().mean().item() == pytest.approx(q[right].sum() * ex.grid.cell_area, abs=0.04)


def test_the_learning_rate_and_batch_change_while_it_trains():
    ex = Experiment.start(get_target("moons"), "vae", SMALL, lr=1e-3, grid=GRID)
    ex.advance(2, batch=16)
    ex.advance(1, batch=64, lr=5e-3)
    assert [g["lr"] for o in ex.family.optimizers for g in o.param_groups] == [5e-3]
    assert ex.steps == 3
    with pytest.raises(ValueError, match="unknown family 'nope'; choose one of realnvp"):
        make_family("nope", get_target("moons"), SMALL, lr=1e-3)


def test_same_seed_same_run():
    runs = []
    for _ in range(2):
        ex = Experiment.start(get_target("moons"), "gan", SMALL, lr=1e-3, seed=3, grid=GRID)
        ex.advance(5, batch=32)
        runs.append([r["d_loss"] for r in ex.history])
    assert runs[0] == runs[1]


def test_the_url_round_trips_the_state():
    state = LabState(target="text", text="Hi there", families=("glow", "planar", "gmm"), lr=0.0025,
                     batch=512, couplings=3, k=2, hidden=16, latent=1, components=5, anneal=100,
                     seed=7, play=True, slow=True)
    query = to_query(state)
    assert all(isinstance(v, str) for v in query.values())
    assert from_query(query) == (state, [])
    assert from_query({}) == (LabState(), [])


@pytest.mark.parametrize("key,value,allowed", [
    ("lr", "10", "a number from 1e-05 to 0.1"), ("lr", "nan", "a number"),
    ("batch", "0", "a whole number from 8 to 4096"), ("families", "realnvp,realnvp", "different names"),
    ("families", "flowz", "comma-separated, of realnvp"), ("target", "image", "one of moons"),
    ("latent", "3", "from 1 to 2"), ("play", "yes", "0 or 1"), ("text", "", "1 to 12 characters"),
])
def test_a_bad_url_parameter_is_one_line_and_falls_back(key, value, allowed):
    state, problems = from_query({key: value, "seed": "4"})
    assert getattr(state, key) == getattr(LabState(), key) and state.seed == 4
    assert len(problems) == 1 and allowed in problems[0] and "\n" not in problems[0]
    assert problems[0].startswith(f"URL parameter {key}=")


def test_an_unknown_url_parameter_is_named():
    state, problems = from_query({"colour": "red"})
    assert state == LabState() and problems == [problems[0]] and "'colour'" in problems[0]


def test_reverse_kl_is_the_loss_plus_log_z():
    ex = Experiment.start(get_target("u2"), "radial", SMALL, lr=1e-2, grid=GRID)
    ex.advance(1, batch=64)
    assert ex.family.log_z == pytest.approx(math.log(math.exp(ex.family.log_z)))
    assert ex.history[0]["reverse_kl"] == pytest.approx(ex.history[0]["loss"] + ex.family.log_z)
    assert ex.history[0]["reverse_kl"] > 0


# -- issue 29: the fits themselves -------------------------------------------------------------
def _modes_covered(x, target, share: float = 0.25) -> int:
    """How many of a mixture's components have, within 3 sd, at least ``share`` of their
    fair share (1/M) of the samples x (n, 2)."""
    near = torch.cdist(x.double(), target.means) < 3 * target.std  # (n, M)
    return int((near.double().mean(0) >= share / len(target.means)).sum())


def test_a_new_planar_flow_is_the_identity():
    # genlab.flows.Planar's own init (u, w ~ N(0, 0.01^2)) makes each layer shrink the plane
    # by 0.69 along w: 32 of them started q with a standard deviation of 0.004
    fam = make_family("planar", get_target("u1"), Options(k=32), lr=1e-2)
    z = torch.randn(500, 2)
    x, log_det = fam.flow(z)
    assert (x - z).abs().max().item() < 0.2 and log_det.abs().max().item() < 0.1  # a little noise on u


def test_the_planar_inverse_by_newton_matches_bisection():
    fam = make_family("planar", get_target("u1"), Options(k=8), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # bent layers: w^T u_hat from near -1 to several
        for layer in fam.flow.layers:
            for p in (layer.u, layer.w, layer.b):
                p.copy_(torch.randn(p.shape, generator=g))
    y = Grid(48).points()
    with torch.no_grad():
        for layer in fam.flow.layers:
            z, log_det = fam._invert(layer, y)
            z_ref, log_det_ref = layer.inverse(y, iters=200)
            assert (z - z_ref).abs().max().item() < 1e-3
            assert (log_det - log_det_ref).abs().max().item() < 1e-3
            assert (layer(z)[0] - y).abs().max().item() < 1e-3


def test_32_planar_layers_fit_u1_in_a_few_hundred_steps():
    ex = Experiment.start(get_target("u1"), "planar", Options(k=32), lr=1e-2, grid=GRID)
    ex.advance(600, batch=256)
    assert ex.figures().kl < 0.3, ex.figures().kl  # the old init and no wall: KL 16.3


def test_planar_flows_keep_u2s_unbounded_band_inside_the_box():
    # U2 does not decay along z1: without the wall the samples spread out of the box along the
    # band, leaving a fifth of q's mass inside it after 1,000 steps (KL 76 nats); KL 1.06 here
    ex = Experiment.start(get_target("u2"), "planar", Options(k=32), lr=1e-2, grid=GRID)
    ex.advance(600, batch=256)
    q = np.exp(ex.log_q())
    assert q.sum() * ex.grid.cell_area > 0.95
    assert ex.figures().kl < 0.6, ex.figures().kl


def test_a_gan_covers_the_8_gaussians():
    target = get_target("8gaussians")
    ex = Experiment.start(target, "gan", Options(), lr=1e-3, seed=0, grid=GRID)
    ex.advance(300, batch=256)
    x = ex.family.sample(2000, torch.Generator().manual_seed(5))
    assert _modes_covered(x, target) >= 7  # one D step a G step: 1 to 3 of the 8


def test_a_gan_covers_both_moons():
    moons = get_target("moons")  # 120 Gaussians along each moon
    ex = Experiment.start(moons, "gan", Options(), lr=1e-3, seed=0, grid=GRID)
    ex.advance(300, batch=256)
    x = ex.family.sample(2000, torch.Generator().manual_seed(5))
    hit = (torch.cdist(x.double(), moons.means) < 2 * moons.std).any(0).double()  # nodes reached
    assert hit[:120].mean().item() > 0.8 and hit[120:].mean().item() > 0.8


def test_nice_leaves_the_saddle_on_a_symmetric_target():
    # started at the identity, an additive coupling's gradient is zero on 8 Gaussians: NICE
    # only learned its scale, one Gaussian blob (KL 1.43)
    ex = Experiment.start(get_target("8gaussians"), "nice", Options(couplings=6), lr=3e-3, grid=GRID)
    ex.advance(600, batch=256)
    assert ex.figures().kl < 1.0, ex.figures().kl


@pytest.mark.parametrize("name,most", [("planar", 0.4), ("radial", 1.5)])
def test_reverse_kl_flows_find_both_moons(name, most):
    # reverse KL seeks modes: from the old planar init (q a dot) 16 layers fell onto one moon
    # (KL 16.5); without annealing or the wall, 32 radial layers were at KL 4.2 here
    moons = get_target("moons")
    ex = Experiment.start(moons, name, Options(k=32), lr=1e-2, grid=GRID)
    ex.advance(400, batch=256)
    x = ex.family.sample(2000, torch.Generator().manual_seed(5))
    nearest = torch.cdist(x.double(), moons.means).argmin(1)
    outer = (nearest < 120).double().mean().item()  # the share on the outer moon
    assert 0.3 < outer < 0.7, outer
    assert ex.figures().kl < most, ex.figures().kl
