"""genlab.explore: grids through the inverse normal CDF against scipy, interpolation
geometry (slerp on the great circle, the path equidistant in the normal CDF), projections, mixtures and
their ellipses against the Mahalanobis distance, GIF frames read back with Pillow, and
the latent scale of real (untrained) models of every kind."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import norm

from genlab import explore
from genlab.models import build_model


def std_ref(d: int) -> explore.LatentRef:
    c, s = torch.zeros(d), torch.ones(d)
    return explore.LatentRef(c, s, c - 3, c + 3, standard=True, bounded=False)


# -- grids -------------------------------------------------------------------------------
def test_normal_grid_is_the_inverse_cdf_of_cell_midpoints():
    n = 5
    g = explore.normal_grid(n).numpy()  # (25, 2)
    q = norm.ppf((np.arange(n) + 0.5) / n)
    assert g.shape == (n * n, 2)
    np.testing.assert_allclose(g[:n, 0], q, atol=1e-5)  # x along the top row
    np.testing.assert_allclose(g[::n, 1], q[::-1], atol=1e-5)  # y falls row by row
    np.testing.assert_allclose(g[n * 2 + 2], [0.0, 0.0], atol=1e-6)  # centre cell, odd n
    u = norm.cdf(g)  # back on the unit square: a uniform grid
    np.testing.assert_allclose(np.sort(np.unique(u[:, 0].round(6))), (np.arange(n) + 0.5) / n, atol=1e-5)


def test_manifold_latents_kingma_welling_and_around_a_code():
    z = explore.manifold_latents(std_ref(2), (0, 1), 4)
    torch.testing.assert_close(z, explore.normal_grid(4))
    ref = explore.LatentRef(torch.zeros(5), torch.tensor([1.0, 2, 3, 4, 5]), -torch.ones(5),
                            torch.ones(5), standard=False, bounded=False)
    base = torch.arange(5.0)
    z = explore.manifold_latents(ref, (3, 1), 3, base)  # (9, 5)
    assert z.shape == (9, 5)
    torch.testing.assert_close(z[:, [0, 2, 4]], base[[0, 2, 4]].expand(9, 3))
    g = explore.normal_grid(3)
    torch.testing.assert_close(z[:, 3], base[3] + 4 * g[:, 0])
    torch.testing.assert_close(z[:, 1], base[1] + 2 * g[:, 1])


def test_bounded_latents_get_a_uniform_grid_and_traversal():
    ref = explore.LatentRef(torch.full((3,), 0.5), torch.full((3,), 0.5), torch.zeros(3),
                            torch.ones(3), standard=False, bounded=True)
    z = explore.manifold_latents(ref, (0, 2), 4)
    assert set(z[:, 0].tolist()) == {0.125, 0.375, 0.625, 0.875}
    assert (z[:, 1] == 0.5).all()
    t = explore.traversal_latents(ref, torch.full((3,), 0.5), [1], 5)
    torch.testing.assert_close(t[:, 1], torch.linspace(0, 1, 5))


def test_traversal_varies_one_dimension_per_row():
    ref, base = std_ref(4), torch.tensor([0.5, -1.0, 2.0, 0.0])
    z = explore.traversal_latents(ref, base, [2, 0], steps=5, span=2.0).view(2, 5, 4)
    torch.testing.assert_close(z[0, :, 2], 2.0 + torch.linspace(-2, 2, 5))
    torch.testing.assert_close(z[0][:, [0, 1, 3]], base[[0, 1, 3]].expand(5, 3))
    torch.testing.assert_close(z[1, :, 0], 0.5 + torch.linspace(-2, 2, 5))
    assert explore.variance_order(np.array([[0, 0, 0], [1, 10, 3], [2, -10, 0]])) == [1, 2, 0]


# -- interpolation ------------------------------------------------------------------------
def test_slerp_endpoints_norms_and_equal_angles():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    z1 = z1 * z0.norm() / z1.norm()  # equal norms: the path stays on that sphere
    path = explore.slerp(z0, z1, torch.linspace(0, 1, 9))
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(path.norm(dim=1), z0.norm().expand(9))
    angles = torch.arccos((path @ z0 / path.norm(dim=1) / z0.norm()).clamp(-1, 1))
    torch.testing.assert_close(angles.diff(), angles[-1].expand(8) / 8)  # uniform speed
    lin = explore.lerp(z0, z1, torch.linspace(0, 1, 9))
    assert (lin.norm(dim=1)[1:-1] < path.norm(dim=1)[1:-1]).all()  # the chord dips inside
    parallel = explore.slerp(z0, 2 * z0, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(parallel[1], 1.5 * z0)  # falls back to linear


def test_cdf_interpolation_matches_scipy():
    z0, z1 = torch.tensor([-2.0, 0.0, 1.5]), torch.tensor([1.0, 0.5, -3.0])
    path = explore.interpolate(z0, z1, 6, "normal-cdf")
    t = np.linspace(0, 1, 6)[:, None]
    want = norm.ppf((1 - t) * norm.cdf(z0.numpy()) + t * norm.cdf(z1.numpy()))
    np.testing.assert_allclose(path.numpy(), want, atol=1e-5)
    torch.testing.assert_close(path[[0, -1]], torch.stack([z0, z1]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown interpolation"):
        explore.interpolate(z0, z1, 3, "cubic")


# -- projections and mixtures -----------------------------------------------------------------
def test_projections_shapes_and_pca_properties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)) * np.array([5.0, 3.0, 1, 1, 1, 1])
    assert explore.project(x[:, :1]).shape == (120, 2)
    np.testing.assert_allclose(explore.project(x[:, :2]), x[:, :2], rtol=1e-6)  # 2-D: as is
    p = explore.project(x, "pca")
    assert p.shape == (120, 2)
    cov = np.cov(p.T)
    assert abs(cov[0, 1]) < 1e-3 * cov[0, 0] and cov[0, 0] >= cov[1, 1]  # decorrelated, ordered
    mean, comps = explore.pca_basis(x)
    np.testing.assert_allclose(np.abs((x - mean) @ comps.T), np.abs(p), rtol=1e-4, atol=1e-4)
    u = explore.project(x[:60], "umap")
    assert u.shape == (60, 2) and np.isfinite(u).all()


def test_ellipse_lies_at_mahalanobis_distance_two():
    mean, cov = np.array([1.0, -2.0]), np.array([[4.0, 1.5], [1.5, 1.0]])
    pts = explore.ellipse(mean, cov, n_std=2.0)
    d = pts - mean
    maha = np.sqrt(np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d))
    np.testing.assert_allclose(maha, 2.0, rtol=1e-9)
    np.testing.assert_allclose(pts[0], pts[-1])  # closed


def test_fit_mixture_recovers_separated_clusters_and_projects_exactly():
    rng = np.random.default_rng(1)
    centres = np.array([[-6.0, 0, 0], [6.0, 0, 0]])
    x = np.concatenate([rng.normal(size=(300, 3)) + centres[0], rng.normal(size=(100, 3)) + centres[1]])
    mix = explore.fit_mixture(x, 2, seed=0)
    order = np.argsort(mix.means[:, 0])
    np.testing.assert_allclose(mix.means[order], centres, atol=0.3)
    np.testing.assert_allclose(mix.weights[order], [0.75, 0.25], atol=1e-6)
    p = np.array([[1.0, 0, 0], [0, 0, 1.0]])  # keep dims 0 and 2
    flat = mix.project(np.zeros(3), p)
    np.testing.assert_allclose(flat.covariances, mix.covariances[:, [0, 2]][:, :, [0, 2]])
    z = explore.component_latents(mix, int(order[1]), 20000, seed=0).double().numpy()
    np.testing.assert_allclose(z.mean(0), mix.means[order[1]], atol=0.05)
    np.testing.assert_allclose(np.cov(z.T), mix.covariances[order[1]], atol=0.06)


def test_model_mixture_reads_the_ae_gmm_buffers():
    model = build_model("ae-gmm", {"latent_dim": 2, "hidden": [16], "n_components": 3})
    codes = torch.randn(200, 2) * torch.tensor([3.0, 1.0])
    model.refit_gmm(codes, 3)
    mix = explore.model_mixture(model)
    cov = model.gmm.components().covariance_matrix.double().numpy()
    np.testing.assert_allclose(mix.covariances, cov, rtol=1e-5)
    np.testing.assert_allclose(mix.weights.sum(), 1.0)
    assert explore.model_mixture(build_model("vae", {"latent_dim": 2})) is None


# -- images -----------------------------------------------------------------------------------
def test_grid_image_repeats_pixels():
    x = torch.zeros(2, 1, 2, 2)
    x[0, 0, 0, 0] = 1.0
    g = explore.grid_image(x, 2, scale=3, padding=0)  # (6, 12, 3)
    assert g.shape == (6, 12, 3) and g.dtype == np.uint8
    assert (g[:3, :3] == 255).all() and (g[3:, :3] == 0).all() and (g[:, 6:] == 0).all()


def test_gif_frames_read_back():
    frames = torch.linspace(0, 1, 4).view(4, 1, 1, 1).expand(4, 1, 3, 5)  # grey levels
    data = explore.gif_bytes(frames, scale=2, boomerang=True)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "GIF" and im.size == (10, 6) and im.info.get("loop") == 0
        assert im.n_frames == 4 + 2  # 0 1 2 3 2 1
        levels = []
        for i in range(im.n_frames):
            im.seek(i)
            levels.append(int(np.asarray(im.convert("L"))[0, 0]))
    assert levels == [0, 85, 170, 255, 170, 85]
    with Image.open(io.BytesIO(explore.gif_bytes(frames, boomerang=False))) as im:
        assert im.n_frames == 4


# -- real models ---------------------------------------------------------------------------
SMALL = {"vae": {"latent_dim": 3, "hidden": [16]}, "gan": {"latent_dim": 4, "hidden": [16, 16]},
         "binary-vae": {"latent_dim": 5, "hidden": [16]},
         "ae-gmm": {"latent_dim": 2, "hidden": [16], "n_components": 2},
         "nice": {"couplings": 2, "hidden": [16], "prior": "logistic"},
         "realnvp": {"scales": 1, "couplings": 1, "width": 8}}


@pytest.mark.parametrize("name,standard,bounded", [
    ("vae", True, False), ("gan", True, False), ("realnvp", True, False),
    ("nice", False, False), ("binary-vae", False, True), ("ae-gmm", False, False)])
def test_latent_reference_of_each_kind(name, standard, bounded):
    model = build_model(name, SMALL[name]).eval()
    before = torch.random.get_rng_state()
    a, b = explore.prior_latents(model, 8, seed=3), explore.prior_latents(model, 8, seed=3)
    assert torch.equal(a, b) and torch.equal(torch.random.get_rng_state(), before)
    ref = explore.latent_reference(model, n=512)
    assert (ref.standard, ref.bounded) == (standard, bounded) and ref.dim == a.shape[1]
    assert (ref.lo < ref.hi).all()
    if standard:
        assert torch.equal(ref.center, torch.zeros(ref.dim)) and torch.equal(ref.scale, torch.ones(ref.dim))
    assert model.caps.decode and explore.has_prior(model)
    assert model.caps.encode == (name != "gan")
    assert model.caps.bijective == (name in ("nice", "realnvp"))


def test_a_flow_encodes_and_decodes_test_images_exactly():
    model = build_model("realnvp", SMALL["realnvp"]).eval()
    x = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    z = explore.encode_images(model, x, batch_size=4)  # two batches
    assert z.shape == (6, 784)
    back = explore.decode_latents(model, z)
    torch.testing.assert_close(back, explore.model_inputs(model, x), atol=1e-4, rtol=0)
    torch.testing.assert_close(explore.encode_images(model, x), z)  # seeded dequantisation
