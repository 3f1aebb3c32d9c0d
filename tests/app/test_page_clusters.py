"""Clusters (AppTest): the autoencoder + GMM's own mixture is drawn with one 2-sigma
ellipse per component and its weights; the count slider refits; a component's samples
change with the pick; a VAE gets a mixture on demand; a flow's 784-D latent is explained."""
from __future__ import annotations

import numpy as np

from explore_fixture import AE_GMM, FLOW, figures, image_by_caption
from genlab.runs import store
from runs_fixture import GOOD, run_page

PAGE = "pages/clusters.py"


def drawn(at) -> tuple[int, int, list[float]]:
    """(ellipses, means, bar heights) in the page's two figures."""
    mix, bars = figures(at)
    ellipses = [t for t in mix["data"] if t.get("mode") == "lines"]
    means = next(t for t in mix["data"] if t.get("name") == "means")
    return len(ellipses), len(means["x"]), list(bars["data"][0]["y"])


def test_the_runs_mixture_then_a_refit_with_another_count(explore_runs):
    at = run_page(PAGE, explore_runs[AE_GMM])
    assert not at.exception, [e.value for e in at.exception]
    model, _, _ = store.load_model(explore_runs[AE_GMM])
    n_ellipses, n_means, weights = drawn(at)
    assert n_ellipses == n_means == len(weights) == 4
    np.testing.assert_allclose(weights, model.gmm.weights.numpy(), rtol=1e-6)  # the stored one
    assert any("The run's own mixture: 4 components" in c.value for c in at.caption)
    at.slider(key=next(s.key for s in at.slider if s.label == "Components")).set_value(7).run()
    assert not at.exception
    n_ellipses, n_means, weights = drawn(at)
    assert n_ellipses == n_means == len(weights) == 7
    assert abs(sum(weights) - 1) < 1e-6
    assert any(c.value.startswith("**7 components**") for c in at.caption)


def test_picking_a_component_shows_its_samples(explore_runs):
    at = run_page(PAGE, explore_runs[AE_GMM])
    box = next(s for s in at.selectbox if s.label == "Component")
    heaviest = box.value
    url = image_by_caption(at, f"16 samples from component {heaviest}:")
    box.select_index(len(box.options) - 1).run()
    assert not at.exception
    picked = next(s for s in at.selectbox if s.label == "Component").value
    assert picked != heaviest
    assert image_by_caption(at, f"16 samples from component {picked}:") != url
    mix = figures(at)[0]
    hot = [t for t in mix["data"] if t.get("name") == f"component {picked}"]
    assert len(hot) == 1 and hot[0]["line"]["color"] == "#d62728"  # its ellipse in red
    colors = figures(at)[1]["data"][0]["marker"]["color"]
    assert [c == "#d62728" for c in colors] == [k == picked for k in range(len(colors))]


def test_a_vae_gets_a_mixture_on_its_test_codes(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception
    assert any("fitted on 2000 test codes" in c.value for c in at.caption)
    assert len(drawn(at)[2]) == 10


def test_a_flow_latent_is_too_large_and_says_so(explore_runs):
    at = run_page(PAGE, explore_runs[FLOW])
    assert not at.exception
    info = "\n".join(i.value for i in at.info)
    assert "784 dimensions" in info and "Latent explorer" in info
