"""AppTest of the Train page's training defaults (issue 12): the fields start at the
model family's defaults, as `python -m genlab train --model M` fills them, follow the
model when it changes, and a bad optimiser value is refused in the CLI's words."""
from __future__ import annotations

import pytest

from genlab.config import defaults, format_value
from genlab.config import TrainConfig
from genlab.models import family_defaults
from runs_fixture import run_page, texts

PAGE = "pages/train.py"


def shown(value):
    return format_value(value) if isinstance(value, tuple) else value


def test_training_fields_start_at_the_family_defaults_and_follow_the_model(train_env):
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    vae = family_defaults("vae")
    for name, value in vae.items():
        assert at.get_by_key(f"t-{name}").value == pytest.approx(shown(value)), name
    assert "Burda et al. 2016" in texts(at)  # the sources under the form
    at = at.get_by_key("train-model").set_value("gan").run()
    assert not at.exception
    gan, plain = family_defaults("gan"), defaults(TrainConfig)
    for name in set(vae) | set(gan):  # the GAN's values; what only the VAE set back to plain
        want = gan.get(name, plain[name])
        assert at.get_by_key(f"t-{name}").value == pytest.approx(shown(want)), name
    assert "Radford et al. 2016" in texts(at)


def test_a_bad_betas_value_is_refused_in_the_cli_words(train_env):
    at = run_page(PAGE)
    at.get_by_key("t-betas").set_value("0.9")
    at = at.form_submit_button[0].click().run()
    errors = "\n".join(e.value for e in at.error)
    assert "Not started" in errors
    assert "--betas must be two comma-separated numbers, each >= 0 and <= 0.9999 (got 1: 0.9)" in errors
    assert not train_env.exists() or not any(train_env.iterdir())
