"""True posterior (AppTest): on the fixture's trained 2-D VAE the page draws p(z|x) with
q's contours and the IW chart, its KL is log p(x) - ELBO and agrees with the KL integrated
directly on the grid, another test image gives another posterior; runs without a 2-D
latent are not offered."""
from __future__ import annotations

import pytest

from explore_fixture import AE_GMM, CORRUPT, explore_root, explore_runs, figures  # noqa: F401
from runs_fixture import GOOD, run_page

PAGE = "pages/posterior.py"


def test_the_posterior_of_a_test_image_and_another(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    v = at.session_state["posterior_view"]
    assert v["kl"] == pytest.approx(v["log_px"] - v["elbo"], abs=1e-9)
    assert v["kl"] >= 0 and v["kl_direct"] == pytest.approx(v["kl"], abs=0.02)
    figs = figures(at)
    heat = next(f for f in figs if any(t["type"] == "heatmap" for t in f["data"]))
    assert sum(t["type"] == "contour" for t in heat["data"]) == 3  # q at 1, 2, 3 sd
    iw = next(f for f in figs if f["layout"]["xaxis"].get("type") == "log")
    assert len(iw["data"][1]["x"]) == 5  # k = 1, 10, 100, 1000, 5000
    labels = [m.label for m in at.metric]
    assert "log p(x), quadrature" in labels and "KL(q ‖ p(z|x)) = log p(x) − ELBO" in labels
    picker = next(n for n in at.number_input if n.label.startswith("Test image"))
    picker.set_value(7).run()
    assert not at.exception
    assert at.session_state["posterior_view"]["log_px"] != v["log_px"]


def test_only_2d_vaes_are_offered(explore_runs):
    at = run_page(PAGE, explore_runs[AE_GMM])  # an ae-gmm has a 2-D latent but no q(z|x)
    assert not at.exception
    box = next(s for s in at.selectbox if s.label.startswith("Run"))
    names = sorted(o.split(" · ")[0] for o in box.options)
    assert names == ["vae-corrupt", GOOD]  # the 2-D VAEs (a corrupt one says so when opened)
    assert box.value == explore_runs[GOOD]  # the damaged checkpoint is listed last
    box.set_value(explore_runs[CORRUPT]).run()
    assert not at.exception and "cannot be loaded" in "".join(e.value for e in at.error)
