"""genlab.figures.latent_figures: plotly figures of codes and mixtures hold every code once
with its index, a plotly selection maps back to the codes, equal axes are anchored, far-out
codes sit at the view's edge, and the docstring examples run."""
from __future__ import annotations

import doctest
import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from genlab.figures import latent_figures as F


def _codes(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) * [3.0, 0.5] + [1.0, -2.0], rng.integers(0, 10, n)


def _json(fig: go.Figure) -> dict:
    """The figure as the browser gets it (what st.plotly_chart sends): valid JSON."""
    return json.loads(pio.to_json(fig, validate=False))


@pytest.mark.parametrize("n, kind", [(300, go.Scatter), (F.GL_CODES + 1, go.Scattergl)])
def test_the_scatter_holds_every_code_once_with_its_index_in_one_trace_per_class(n, kind):
    xy, y = _codes(n)
    xy[5] = np.nan  # a NaN code is not drawn, and not invalid JSON
    fig = F.latent_scatter_figure(xy, y, [f"c{k}" for k in range(10)], mark=3)
    _json(fig)
    assert all(isinstance(t, kind) for t in fig.data)  # one kind: the ring lies over the codes
    assert fig.data[-1].name == "this image" and fig.data[-1].customdata is None
    codes = fig.data[:-1]
    assert sorted(i for t in codes for i in t.customdata) == list(range(len(xy)))
    for t in codes:  # each trace is one class, in index order
        k = int(t.name[1:])
        assert list(t.customdata) == np.flatnonzero(y == k).tolist()
        np.testing.assert_allclose(np.c_[t.x, t.y], xy[t.customdata], rtol=1e-6)  # float32 on the wire
        assert t.hovertemplate.startswith(f"c{k} · image %{{customdata}}")
    assert fig.layout.clickmode == "event+select" and fig.layout.dragmode == "pan"  # a click selects


def test_a_plotly_selection_maps_back_to_the_codes_whatever_the_trace():
    xy, y = _codes()
    fig = F.latent_scatter_figure(xy, y, mark=3)
    s0, s2 = np.flatnonzero(y == 0), np.flatnonzero(y == 2)
    ring = len(fig.data) - 1
    assert fig.data[ring].name == "this image"
    points = [{"curve_number": 2, "point_number": 1, "point_index": 1, "x": 0, "y": 0},
              {"curve_number": 2, "point_index": 0},
              {"curve_number": 0, "point_index": 4},
              {"curve_number": 2, "point_index": 1},  # again: once
              {"curve_number": ring, "point_index": 0}]  # the ring is no code
    selection = {"points": points, "point_indices": [1, 0, 4, 1, 0], "box": [], "lasso": []}
    assert F.selected_codes(fig, selection) == [s2[1], s2[0], s0[4]]  # first seen first, once each
    assert F.selected_codes(fig, {"points": [], "point_indices": [], "box": [], "lasso": []}) == []
    assert F.selected_codes(fig, None) == []
    assert F.selected_codes(fig, {"points": [{"curve_number": 99, "point_index": 0}]}) == []


def test_equal_axes_are_anchored_and_span_the_codes_a_projection_is_free():
    xy, y = _codes()
    fig = F.latent_scatter_figure(xy, y, height=480)
    xa, ya = fig.layout.xaxis, fig.layout.yaxis
    assert ya.scaleanchor == "x" and ya.scaleratio == 1  # one unit the same length on screen
    assert xa.constrain == ya.constrain == "domain"  # the plot area shrinks; the ranges stay
    (x0, x1), (y0, y1) = xa.range, ya.range
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert x0 <= xy[:, 0].min() and x1 >= xy[:, 0].max() and y0 <= xy[:, 1].min() and y1 >= xy[:, 1].max()
    assert (xa.title.text, ya.title.text, fig.layout.height) == ("z1", "z2", 480)
    free = F.latent_scatter_figure(xy, y, equal=False, axes=("UMAP 1", "UMAP 2"))
    assert free.layout.yaxis.scaleanchor is None  # a projection: each axis its own range
    assert np.ptp(free.layout.yaxis.range) < np.ptp(free.layout.xaxis.range)
    assert free.layout.xaxis.title.text == "UMAP 1"


def test_the_mixture_draws_an_ellipse_and_a_numbered_mean_per_component():
    means = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
    ellipses = [m + np.c_[np.cos(t := np.linspace(0, 2 * np.pi, 9)), np.sin(t)] for m in means]
    xy, y = _codes(50)
    fig = F.mixture_figure(means, ellipses, xy=xy, labels=y, highlight=1)
    _json(fig)
    assert all(isinstance(t, go.Scatter) for t in fig.data)  # one kind: drawn in trace order
    many = F.mixture_figure(means, ellipses, xy=_codes(F.GL_CODES + 1)[0])
    assert all(isinstance(t, go.Scattergl) for t in many.data)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["2-sigma ellipses", "component 1", "2-sigma ellipses"]
    assert [t.showlegend for t in lines] == [True, True, False]
    assert [len(t.x) for t in lines] == [9, 9, 9]
    np.testing.assert_allclose(np.c_[lines[2].x, lines[2].y], ellipses[2])
    assert lines[1].line.color == F.HIGHLIGHT_COLOR != lines[0].line.color
    mean = next(t for t in fig.data if t.name == "means")
    assert list(mean.text) == ["0", "1", "2"] and (mean.x[1], mean.y[1]) == (3.0, 1.0)
    assert fig.data.index(mean) == len(fig.data) - 1  # over the codes and the ellipses
    codes = [t for t in fig.data if t.customdata is not None]
    assert sum(len(t.x) for t in codes) == 50 and codes[0].marker.opacity == 0.35
    assert fig.layout.yaxis.scaleanchor == "x"
    (x0, x1), (y0, y1) = fig.layout.xaxis.range, fig.layout.yaxis.range
    assert x0 <= -3 and x1 >= 4 and y0 <= -1 and y1 >= 5  # every ellipse in view
    bars = F.weights_figure([0.5, 0.3, 0.2], highlight=2).data[0]
    assert list(bars.y) == [0.5, 0.3, 0.2] and list(bars.x) == [0, 1, 2]
    assert [c == F.HIGHLIGHT_COLOR for c in bars.marker.color] == [False, False, True]


def test_a_few_outlying_codes_do_not_shrink_the_view_and_are_drawn_at_its_edge():
    """Issue 24, item 6: NICE's PCA 1 reached 1,100 for a few codes, so the other 99 % sat
    in one dot. The view spans the codes inside Tukey's far-out fences; the rest are drawn
    at its edge as triangles pointing to them, listed by outside_codes, and selectable."""
    xy, y = _codes(1000)
    far = np.array([10, 20, 30])
    xy[far] = [[1100.0, 0.0], [-900.0, 5.0], [0.0, 700.0]]
    fig = F.latent_scatter_figure(xy, y)
    _json(fig)
    (x0, x1), (y0, y1) = fig.layout.xaxis.range, fig.layout.yaxis.range
    inliers = np.delete(xy, far, axis=0)
    assert x0 <= inliers[:, 0].min() and x1 >= inliers[:, 0].max()
    assert y0 <= inliers[:, 1].min() and y1 >= inliers[:, 1].max()
    assert x1 - x0 < 30  # not 2,000 wide
    q = np.quantile(inliers, [0.01, 0.99], axis=0)
    assert (q[1, 0] - q[0, 0]) / (x1 - x0) > 0.5  # the central 98 % fill half the view
    assert F.outside_codes(fig) == far.tolist()
    drawn = {}  # code -> (trace number, position, x, y, symbol, hover text)
    for c, t in enumerate(fig.data):
        for j, i in enumerate(t.customdata):
            drawn[int(i)] = (c, j, float(t.x[j]), float(t.y[j]), t.marker.symbol[j], t.text[j]) \
                if isinstance(t.marker.symbol, tuple) else (c, j, float(t.x[j]), float(t.y[j]), "circle", "")
    assert drawn[10][2:5] == (pytest.approx(x1), 0.0, "triangle-right")
    assert drawn[20][2] == pytest.approx(x0) and drawn[20][4] == "triangle-left"
    assert drawn[30][3] == pytest.approx(y1) and drawn[30][4] == "triangle-up"
    assert "1100" in drawn[10][5] and "outside the view" in drawn[10][5]  # its own coordinates on hover
    assert "%{text}" in fig.data[drawn[10][0]].hovertemplate
    assert drawn[11][4] == "circle" and drawn[11][5] == ""
    c, j = drawn[10][:2]
    assert F.selected_codes(fig, {"points": [{"curve_number": c, "point_index": j}]}) == [10]
    ring = F.latent_scatter_figure(xy, y, mark=10).data[-1]
    assert (ring.x[0], ring.y[0]) == pytest.approx(drawn[10][2:4], rel=1e-6)  # where the point is drawn


def test_codes_that_only_widen_the_view_a_little_stay_in_it_and_a_flat_axis_is_not_fenced():
    xy, y = _codes()
    xy[:4] = [[17.0, -2.0], [-15.0, -2.0], [1.0, 0.5], [1.0, -4.5]]  # beyond the fences, not far
    lo, hi = F.view_limits(xy)
    np.testing.assert_allclose(lo, xy.min(0))
    np.testing.assert_allclose(hi, xy.max(0))
    assert F.outside_codes(F.latent_scatter_figure(xy, y)) == []
    assert all(t.marker.symbol is None for t in F.latent_scatter_figure(xy, y).data)  # no per-point arrays
    xy[0] = [60.0, 0.0]  # now it would more than double the view's width: x is fenced, y not
    lo, hi = F.view_limits(xy)
    assert hi[0] < 17 and lo[0] > -15 and (lo[1], hi[1]) == (xy[:, 1].min(), xy[:, 1].max())
    assert F.outside_codes(F.latent_scatter_figure(xy, y)) == [0, 1]
    flat = np.zeros((100, 2))
    flat[:20, 1] = np.linspace(1, 5, 20)  # most points equal on y: IQR 0
    lo, hi = F.view_limits(flat)
    assert (lo[1], hi[1]) == (0.0, 5.0)
    assert F.outside_codes(F.latent_scatter_figure(flat, np.zeros(100, int))) == []


@pytest.mark.parametrize("name", ["latent_scatter_figure", "selected_codes", "outside_codes",
                                  "mixture_figure", "weights_figure"])
def test_the_docstring_examples_run(name, monkeypatch):
    shown = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: shown.append(self))
    fn = getattr(F, name)
    (test,) = doctest.DocTestFinder().find(fn, name, globs=vars(F).copy())
    assert test.examples, f"{name} has no example"
    report = []
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=report.append)
    assert result.failed == 0, "".join(report)
    assert all(isinstance(f, go.Figure) and f.data for f in shown)
    assert bool(shown) == name.endswith("_figure")
