"""genlab.latent_figures: the ECharts options of codes and mixtures are JSON the browser
takes as it is, a selection maps back to the codes, and equal axes are equal on screen."""
from __future__ import annotations

import json

import numpy as np
import pytest

from genlab import latent_figures as F


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
