"""True posterior (AppTest): on the fixture's trained 2-D VAE the page draws p(z|x) (the
heatmap's cells the quadrature's grid) with q's contours (plotly's contour trace) and the IW chart, its KL
is log p(x) - ELBO and agrees with the KL integrated directly on the grid, another test
image gives another posterior; runs without a 2-D latent are not offered."""
from __future__ import annotations

import numpy as np
import pytest

from explore_fixture import AE_GMM, CORRUPT, figures
from genlab.data import load_split
from genlab.evaluation import explore, posterior as P
from genlab.runs import store
from runs_fixture import GOOD, run_page

PAGE = "pages/posterior.py"
Q_NAME = "q(z|x): 1, 2, 3 sd"


def _chart(at, has) -> dict:
    """The one figure on the page whose JSON ``has``."""
    found = [f for f in figures(at) if has(f)]
    assert len(found) == 1, [[t.get("type") for t in f["data"]] for f in figures(at)]
    return found[0]


def _heatmap(at) -> dict:
    return _chart(at, lambda f: any(t.get("type") == "heatmap" for t in f["data"]))


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
    cells = next(t for t in heat["data"] if t["type"] == "heatmap")
    n1, n2 = len(ref.z1), len(ref.z2)
    assert n1 <= 128 and np.asarray(cells["z"]).shape == (n2, n1)  # rows are z2, columns z1
    np.testing.assert_allclose(cells["x"], ref.z1.numpy(), rtol=1e-6)
    np.testing.assert_allclose(cells["y"], ref.z2.numpy(), rtol=1e-6)
    post = ref.log_post.exp().numpy()
    shown = np.asarray(cells["z"], dtype=float).T
    assert shown == pytest.approx(post, rel=1e-5, abs=1e-7 * post.max())  # float32
    assert shown.sum() * ref.cell_area == pytest.approx(1.0, abs=0.01)  # a density over z
    assert cells["zmin"] == 0 and cells["colorbar"]["title"]["text"] == "p(z|x)"
    lay = heat["layout"]
    step1, step2 = float(ref.z1[1] - ref.z1[0]), float(ref.z2[1] - ref.z2[0])
    assert (lay["xaxis"]["title"]["text"], lay["yaxis"]["title"]["text"]) == ("z1", "z2")
    assert lay["xaxis"]["range"][0] == pytest.approx(float(ref.z1[0]) - step1 / 2)
    assert lay["yaxis"]["range"][1] == pytest.approx(float(ref.z2[-1]) + step2 / 2)
    assert lay["yaxis"]["scaleanchor"] == "x" and lay["yaxis"]["scaleratio"] == 1  # equal axes

    # q (a Gaussian): plotly's contour lines of its density at 1, 2 and 3 sd around the code
    q = ref.log_q.exp().numpy()
    q_lines = [t for t in heat["data"] if t.get("name") == Q_NAME]
    assert len(q_lines) == 3 and all(t["type"] == "contour" for t in q_lines)
    levels = [t["contours"]["start"] for t in q_lines]
    assert [t["contours"]["end"] for t in q_lines] == levels
    assert levels == pytest.approx([q.max() * np.exp(-0.5 * s * s) for s in (1, 2, 3)], rel=1e-6)
    for t in q_lines:
        assert np.asarray(t["z"], dtype=float).T == pytest.approx(q, rel=1e-5, abs=1e-7 * q.max())
        assert t["contours"]["coloring"] == "none"
    code = next(t for t in heat["data"] if t.get("name") == "encode(x)")
    assert [code["x"][0], code["y"][0]] == pytest.approx(ref.code.tolist(), rel=1e-3, abs=1e-3)

    iw = _chart(at, lambda f: f["layout"].get("xaxis", {}).get("type") == "log")
    traces = {t["name"]: t for t in iw["data"]}
    draws, means = traces["IW(k), each draw"], traces["IW(k), mean of the draws"]
    ks = list(means["x"])
    assert ks == [1, 10, 100, 1000, 5000] and len(draws["x"]) == 5 * len(ks)
    dx, dy = np.asarray(draws["x"]), np.asarray(draws["y"])
    assert list(means["y"]) == pytest.approx([dy[dx == k].mean() for k in ks])
    exact = next(t for n, t in traces.items() if n.startswith("log p(x) by quadrature"))
    elbo = next(t for n, t in traces.items() if n.startswith("ELBO"))
    lo, hi = iw["layout"]["xaxis"]["range"]  # log10 of the ends: lines across an axis holding every k
    assert 10 ** lo < 1 and 10 ** hi > 5000
    assert list(exact["x"]) == pytest.approx([10 ** lo, 10 ** hi])
    assert list(exact["y"]) == pytest.approx([v["log_px"]] * 2)
    assert list(elbo["y"]) == pytest.approx([v["elbo"]] * 2)
    labels = [m.label for m in at.metric]
    assert "log p(x), quadrature" in labels and "KL(q ‖ p(z|x)) = log p(x) − ELBO" in labels

    picker = next(n for n in at.number_input if n.label.startswith("Test image"))
    picker.set_value(7).run()
    assert not at.exception
    assert at.session_state["posterior_view"]["log_px"] != v["log_px"]
    other = next(t for t in _heatmap(at)["data"] if t["type"] == "heatmap")["z"]
    assert not np.array_equal(np.asarray(other), np.asarray(cells["z"]))


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
