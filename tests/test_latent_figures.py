"""genlab.figures.latent_figures: the ECharts options of codes and mixtures are JSON the browser
takes as it is, a selection maps back to the codes, and equal axes are equal on screen."""
from __future__ import annotations

import json

import numpy as np
import pytest

from genlab.figures import latent_figures as F


def _codes(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) * [3.0, 0.5] + [1.0, -2.0], rng.integers(0, 10, n)


def test_the_scatter_holds_every_code_once_with_its_index_and_is_plain_json():
    xy, y = _codes()
    xy[5] = np.nan  # a NaN code is a gap, not invalid JSON
    chart = F.latent_scatter_figure(xy, y, [f"c{k}" for k in range(10)])
    spec = json.loads(json.dumps(chart.spec, allow_nan=False))  # no numpy scalars, no NaN
    points = [p for s in spec["series"] for p in s["data"]]
    assert sorted(p[2] for p in points) == list(range(len(xy)))
    for s in spec["series"]:  # each series is one class, in index order
        k = int(s["name"][1:])
        assert [p[2] for p in s["data"]] == np.flatnonzero(y == k).tolist()
    by_index = {p[2]: p for p in points}
    assert by_index[7][:2] == [float(f"{v:.5g}") for v in xy[7]]
    assert by_index[5][:2] == [None, None]


def test_a_selection_maps_back_to_the_codes_whatever_the_series():
    xy, y = _codes()
    spec = F.latent_scatter_figure(xy, y, mark=3).spec
    s0, s2 = np.flatnonzero(y == 0), np.flatnonzero(y == 2)
    selection = {"selected": [{"series_index": 2, "data_indices": [1, 0]},
                              {"series_index": 0, "data_indices": [4]},
                              {"series_index": 2, "data_indices": [1]},
                              {"series_index": len(spec["series"]) - 1, "data_indices": [0]}],  # the ring
                 "areas": []}
    assert F.selected_codes(spec, selection) == [s2[1], s2[0], s0[4]]  # first seen first, once each
    assert F.selected_codes(spec, {"selected": [], "areas": []}) == []
    assert F.selected_codes(spec, None) == []


def test_equal_axes_give_one_unit_the_same_length_on_screen():
    xy, y = _codes()
    chart = F.latent_scatter_figure(xy, y, height=480)
    g, xa, ya = chart.spec["grid"], chart.spec["xAxis"], chart.spec["yAxis"]
    w, h = chart.width - g["left"] - g["right"], chart.height - g["top"] - g["bottom"]
    assert w == h > 0
    assert xa["max"] - xa["min"] == pytest.approx(ya["max"] - ya["min"], rel=1e-3)  # pixels per unit
    assert xa["min"] <= xy[:, 0].min() and xa["max"] >= xy[:, 0].max()
    assert ya["min"] <= xy[:, 1].min() and ya["max"] >= xy[:, 1].max()
    free = F.latent_scatter_figure(xy, y, equal=False)
    assert free.width is None  # a projection takes the page's width, each axis its own range
    assert free.spec["yAxis"]["max"] - free.spec["yAxis"]["min"] < free.spec["xAxis"]["max"] - free.spec["xAxis"]["min"]


def test_the_mixture_draws_an_ellipse_and_a_numbered_mean_per_component():
    means = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
    ellipses = [m + np.c_[np.cos(t := np.linspace(0, 2 * np.pi, 9)), np.sin(t)] for m in means]
    spec = json.loads(json.dumps(F.mixture_figure(means, ellipses, highlight=1).spec, allow_nan=False))
    lines = [s for s in spec["series"] if s["type"] == "line"]
    assert [s["name"] for s in lines] == ["2-sigma ellipses", "component 1", "2-sigma ellipses"]
    assert [len(s["data"]) for s in lines] == [9, 9, 9]
    assert lines[1]["lineStyle"]["color"] == F.HIGHLIGHT_COLOR != lines[0]["lineStyle"]["color"]
    mean = next(s for s in spec["series"] if s["name"] == "means")
    assert [p[2] for p in mean["data"]] == [0, 1, 2] and mean["data"][1][:2] == [3.0, 1.0]
    bars = F.weights_figure([0.5, 0.3, 0.2], highlight=2).spec["series"][0]["data"]
    assert [b["value"] for b in bars] == [0.5, 0.3, 0.2]
    assert [b["itemStyle"]["color"] == F.HIGHLIGHT_COLOR for b in bars] == [False, False, True]


def test_a_few_outlying_codes_do_not_shrink_the_view_and_are_drawn_at_its_edge():
    """Issue 24, item 6: NICE's PCA 1 reached 1,100 for a few codes, so the other 99 % sat
    in one dot. The view spans the codes inside Tukey's far-out fences; the rest are drawn
    at its edge as triangles, listed by outside_codes, and still selectable."""
    xy, y = _codes(1000)
    far = np.array([10, 20, 30])
    xy[far] = [[1100.0, 0.0], [-900.0, 5.0], [0.0, 700.0]]
    chart = F.latent_scatter_figure(xy, y)
    spec = json.loads(json.dumps(chart.spec, allow_nan=False))
    xa, ya = spec["xAxis"], spec["yAxis"]
    inliers = np.delete(xy, far, axis=0)
    assert xa["min"] <= inliers[:, 0].min() and xa["max"] >= inliers[:, 0].max()
    assert ya["min"] <= inliers[:, 1].min() and ya["max"] >= inliers[:, 1].max()
    assert xa["max"] - xa["min"] < 30  # not 2,000 wide
    q = np.quantile(inliers, [0.01, 0.99], axis=0)
    assert (q[1, 0] - q[0, 0]) / (xa["max"] - xa["min"]) > 0.5  # the central 98 % fill half the view
    assert F.outside_codes(spec) == far.tolist()
    items = {p["value"][2]: p for s in spec["series"] for p in s["data"] if isinstance(p, dict)}
    assert items[10]["value"][:2] == [xa["max"], 0.0] and items[20]["value"][0] == xa["min"]
    assert items[30]["value"][1] == ya["max"]
    assert all(p["symbol"] == "triangle" for p in items.values())
    assert "1100" in items[10]["tooltip"]["formatter"]  # its own coordinates on hover
    s = next(i for i, t in enumerate(spec["series"]) if any(isinstance(p, dict) and p["value"][2] == 10 for p in t["data"]))
    at = next(j for j, p in enumerate(spec["series"][s]["data"]) if isinstance(p, dict))
    assert F.selected_codes(spec, {"selected": [{"series_index": s, "data_indices": [at]}]}) == [10]
    ringed = F.latent_scatter_figure(xy, y, mark=10).spec["series"][-1]["data"][0]
    assert ringed == items[10]["value"][:2]  # the ring sits where the point is drawn


def test_codes_that_only_widen_the_view_a_little_stay_in_it_and_a_flat_axis_is_not_fenced():
    xy, y = _codes()
    xy[:4] = [[17.0, -2.0], [-15.0, -2.0], [1.0, 0.5], [1.0, -4.5]]  # beyond the fences, not far
    lo, hi = F.view_limits(xy)
    np.testing.assert_allclose(lo, xy.min(0))
    np.testing.assert_allclose(hi, xy.max(0))
    assert F.outside_codes(F.latent_scatter_figure(xy, y).spec) == []
    xy[0] = [60.0, 0.0]  # now it would more than double the view's width: x is fenced, y not
    lo, hi = F.view_limits(xy)
    assert hi[0] < 17 and lo[0] > -15 and (lo[1], hi[1]) == (xy[:, 1].min(), xy[:, 1].max())
    assert F.outside_codes(F.latent_scatter_figure(xy, y).spec) == [0, 1]
    flat = np.zeros((100, 2))
    flat[:20, 1] = np.linspace(1, 5, 20)  # most points equal on y: IQR 0
    lo, hi = F.view_limits(flat)
    assert (lo[1], hi[1]) == (0.0, 5.0)
    assert F.outside_codes(F.latent_scatter_figure(flat, np.zeros(100, int)).spec) == []
