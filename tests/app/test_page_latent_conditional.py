"""Latent explorer for class-conditional runs (AppTest, issue 28's views): the class picker
that the fresh draws use, the grid of one row per class and the CVAE's analogies; a
conditional flow gets the picker and the grid but no analogy, and an unconditional run
none of them. Untrained checkpoints (explore_fixture.save_untrained) are enough: the page
only needs weights that decode."""
from __future__ import annotations

import pytest

from explore_fixture import image_by_caption, save_untrained
from runs_fixture import REPO
from test_page_latent import run_page

PAGE = "pages/latent.py"
CVAE, FLOW, VAE = "cvae-untrained", "realnvp-cond-untrained", "vae-untrained"
PICKER = "Class of the draws"
GRID = "10 x 10 samples at T = "
ANALOGY = "Test images 0..7 (left column"


@pytest.fixture(scope="module")
def conditional_root(tmp_path_factory, data_root):
    root = tmp_path_factory.mktemp("conditional-runs")
    save_untrained(root, CVAE, "cvae", {"latent_dim": 3, "hidden": [16]}, data_root)
    save_untrained(root, FLOW, "realnvp-cond", {"scales": 1, "couplings": 1, "width": 8}, data_root)
    save_untrained(root, VAE, "vae", {"latent_dim": 3, "hidden": [16]}, data_root)
    return root


@pytest.fixture
def runs(conditional_root, data_root, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("GENLAB_RUNS", str(conditional_root))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    return {n: str(conditional_root / n) for n in (CVAE, FLOW, VAE)}


def picker(at):
    found = [s for s in at.selectbox if s.label == PICKER]
    return found[0] if found else None


def draws(at) -> str:
    return image_by_caption(at, "32 samples drawn now")


def captions(at) -> str:
    return "\n".join(c for im in at.image for c in im.captions)


def test_a_cvae_gets_the_class_picker_the_class_grid_and_the_analogies(runs):
    at = run_page(PAGE, runs[CVAE])
    assert not at.exception, [e.value for e in at.exception]
    pick = picker(at)
    assert pick is not None and pick.value == "any"
    assert pick.options == ["any: y ~ p(y)", *[str(c) for c in range(10)]]  # MNIST's classes
    assert "their classes drawn from p(y)" in captions(at)
    image_by_caption(at, GRID + "1.00 (seed 0), one row per class, 0 at the top to 9")
    image_by_caption(at, ANALOGY)
    before = draws(at)
    pick.set_value(7).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "32 samples drawn now at T = 1.00 (seed 0), of class 7" in captions(at)
    assert draws(at) != before  # the draws are of the class picked
    grid = image_by_caption(at, GRID)
    next(s for s in at.slider if s.label == "Temperature T").set_value(0.5).run()
    assert not at.exception
    assert image_by_caption(at, GRID + "0.50") != grid  # the grid follows the temperature
    at.select_slider(key=next(s.key for s in at.select_slider if s.label == "Test images from")
                     ).set_value(8).run()
    assert not at.exception and image_by_caption(at, "Test images 8..15 (left column")


def test_a_conditional_flow_gets_the_picker_and_grid_but_no_analogy(runs):
    at = run_page(PAGE, runs[FLOW])
    assert not at.exception, [e.value for e in at.exception]
    assert picker(at) is not None
    image_by_caption(at, GRID + "0.70")  # a flow's own temperature
    assert "Test images 0..7" not in captions(at)
    picker(at).set_value(3).run()
    assert not at.exception and "of class 3" in captions(at)


def test_an_unconditional_run_shows_none_of_them(runs):
    at = run_page(PAGE, runs[VAE])
    assert not at.exception, [e.value for e in at.exception]
    assert picker(at) is None
    assert GRID not in captions(at) and "Test images 0..7" not in captions(at)
    assert not [s for s in at.select_slider if s.label == "Test images from"]
    assert "p(y)" not in captions(at)
