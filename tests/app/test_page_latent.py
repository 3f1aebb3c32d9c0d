"""Latent explorer (AppTest): a slider decodes live and fast, the same z gives the same
image back, the 2-D manifold is drawn, and a GAN, missing data, a corrupt checkpoint and
an empty folder each get a message instead of a traceback."""
from __future__ import annotations

import json

from explore_fixture import (CORRUPT, GAN, explore_root, explore_runs, figures,  # noqa: F401
                             image_by_caption, values)
from runs_fixture import GOOD, run_page, texts

PAGE = "pages/latent.py"


def z_slider(at, name: str = "z1"):
    return next(s for s in at.slider if s.label == name)


def test_moving_a_slider_decodes_a_new_image_fast(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    first = image_by_caption(at, "decode(z)")
    start = z_slider(at).value
    z_slider(at).set_value(start + 1.5).run()
    assert not at.exception
    moved = image_by_caption(at, "decode(z)")
    assert moved != first  # another z, another image
    assert at.session_state["latent_decode_ms"] < 100  # server time, sliders to image
    z_slider(at).set_value(start).run()
    assert image_by_caption(at, "decode(z)") == first  # decoding is deterministic


def test_codes_scatter_selection_data_and_manifold(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    scatter = figures(at)[0]
    points = sum(len(values(t["x"])) for t in scatter["data"])
    ids = sorted(i for t in scatter["data"] for i in values(t["customdata"]))
    assert points == 2000 and ids == list(range(2000))  # every code, its index as customdata
    assert {t["name"] for t in scatter["data"]} <= {str(d) for d in range(10)}
    assert json.dumps(scatter["layout"]["dragmode"]) == '"select"'
    image_by_caption(at, "z1 left to right, z2 bottom to top: a uniform grid on the unit "
                         "square through the inverse normal CDF")
    assert image_by_caption(at, "row r varies z1, z2")
    random = next(b for b in at.button if b.label == "Random prior draw")
    before = z_slider(at).value
    random.click().run()
    assert not at.exception and z_slider(at).value != before  # the sliders moved to the draw


def test_without_the_dataset_sliders_and_grids_still_work(explore_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception
    warning = "\n".join(w.value for w in at.warning)
    assert "test images" in warning and "GENLAB_DATA" in warning
    assert any(b.label == "Download mnist with torchvision" for b in at.button)
    assert image_by_caption(at, "decode(z)") and not figures(at)


def test_a_gan_has_sliders_but_no_codes(explore_runs):
    at = run_page(PAGE, explore_runs[GAN])
    assert not at.exception
    assert "has no encoder" in "\n".join(i.value for i in at.info)
    assert len([s for s in at.slider if s.label.startswith("z")]) == 8
    assert image_by_caption(at, "decode(z)")


def test_empty_folder_says_how_to_train(empty_runs):
    at = run_page(PAGE)
    assert not at.exception
    info = "\n".join(i.value for i in at.info)
    assert "No run to show here" in info and "python -m genlab train" in info


def test_corrupt_checkpoint_is_one_line(explore_runs):
    at = run_page(PAGE, explore_runs[CORRUPT])
    assert not at.exception
    errors = "\n".join(e.value for e in at.error)
    assert "cannot be loaded" in errors and "checkpoint.pt" in errors
    assert "Traceback" not in texts(at)
