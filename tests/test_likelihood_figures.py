"""genlab.figures.likelihood_figures: the ECharts options of the posterior, IW and OOD charts are
plain JSON; the contours (contourpy) lie on their levels; fine grids are averaged down."""
from __future__ import annotations

import json
from itertools import groupby

import numpy as np
import pytest

from genlab.figures import likelihood_figures as F


def _lines(points: list) -> list[np.ndarray]:
    """The polylines of an ECharts line series (None between them)."""
    return [np.array(list(g)) for gap, g in groupby(points, lambda p: p is None) if not gap]


def _gaussian(n: int, sd=(0.5, 1.0), mu=(0.3, -0.2)):
    z1, z2 = np.linspace(-4, 4, n), np.linspace(-5, 5, n)
    q = np.exp(-0.5 * (((z1[:, None] - mu[0]) / sd[0]) ** 2 + ((z2[None, :] - mu[1]) / sd[1]) ** 2))
    return z1, z2, q / (2 * np.pi * sd[0] * sd[1])


def test_a_contour_lies_on_its_level_and_closes():
    z1, z2, q = _gaussian(81)
    top = q.max()
    for s in (1.0, 2.0, 3.0):
        lines = _lines(F.contour(z1, z2, q, top * np.exp(-0.5 * s * s)))
        assert len(lines) == 1 and (lines[0][0] == lines[0][-1]).all()  # one closed line
        r = np.hypot((lines[0][:, 0] - 0.3) / 0.5, (lines[0][:, 1] + 0.2) / 1.0)
        assert r == pytest.approx(np.full(len(r), s), rel=0.02)  # s standard deviations out


def test_contours_that_leave_the_grid_end_there_and_saddles_part():
    z = np.linspace(-1, 1, 21)
    lines = _lines(F.contour(z, z, z[:, None] + 0 * z[None, :], 0.05))  # the line z1 = 0.05
    assert len(lines) == 1 and lines[0][:, 0] == pytest.approx(np.full(len(lines[0]), 0.05))
    assert sorted(lines[0][[0, -1], 1]) == [-1.0, 1.0]  # from edge to edge
    z = np.linspace(-1, 1, 20)  # the square around 0 is a saddle: two corners on each side
    branches = _lines(F.contour(z, z, z[:, None] * z[None, :], 0.001))  # z1 z2 = 0.001
    assert len(branches) == 2  # the hyperbola's two branches, never joined
    assert all((np.sign(b[:, 0]) == np.sign(b[0, 0])).all() for b in branches)


def test_the_posterior_is_plain_json_and_fine_grids_are_averaged():
    z1, z2, q = _gaussian(512)
    post = np.roll(q, 20, axis=0)
    chart = F.posterior_figure(z1, z2, post, q, code=np.float32([0.3, -0.2]))
    spec = json.loads(json.dumps(chart.spec, allow_nan=False))
    cells = spec["series"][0]["data"]
    assert len(cells) == 128 * 128  # 4 x 4 blocks of the 512 x 512 grid
    blocks = post.reshape(128, 4, 128, 4).mean(axis=(1, 3))
    assert [c[2] for c in cells] == pytest.approx(blocks.ravel(), rel=6e-3, abs=1e-9)
    assert [c[3] for c in cells[::128]] == pytest.approx(z1.reshape(128, 4).mean(1), rel=5e-3, abs=1e-3)
    assert spec["xAxis"][1]["min"] == pytest.approx(z1[0] - (z1[1] - z1[0]) / 2)  # the same outer edge
    assert chart.width >= spec["grid"]["left"] + spec["grid"]["width"]
    assert spec["series"][-1]["data"] == [[0.3, -0.2]]


def test_iw_and_histograms_are_plain_json():
    iw = F.iw_figure({1: [-90.0, -89.5], 10: [-89.0, -88.9]}, -88.5, -90.5)
    json.dumps(iw.spec, allow_nan=False)
    assert iw.spec["xAxis"]["type"] == "log"
    rng = np.random.default_rng(0)
    hist = F.ood_histogram_figure([("a", rng.normal(size=300)), ("b", np.float32(rng.normal(2, 1, 200)))],
                                  "nats", bins=20)
    spec = json.loads(json.dumps(hist.spec, allow_nan=False))
    assert [len(s["data"]) for s in spec["series"]] == [20, 20]
    width = spec["series"][0]["data"][1][0] - spec["series"][0]["data"][0][0]
    for s in spec["series"]:
        assert sum(p[1] for p in s["data"]) * width == pytest.approx(1.0, abs=0.03)
    same = F.ood_histogram_figure([("a", np.ones(5))], "nats")  # one value: still bins
    assert sum(p[1] for p in same.spec["series"][0]["data"]) == pytest.approx(50.0)
