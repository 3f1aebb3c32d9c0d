"""AppTest of the Train page for the class-conditional families (issue 28, views): each is
offered in the Model picker with its unconditional family's options (the cgan also its
label embedding's size) and training recipe, never a field for the number of classes,
which the dataset sets; and a cvae started from the page trains on MNIST's 10 classes."""
from __future__ import annotations

import time

import pytest

from genlab.config import format_value
from genlab.models import FAMILIES, MODELS, unconditional_family
from genlab.runs import jobs, store, status
from runs_fixture import run_page, texts

PAGE = "pages/train.py"
CONDITIONAL = ("cvae", "realnvp-cond", "nice-cond", "cgan")
RUN_TIMEOUT_S = 120


def model_keys(at, model: str) -> set[str]:
    """The option fields of ``model`` on the form (keys m-<model>-<field>), by field."""
    prefix = f"m-{model}-"
    return {w.key[len(prefix):] for kind in ("number_input", "text_input", "selectbox", "checkbox",
                                             "toggle")
            for w in getattr(at, kind) if (w.key or "").startswith(prefix)}


def shown(value):
    return format_value(value) if isinstance(value, tuple) else value


def test_the_conditional_families_are_offered_with_their_options(train_env):
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert set(CONDITIONAL) <= set(at.get_by_key("train-model").options)
    assert "Its class-conditional variant: cvae." in texts(at)  # on the vae, the default
    for name in CONDITIONAL:
        base = unconditional_family(name)
        at = at.get_by_key("train-model").set_value(name).run()
        assert not at.exception, [e.value for e in at.exception]
        fields = model_keys(at, name)
        own = {"label_dim"} if name == "cgan" else set()
        at = at.get_by_key("train-model").set_value(base).run()
        assert model_keys(at, base) | own == fields, name  # the family's options, and its own
        at = at.get_by_key("train-model").set_value(name).run()
        assert "num_classes" not in fields and "image_shape" not in fields  # the dataset's
        defaults = MODELS[name][1]()
        for f in fields:  # each option at its config default
            assert at.get_by_key(f"m-{name}-{f}").value == pytest.approx(shown(getattr(defaults, f))), f
        for f, v in FAMILIES[base].defaults.items():  # its family's training recipe
            assert at.get_by_key(f"t-{f}").value == pytest.approx(shown(v)), (name, f)
        assert (f"Class-conditional** variant of {base}: trained on the images with their labels"
                in texts(at)) and "comes from the dataset (10)" in texts(at)


def test_a_cvae_started_from_the_page_trains_on_the_datasets_classes(train_env):
    at = run_page(PAGE)
    at = at.get_by_key("train-model").set_value("cvae").run()
    for key, v in {"m-cvae-latent_dim": 2, "m-cvae-hidden": "16", "t-epochs": 1, "t-limit": 200,
                   "t-batch_size": 100, "t-log_every": 1, "t-n_samples": 10, "t-device": "cpu",
                   "train-name": "cvae-from-the-page"}.items():
        at.get_by_key(key).set_value(v)
    at = at.form_submit_button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Started" in "\n".join(s.value for s in at.success)
    run = train_env.resolve() / "cvae-from-the-page"
    rc = store.read_config_dict(run)
    assert rc["model"] == "cvae" and rc["model_config"]["num_classes"] == 10
    assert rc["model_config"]["latent_dim"] == 2
    deadline = time.time() + RUN_TIMEOUT_S
    while (store.read_json(run / store.STATUS) or {}).get("state") not in ("done", "failed"):
        assert time.time() < deadline, status.log_tail(run)
        time.sleep(1.0)
    jobs.wait(run, 30)
    assert store.read_json(run / store.STATUS)["state"] == "done", status.log_tail(run)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
