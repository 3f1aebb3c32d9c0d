"""The projections stored beside the shipped checkpoints (issue 13, items 2 and 3): every
shipped run with an encoder carries its own (same checkpoint digest, PCA of 10,000 codes,
UMAP where the latent has more than 2 dimensions), they load without pickle, and a
flow's principal directions move its images where one pixel-dimension does not."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.evaluation import explore
from genlab.models import MODELS
from genlab.runs import store
from runs_fixture import REPO

SHIPPED = REPO / "checkpoints"
ENCODERS = sorted(p for p in SHIPPED.glob("*/config.json")  # every family but the GANs
                  if MODELS[store.read_config_dict(p.parent)["model"]][0].caps.encode)


@pytest.mark.parametrize("config", ENCODERS, ids=lambda p: p.parent.name)
def test_each_shipped_run_carries_its_projections(config):
    run = config.parent
    proj = explore.load_projections(run, explore.checkpoint_digest(run / store.CHECKPOINT))
    assert proj is not None, f"{run.name}: no projections.npz for this checkpoint"
    d = len(proj.variance)
    assert proj.n == explore.PROJ_N and set(proj.xy) == ({"pca", "umap"} if d > 2 else {"pca"})
    for xy in proj.xy.values():
        assert xy.shape == (proj.n, 2) and np.isfinite(xy).all()
    assert proj.axes.directions.shape == (min(explore.PROJ_AXES, d), d)
    gram = proj.axes.directions.double() @ proj.axes.directions.double().T
    assert torch.allclose(gram, torch.eye(len(gram), dtype=torch.float64), atol=2e-3)  # float16 rows
    assert (proj.axes.sd[:-1] >= proj.axes.sd[1:] - 1e-6).all()  # the widest first


def test_a_stale_projection_is_not_used(tmp_path):
    codes = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    explore.save_projections(tmp_path, explore.compute_projections(codes), "abc")
    assert explore.load_projections(tmp_path, "abc").n == 50
    assert explore.load_projections(tmp_path, "another checkpoint") is None
    (tmp_path / explore.PROJ_FILE).write_bytes(b"not an npz")
    assert explore.load_projections(tmp_path, "abc") is None


def test_principal_axes_place_and_coords_invert():
    codes = torch.randn(200, 6, dtype=torch.float64) * torch.arange(1, 7)
    axes = explore.principal_axes(codes, 3)
    base = codes[0].float()
    c = torch.tensor([1.5, -2.0, 0.5])
    z = axes.place(base, c)
    assert torch.allclose(axes.coords(z), c, atol=1e-4)
    rest = lambda v: v - (v - axes.mean) @ axes.directions.T @ axes.directions  # noqa: E731
    assert torch.allclose(rest(z), rest(base), atol=1e-4)  # the orthogonal part is kept


def test_a_flows_principal_direction_moves_the_image_a_pixel_dimension_does_not(data_root):
    """nice-mnist, the issue's case: the first coordinate from its slider's minimum to its
    maximum changes the decoded image by a few grey levels; PC 1 from -3 to +3 standard
    deviations changes it by far more (20 times, and 40 grey levels at least)."""
    from genlab.evaluation.images import test_images

    run = SHIPPED / "nice-mnist"
    model, _, _ = store.load_model(run)
    proj = explore.load_projections(run, explore.checkpoint_digest(run / store.CHECKPOINT))
    base = explore.encode_images(model, test_images("mnist", 1, data_root).x)[0]
    ref = explore.latent_reference(model)
    z = base.repeat(2, 1)
    z[0, 0], z[1, 0] = ref.lo[0], ref.hi[0]
    pixel = (explore.decode_latents(model, z)[0] - explore.decode_latents(model, z)[1]).abs().max()
    c = proj.axes.coords(base).repeat(2, 1)
    c[0, 0], c[1, 0] = -3.0, 3.0
    images = explore.decode_latents(model, proj.axes.place(base, c))
    pc = (images[0] - images[1]).abs()
    assert pixel < 8 / 255, float(pixel)
    # the shipped run moves by 0.21 at most (54 grey levels), 35 times the pixel dimension's 0.006
    assert pc.max() > max(0.15, 20 * pixel) and (pc > 0.1).float().mean() > 0.02, \
        (float(pixel), float(pc.max()), float((pc > 0.1).float().mean()))
