"""AppTest of the 2-D lab: it opens on two moons with RealNVP, Step advances every family
one step and changes the figures, several families stand side by side, the URL holds the
state (and a bad parameter is one warning line, never a traceback), Reset starts afresh."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from runs_fixture import REPO, TIMEOUT, texts

LAB = "pages/lab.py"


def open_lab(**params) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run().switch_page(LAB).run()


def _steps(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("step **")]


def test_the_lab_opens_steps_and_holds_its_state_in_the_url():
    at = open_lab(families="realnvp,gmm", couplings="2", hidden="16")
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "2-D lab"
    assert [m.value for m in at.markdown if m.value.startswith("####")] == ["#### RealNVP", "#### Gaussian mixture (EM)"]
    assert all(s.startswith("step **0**") for s in _steps(at))
    before = [c.proto.spec for c in at.get("plotly_chart")]
    at.button(key="lab-step").click().run()
    assert not at.exception
    assert all(s.startswith("step **1**") for s in _steps(at)) and len(_steps(at)) == 2
    assert "KL(p‖q) **" in _steps(at)[0]
    after = [c.proto.spec for c in at.get("plotly_chart")]
    assert after != before  # the picture changed
    assert at.query_params["families"] == "realnvp,gmm" and at.query_params["couplings"] == "2"
    at.select_slider(key="lab-lr").set_value(3e-3).run()  # lr while it trains: same experiments
    assert at.query_params["lr"] == "0.003" and all(s.startswith("step **1**") for s in _steps(at))
    at.button(key="lab-reset").click().run()
    assert all(s.startswith("step **0**") for s in _steps(at))


def test_play_and_pause_toggle():
    at = open_lab(hidden="16", couplings="2")
    at.button(key="lab-play").click().run()
    assert at.query_params["play"] == "1" and at.button(key="lab-play").label == "Pause"
    at.button(key="lab-play").click().run()
    assert at.query_params["play"] == "0" and at.button(key="lab-play").label == "Play"


def test_a_bad_url_parameter_is_one_warning_line():
    at = open_lab(lr="7", target="u9", hidden="16", couplings="2")
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert any("lr='7'" in w and "a number from 1e-05 to 0.1" in w for w in warnings)
    assert any("target='u9'" in w for w in warnings)
    assert at.query_params["lr"] == "0.001" and at.query_params["target"] == "moons"


def test_every_family_draws_on_an_energy_and_on_text():
    at = open_lab(target="u1", families="planar,vae,gan,radial", k="2", hidden="16")
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="lab-step").click().run()
    assert not at.exception and len(_steps(at)) == 4
    at = open_lab(target="text", text="Hi", families="nice,glow", couplings="2", hidden="16")
    assert not at.exception and "Text “Hi”" in texts(at)
