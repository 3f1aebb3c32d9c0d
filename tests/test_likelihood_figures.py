"""genlab.figures.likelihood_figures: the plotly posterior (heatmap, q's levels as plotly
contour traces, equal axes, a colour bar), the IW chart on a log-k axis and the OOD
histograms as densities; fine grids are averaged down; the docstring examples run."""
from __future__ import annotations

import doctest
import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from genlab.figures import likelihood_figures as F


def _gaussian(n: int, sd=(0.5, 1.0), mu=(0.3, -0.2)):
    z1, z2 = np.linspace(-4, 4, n), np.linspace(-5, 5, n)
    q = np.exp(-0.5 * (((z1[:, None] - mu[0]) / sd[0]) ** 2 + ((z2[None, :] - mu[1]) / sd[1]) ** 2))
    return z1, z2, q / (2 * np.pi * sd[0] * sd[1])


def _json(fig: go.Figure) -> dict:
    return json.loads(pio.to_json(fig, validate=False))  # what st.plotly_chart sends


def test_q_levels_are_a_gaussians_density_at_1_2_3_sd():
    z1, z2, q = _gaussian(201)
    levels = F.q_levels(q.max())
    for s, level in zip((1, 2, 3), levels):  # the density on the ellipse s sd out along z1
        at = np.exp(-0.5 * s * s) / (2 * np.pi * 0.5 * 1.0)
        assert level == pytest.approx(at, rel=1e-3)
    assert levels == sorted(levels, reverse=True)


def test_the_posterior_heatmap_contours_and_fine_grids_averaged():
    z1, z2, q = _gaussian(512)
    post = np.roll(q, 20, axis=0)
    fig = F.posterior_figure(z1, z2, post, q, code=np.float32([0.3, -0.2]))
    _json(fig)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap) and heat.colorbar.title.text == "p(z|x)"  # the colour bar
    assert np.shape(heat.z) == (128, 128)  # 4 x 4 blocks of the 512 x 512 grid, z[j][i] at (z1[i], z2[j])
    blocks = post.reshape(128, 4, 128, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(heat.z, blocks.T, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(heat.x, z1.reshape(128, 4).mean(1))
    assert heat.zmin == 0
    contours = [t for t in fig.data if isinstance(t, go.Contour)]
    assert len(contours) == 3 and [t.name for t in contours] == [F.Q_NAME] * 3
    assert [t.showlegend for t in contours] == [True, False, False]  # one legend entry for the three
    levels = F.q_levels(q.max())  # the full grid's peak, not the averaged one's
    for t, level in zip(contours, levels):
        assert t.contours.start == t.contours.end == pytest.approx(level)  # one line each
        assert t.contours.coloring == "none" and t.line.color == F.Q_COLOR and not t.showscale
        assert np.shape(t.z) == (128, 128)
        np.testing.assert_allclose(t.z, q.reshape(128, 4, 128, 4).mean(axis=(1, 3)).T, rtol=1e-6, atol=1e-12)
    cross = fig.data[-1]
    assert cross.name == "encode(x)" and cross.marker.symbol == "x"
    assert (cross.x[0], cross.y[0]) == pytest.approx((0.3, -0.2))
    xa, ya = fig.layout.xaxis, fig.layout.yaxis
    assert ya.scaleanchor == "x" and ya.scaleratio == 1  # one unit of z1 as long as one of z2
    step = (z1[1] - z1[0]) * 4  # the averaged cells' width; the axes reach their outer edges
    assert xa.range[0] == pytest.approx(z1[:4].mean() - step / 2)
    assert xa.range[0] == pytest.approx(z1[0] - (z1[1] - z1[0]) / 2)  # the grid's own outer edge
    assert (xa.title.text, ya.title.text) == ("z1", "z2")
    g1, g2, g = _gaussian(40)
    small = F.posterior_figure(g1, g2, g, g)  # a coarse grid is drawn as it is, no cross
    assert np.shape(small.data[0].z) == (40, 40) and not any(t.name == "encode(x)" for t in small.data)


def test_iw_on_a_log_k_axis_with_the_exact_value_and_the_elbo_across_it():
    iw = F.iw_figure({1: [-90.0, -89.5], 10: [-89.0, -88.9], 100: [-88.7, -88.6]}, -88.5, -90.5)
    _json(iw)
    xa = iw.layout.xaxis
    assert xa.type == "log" and xa.range == pytest.approx((np.log10(0.5), np.log10(200)))  # log10 units
    traces = {t.name: t for t in iw.data}
    draws, means = traces["IW(k), each draw"], traces["IW(k), mean of the draws"]
    assert list(draws.x) == [1, 1, 10, 10, 100, 100] and draws.mode == "markers"
    assert list(means.y) == pytest.approx([-89.75, -88.95, -88.65])
    exact, elbo = traces["log p(x) by quadrature -88.50"], traces["ELBO -90.50"]
    assert list(exact.x) == list(elbo.x) == [0.5, 200]  # across the axis
    assert list(exact.y) == [-88.5, -88.5] and list(elbo.y) == [-90.5, -90.5]
    assert exact.line.dash == "dash" and elbo.line.dash == "dot"


def test_histograms_are_densities_on_common_bins_overlaid_half_transparent():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), np.float32(rng.normal(2, 1, 200))
    hist = F.ood_histogram_figure([("a", a), ("b", b)], "nats", bins=20)
    _json(hist)
    assert hist.layout.barmode == "overlay" and [t.name for t in hist.data] == ["a", "b"]
    assert all(isinstance(t, go.Bar) and t.opacity == 0.55 for t in hist.data)
    x = np.asarray(hist.data[0].x)
    width = hist.data[0].width
    assert len(x) == 20 and np.diff(x) == pytest.approx(np.full(19, width))
    np.testing.assert_array_equal(hist.data[1].x, x)  # common bins
    lo, hi = np.percentile(np.concatenate([a, b]), [0.5, 99.5])
    assert (x[0] - width / 2, x[-1] + width / 2) == pytest.approx((lo, hi))
    edges = np.append(x - width / 2, x[-1] + width / 2)
    for t, s in zip(hist.data, (a, b)):
        np.testing.assert_allclose(t.y, np.histogram(s, bins=edges)[0] / (len(s) * width), rtol=1e-6)
        assert sum(t.y) * width == pytest.approx(1.0, abs=0.03)  # all but the tails
    assert hist.layout.xaxis.title.text == "-log p(x) (nats); lower = more likely"
    assert hist.layout.yaxis.title.text == "density"
    same = F.ood_histogram_figure([("a", np.ones(5))], "nats")  # one value: still bins
    assert sum(same.data[0].y) == pytest.approx(50.0)


@pytest.mark.parametrize("name", ["posterior_figure", "iw_figure", "ood_histogram_figure"])
def test_the_docstring_examples_run(name, monkeypatch):
    shown = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: shown.append(self))
    (test,) = doctest.DocTestFinder().find(getattr(F, name), name, globs=vars(F).copy())
    report = []
    result = doctest.DocTestRunner().run(test, out=report.append)
    assert result.failed == 0, "".join(report)
    assert len(shown) == 1 and isinstance(shown[0], go.Figure) and shown[0].data
