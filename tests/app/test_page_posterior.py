"""True posterior (AppTest): on the fixture's trained 2-D VAE the page draws p(z|x) (the
heatmap's cells the quadrature's grid) with q's contours and the IW chart (ECharts), its KL
is log p(x) - ELBO and agrees with the KL integrated directly on the grid, another test
image gives another posterior; runs without a 2-D latent are not offered."""
from __future__ import annotations

from itertools import groupby

import numpy as np
import pytest

from explore_fixture import AE_GMM, CORRUPT, explore_root, explore_runs, figures  # noqa: F401
from genlab.data import load_split
from genlab.evaluation import explore, posterior as P
from genlab.runs import store
from runs_fixture import GOOD, run_page

PAGE = "pages/posterior.py"
Q_NAME = "q(z|x): 1, 2, 3 sd"


def _chart(at, has) -> dict:
    """The one chart on the page whose spec ``has``."""
    found = [f for f in figures(at) if has(f)]
    assert len(found) == 1, [[s["type"] for s in f["series"]] for f in figures(at)]
    return found[0]


def _heatmap(at) -> dict:
    return _chart(at, lambda f: any(s["type"] == "heatmap" for s in f["series"]))


def test_the_posterior_of_a_test_image_and_another(explore_runs, data_root):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    v = at.session_state["posterior_view"]
    assert v["kl"] == pytest.approx(v["log_px"] - v["elbo"], abs=1e-9)
    assert v["kl"] >= 0 and v["kl_direct"] == pytest.approx(v["kl"], abs=0.02)

    # the heatmap is the quadrature's grid for test image 0, computed here on its own
    model, _, _ = store.load_model(explore_runs[GOOD], map_location="cpu")
    x = explore.model_inputs(model, load_split("mnist", "test", data_root, limit=1).x[:1])
    ref = P.posterior_view(model, x, elbo_samples=10)
    assert ref.log_px == pytest.approx(v["log_px"], abs=1e-6)
    heat = _heatmap(at)
    assert heat["animation"] is False
    cells = next(s for s in heat["series"] if s["type"] == "heatmap")["data"]
    n1, n2 = len(ref.z1), len(ref.z2)
    assert len(cells) == n1 * n2 and n1 <= 128
    ij = np.array([c[:2] for c in cells])
    assert (ij == np.stack(np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij"), -1).reshape(-1, 2)).all()
    post = ref.log_post.exp().numpy()
    shown = np.array([c[2] for c in cells])
    assert shown == pytest.approx(post.ravel(), rel=6e-3, abs=1e-6 * post.max())  # 3 digits
    assert shown.sum() * ref.cell_area == pytest.approx(1.0, abs=0.01)  # a density over z
    assert [c[3] for c in cells[::n2]] == pytest.approx(ref.z1.tolist(), rel=5e-3, abs=1e-3)  # tooltips
    x_axis, y_axis = heat["xAxis"][1], heat["yAxis"][1]  # the shown axes, over the cells' edges
    step1, step2 = float(ref.z1[1] - ref.z1[0]), float(ref.z2[1] - ref.z2[0])
    assert (x_axis["name"], y_axis["name"]) == ("z1", "z2")
    assert x_axis["min"] == pytest.approx(float(ref.z1[0]) - step1 / 2)
    assert y_axis["max"] == pytest.approx(float(ref.z2[-1]) + step2 / 2)
    vm = heat["visualMap"]  # the colour bar: p(z|x) from 0 to its largest cell
    assert vm["seriesIndex"] == 0 and vm["dimension"] == 2 and vm["max"] == pytest.approx(post.max(), rel=6e-3)
    # equal axes: the plot area's pixels per unit of z1 and of z2 agree
    grid = heat["grid"]
    assert grid["width"] / (x_axis["max"] - x_axis["min"]) == pytest.approx(
        grid["height"] / (y_axis["max"] - y_axis["min"]), rel=0.02)

    # q (a Gaussian): one closed line at each of 1, 2 and 3 sd around the code, 1 : 2 : 3 wide
    q_lines = [s for s in heat["series"] if s["name"] == Q_NAME]
    assert len(q_lines) == 3
    loops = [[np.array(list(g)) for gap, g in groupby(s["data"], lambda p: p is None) if not gap]
             for s in q_lines]  # each series' polylines (None between them)
    assert [len(ls) for ls in loops] == [1, 1, 1]
    loops = [ls[0] for ls in loops]
    assert all((loop[0] == loop[-1]).all() for loop in loops)
    code = next(s for s in heat["series"] if s["name"] == "encode(x)")["data"][0]
    assert code == pytest.approx(ref.code.tolist(), rel=1e-3, abs=1e-3)
    widths = np.array([np.ptp(loop, axis=0) for loop in loops])  # (level, axis)
    assert widths[1] / widths[0] == pytest.approx([2, 2], rel=0.05)
    assert widths[2] / widths[0] == pytest.approx([3, 3], rel=0.05)
    assert ((loops[0].min(0) < code) & (code < loops[0].max(0))).all()

    iw = _chart(at, lambda f: isinstance(f["xAxis"], dict) and f["xAxis"]["type"] == "log")
    series = {s["name"]: s for s in iw["series"]}
    draws, means = series["IW(k), each draw"]["data"], series["IW(k), mean of the draws"]["data"]
    ks = [m[0] for m in means]
    assert ks == [1, 10, 100, 1000, 5000] and len(draws) == 5 * len(ks)
    assert [m[1] for m in means] == pytest.approx([np.mean([d[1] for d in draws if d[0] == k]) for k in ks])
    exact = next(s for n, s in series.items() if n.startswith("log p(x) by quadrature"))
    elbo = next(s for n, s in series.items() if n.startswith("ELBO"))
    ends = [iw["xAxis"]["min"], iw["xAxis"]["max"]]  # lines across the axis, which holds every k
    assert ends[0] < 1 and ends[1] > 5000
    assert exact["data"] == [[ends[0], pytest.approx(v["log_px"])], [ends[1], pytest.approx(v["log_px"])]]
    assert elbo["data"] == [[ends[0], pytest.approx(v["elbo"])], [ends[1], pytest.approx(v["elbo"])]]
    labels = [m.label for m in at.metric]
    assert "log p(x), quadrature" in labels and "KL(q ‖ p(z|x)) = log p(x) − ELBO" in labels

    picker = next(n for n in at.number_input if n.label.startswith("Test image"))
    picker.set_value(7).run()
    assert not at.exception
    assert at.session_state["posterior_view"]["log_px"] != v["log_px"]
    other = next(s for s in _heatmap(at)["series"] if s["type"] == "heatmap")["data"]
    assert [c[2] for c in other] != [c[2] for c in cells]


def test_only_2d_vaes_are_offered(explore_runs):
    at = run_page(PAGE, explore_runs[AE_GMM])  # an ae-gmm has a 2-D latent but no q(z|x)
    assert not at.exception
    box = next(s for s in at.selectbox if s.label.startswith("Run"))
    names = sorted(o.split(" · ")[0] for o in box.options)
    assert names == ["vae-corrupt", GOOD]  # the 2-D VAEs (a corrupt one says so when opened)
    assert box.value == explore_runs[GOOD]  # the damaged checkpoint is listed last
    box.set_value(explore_runs[CORRUPT]).run()
    assert not at.exception and "cannot be loaded" in "".join(e.value for e in at.error)


def test_without_the_test_images_the_page_says_so_in_a_sentence(explore_runs, tmp_path, monkeypatch):
    """Issue 24, item 10: the message read "The posterior view need the mnist test images"."""
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    warning = "\n".join(w.value for w in at.warning)
    assert ("**The mnist test images are not in the data root**; they are needed for the "
            "posterior view.") in warning, warning
    assert "view need" not in warning and "GENLAB_DATA" in warning
