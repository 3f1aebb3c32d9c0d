"""Sliders decoded in the browser (AppTest side; tests/app/test_live_decoder_browser.py
drives the JavaScript): an MLP decoder gets the component with its weights once, a switch
goes back to the server's sliders, a flow keeps the server path; the component's files are
local (no URL to another host)."""
from __future__ import annotations

import json
import re

from explore_fixture import FLOW, GAN, image_by_caption
from runs_fixture import GOOD, REPO, run_page

PAGE = "pages/latent.py"
COMPONENT = REPO / "pages" / "ui" / "components" / "latent_decoder"


def _component_args(at) -> list[dict]:
    return [json.loads(e.proto.json_args) for e in at.get("component_instance")]


def test_an_mlp_decoder_gets_the_browser_sliders_and_its_weights_once(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    toggle = at.toggle(key="live_decoder")
    assert toggle.value is True
    args = _component_args(at)
    assert len(args) == 1 and args[0]["model"]["output"] == "sigmoid"
    assert [(l["in"], l["out"]) for l in args[0]["model"]["layers"]] == [(2, 64), (64, 784)]
    assert args[0]["labels"] == ["z1", "z2"] and len(args[0]["z"]) == 2
    assert not [s for s in at.slider if s.label == "z1"]  # no server sliders beside it
    at.button(key=next(b.key for b in at.button if b.label == "Random prior draw")).click().run()
    again = _component_args(at)
    assert again[0]["model"] is None  # the weights went once; the base code moved
    assert again[0]["z"] != args[0]["z"] and again[0]["state_key"] != args[0]["state_key"]
    toggle.set_value(False).run()
    assert not at.exception and not _component_args(at)
    assert image_by_caption(at, "decode(z)") and [s for s in at.slider if s.label == "z1"]


def test_a_gan_generator_goes_to_the_browser_a_flow_stays_on_the_server(explore_runs):
    at = run_page(PAGE, explore_runs[GAN])
    args = _component_args(at)
    assert len(args) == 1 and args[0]["model"]["output"] == "tanh01" and len(args[0]["dims"]) == 8
    at = run_page(PAGE, explore_runs[FLOW])
    assert not at.exception and not _component_args(at)
    assert not [t for t in at.toggle if t.key == "live_decoder"]


def test_the_component_is_local_files_only():
    files = sorted(p.name for p in COMPONENT.iterdir())
    assert files == ["decoder.js", "index.html"]
    for p in COMPONENT.iterdir():
        text = p.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), p.name  # no other host
    assert '<script src="decoder.js">' in (COMPONENT / "index.html").read_text()
