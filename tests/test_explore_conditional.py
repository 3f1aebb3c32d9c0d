"""The Latent explorer's computations for class-conditional models (issue 28, views):
the grid of one row per class and the CVAE's analogy (genlab.evaluation.explore), on tiny
models with random weights (zero-initialised last layers would make every class alike)."""
from __future__ import annotations

import pytest
import torch

from genlab.evaluation import explore
from genlab.models import FAMILIES, build_model

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 8, 8)
K = 10


def model_of(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(name, {"image_shape": SHAPE, **FAMILIES[name].tiny}).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():  # every weight random, the class tables included
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8)
    return x, torch.arange(n) % K


@pytest.mark.parametrize("name", ["cvae", "realnvp-cond", "nice-cond", "cgan"])
def test_class_grid_rows_are_the_classes_drawn_with_the_same_random_numbers(name):
    model = model_of(name)
    n, t = 4, 0.7
    grid = explore.class_grid(model, n, t, seed=3)
    assert grid.shape == (K * n, *SHAPE) and grid.dtype == torch.float32
    assert 0 <= grid.min() and grid.max() <= 1
    rows = grid.view(K, n, *SHAPE)
    for c in range(K):  # row c: class c's draws at this seed
        assert torch.equal(rows[c], model.seeded_sample(n, t, seed=3, y=c).clamp(0, 1))
    # the label changes the images: no two rows alike
    assert all(not torch.allclose(rows[a], rows[b]) for a in range(K) for b in range(a))
    assert torch.equal(explore.class_grid(model, n, t, seed=3), grid)  # seeded
    assert not torch.equal(explore.class_grid(model, n, t, seed=4), grid)


def test_a_cvae_grid_keeps_one_latent_down_each_column():
    """Every row decodes the same n prior latents at T, each with its own class."""
    model = model_of("cvae")
    n, t = 5, 0.5
    grid = explore.class_grid(model, n, t, seed=7).view(K, n, *SHAPE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        z = model.sample_prior(n, t)
    assert torch.allclose(z.std(), torch.tensor(t), atol=0.35)  # the tempered prior
    for c in (0, 4, 9):
        assert torch.allclose(grid[c], model.decode(z, y=c).clamp(0, 1))


def test_the_analogy_decodes_each_code_with_every_label():
    model = model_of("cvae")
    x, y = images(8)
    out = explore.analogy(model, x, y)
    assert out.shape == (8 * (1 + K), *SHAPE)
    rows = out.view(8, 1 + K, *SHAPE)
    # the first column: the test images as the model reads them (seeded preprocessing)
    assert torch.equal(rows[:, 0], explore.model_inputs(model, x, seed=0))
    z = model.encode(rows[:, 0], y=y)  # each code from the image and its own label
    for c in range(K):
        assert torch.allclose(rows[:, 1 + c], model.decode(z, y=c).clamp(0, 1))
    # the same code with another label decodes to another image
    for a in range(K):
        for b in range(a):
            assert not torch.allclose(rows[:, 1 + a], rows[:, 1 + b])
    # the code comes from the image's own label: other labels give other codes and decodes
    shifted = explore.analogy(model, x, (y + 1) % K).view(8, 1 + K, *SHAPE)
    assert torch.equal(shifted[:, 0], rows[:, 0]) and not torch.allclose(shifted[:, 1:], rows[:, 1:])


def test_what_the_conditional_views_refuse_is_one_line():
    x, y = images(3)
    for name, fn in (("vae", lambda m: explore.class_grid(m, 2)),
                     ("vae", lambda m: explore.analogy(m, x, y)),
                     ("realnvp-cond", lambda m: explore.analogy(m, x, y)),
                     ("cvae", lambda m: explore.analogy(m, x, y[:2])),
                     ("cvae", lambda m: explore.class_grid(m, 0))):
        with pytest.raises(ValueError) as e:
            fn(model_of(name))
        assert "\n" not in str(e.value)
    assert explore.can_analogise(model_of("cvae"))
    assert not any(explore.can_analogise(model_of(n)) for n in ("vae", "realnvp-cond", "cgan"))


def test_class_names_are_the_datasets_when_they_fit():
    model = model_of("cvae")
    names = tuple(f"digit {c}" for c in range(K))
    assert explore.class_names(model, names) == list(names)
    assert explore.class_names(model, None) == [str(c) for c in range(K)]
    assert explore.class_names(model, names[:3]) == [str(c) for c in range(K)]
