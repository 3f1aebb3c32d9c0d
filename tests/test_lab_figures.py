"""What keeps the 2-D lab's live redraws cheap (issue 29, item 5), checked on the figures
themselves: points are pictures whose pixels sit where the points are and compose as
semi-transparent markers do; no trace is WebGL and no axis fits its margins by a second
drawing pass; an unchanged model gives a byte-identical figure, drawn without touching the
family's training random numbers; the grid's log q is computed once a step; a tick's
stepping time fills what drawing leaves of it."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import plotly.io as pio
import pytest
import torch
from PIL import Image

from genlab.lab import figures as F
from genlab.lab.families import Options
from genlab.lab.targets import BOX, Grid, get_target
from genlab.lab.train import Experiment, step_budget

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = Options(couplings=2, k=2, hidden=8, components=3)


def _pixels(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA"))


def test_a_dot_lands_on_its_pixel_and_overlaps_compose_like_markers():
    px = 80
    one = _pixels(F.dots_image(np.array([[1.0, 2.0]]), (1.0, 0.0, 0.0, 0.6), px=px, radius=2.0))
    row, col = int((BOX - 2.0) / (2 * BOX) * px), int((1.0 + BOX) / (2 * BOX) * px)  # y up, x right
    assert one[row, col].tolist() == [255, 0, 0, 153]  # red at alpha 0.6
    ys, xs = np.nonzero(one[..., 3])
    assert abs(ys.mean() - row) < 1 and abs(xs.mean() - col) < 1 and np.ptp(ys) <= 6  # a small round dot
    two = _pixels(F.dots_image(np.array([[1.0, 2.0], [1.0, 2.0]]), (1.0, 0.0, 0.0, 0.6), px=px, radius=2.0))
    assert two[row, col, 3] == round(255 * (1 - 0.4 ** 2))  # 1 - (1 - a)^2
    mixed = _pixels(F.dots_image(np.array([[1.0, 2.0], [1.0, 2.0]]),
                                 np.array([[1.0, 0, 0, 1], [0, 0, 1.0, 1]]), px=px, radius=2.0))
    assert mixed[row, col, :3].tolist() == [128, 0, 128]  # the alpha-weighted mean colour
    assert F.dots_image(np.zeros((0, 2)), (1, 1, 1, 1), px=8) == F.dots_image(np.array([[9.0, 9.0]]), (1, 1, 1, 1), px=8)


@pytest.mark.parametrize("name", ["realnvp", "planar", "gan", "gmm", "vae"])
def test_figures_are_cheap_to_redraw_and_the_same_for_the_same_model(name):
    ex = Experiment.start(get_target("moons"), name, SMALL, lr=1e-3, grid=Grid(32))
    ex.advance(2, batch=64)
    data = ex.target.sample(400, torch.Generator().manual_seed(1))
    gen_state = ex.family.gen.get_state()
    rng_state = torch.random.get_rng_state()

    def draw() -> list[str]:
        figs = [F.model_density_figure(ex, ex.log_q()), F.view_figure(ex, data),
                F.curves_figure(ex.history, ex.family.headline, ex.exact)]
        return [pio.to_json(f, validate=False) for f in figs if f is not None]

    first = draw()
    assert draw() == first  # an unchanged model: byte-identical figures (Streamlit keeps the chart)
    assert torch.equal(ex.family.gen.get_state(), gen_state)  # drawing leaves training's numbers alone
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    for spec in map(json.loads, first):
        assert all(t["type"] != "scattergl" for t in spec["data"])  # no WebGL context to make
        axes = [v for k, v in spec["layout"].items() if k.startswith(("xaxis", "yaxis"))]
        assert axes and all(a.get("automargin") is False for a in axes)  # no second drawing pass
    ex.advance(1, batch=64)
    assert draw() != first  # a step changes the pictures


def test_the_layer_view_is_square_panels_with_their_points_as_pictures():
    ex = Experiment.start(get_target("moons"), "realnvp", Options(couplings=8, hidden=8), lr=1e-3)
    fig = F.layers_figure(ex.family)
    assert len(fig.layout.annotations) == 6 == len(fig.layout.images) == len(fig.data)
    for trace, image in zip(fig.data, fig.layout.images):
        assert trace.mode == "lines" and (image.xref, image.yref) == (trace.xaxis, trace.yaxis)
        assert fig.layout[trace.yaxis.replace("y", "yaxis")].scaleanchor == trace.xaxis
    assert fig.layout.annotations[0].text == "base N(0, I)" and fig.layout.annotations[-1].text.startswith("8: ")


def test_log_q_is_computed_once_a_step_and_an_estimate_is_repeatable():
    ex = Experiment.start(get_target("moons"), "vae", SMALL, lr=1e-3, grid=Grid(16))
    a = ex.log_q()
    assert ex.log_q() is a  # kept until the next step
    ex.advance(1, batch=32)
    b = ex.log_q()
    assert b is not a and not np.array_equal(a, b)
    ex._log_q = None  # computed again: the same importance samples, so the same estimate
    assert np.array_equal(ex.log_q(), b)


def test_glow_initialises_its_actnorm_on_target_samples_not_on_the_grid():
    target = get_target("moons")
    ex = Experiment.start(target, "glow", SMALL, lr=1e-3, grid=Grid(16))
    ex.log_q()  # the first picture, before any step
    first = ex.family.flow.layers[0]
    x = target.sample(1024, torch.Generator().manual_seed(0))
    assert torch.allclose(first.loc, x.mean(0), atol=1e-5)  # the grid's points have mean 0
    assert torch.allclose(first.log_scale, -torch.log(x.std(0, unbiased=False)), atol=1e-5)


def test_a_ticks_stepping_fills_what_drawing_leaves():
    assert step_budget(0.25, 0.05, most=0.12, least=0.04) == 0.12  # quick drawing: the most
    assert step_budget(0.25, 0.15, most=0.12, least=0.04) == pytest.approx(0.075)  # 0.9 * 0.25 - 0.15
    assert step_budget(0.25, 0.60, most=0.12, least=0.04) == 0.04  # slow drawing: never stops training
