"""Interpolation (AppTest): a strip of N frames between two test images with a GIF
download, another frame count rebuilds it, a GAN interpolates random latents through the
normal CDF, a flow's round trip is exact, and without data random latents still work."""
from __future__ import annotations

import re

from explore_fixture import FLOW, GAN, image_by_caption
from runs_fixture import GOOD, run_page

PAGE = "pages/interpolate.py"


def strip_caption(at) -> str:
    return next(c for im in at.image for c in im.captions if " frames, " in c)


def test_a_strip_between_two_test_images_and_its_gif(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    assert next(r for r in at.radio if r.label == "Endpoints").value == "two test images"
    assert strip_caption(at).startswith("10 frames, linear")
    assert image_by_caption(at, "the endpoints as the model sees them")
    gif = image_by_caption(at, "the strip as a GIF")
    assert any(b.label == "Download the GIF" for b in at.get("download_button"))
    at.slider(key=next(s.key for s in at.slider if s.label == "Frames")).set_value(6).run()
    assert not at.exception
    assert strip_caption(at).startswith("6 frames")
    assert image_by_caption(at, "the strip as a GIF") != gif
    second = next(n for n in at.number_input if n.label == "Second test image")
    second.set_value(5).run()
    assert not at.exception and image_by_caption(at, "the strip as a GIF") != gif


def test_another_path_rebuilds_the_strip(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    path = next(r for r in at.radio if r.label == "Path")
    assert path.options == ["linear", "spherical (slerp)", "equidistant in the normal CDF (equal steps of probability mass between the two codes)"]
    path.set_value("spherical").run()
    assert not at.exception and "spherical (slerp)" in strip_caption(at)


def test_a_gan_interpolates_random_latents_through_the_normal_cdf(explore_runs):
    at = run_page(PAGE, explore_runs[GAN])
    assert not at.exception
    assert next(r for r in at.radio if r.label == "Endpoints").options == ["two random latents"]
    assert "normal CDF" in strip_caption(at)
    before = image_by_caption(at, "the strip as a GIF")
    next(n for n in at.number_input if n.label == "Seed of the two latents").set_value(7).run()
    assert image_by_caption(at, "the strip as a GIF") != before


def test_a_flow_round_trip_is_exact(explore_runs):
    at = run_page(PAGE, explore_runs[FLOW])
    assert not at.exception
    line = next(c.value for c in at.caption if c.value.startswith("A flow encodes exactly"))
    assert float(re.search(r"at most ([0-9.e+-]+)\.$", line).group(1)) < 1e-3


def test_without_data_random_latents_still_work(explore_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception
    assert "GENLAB_DATA" in "\n".join(w.value for w in at.warning)
    next(r for r in at.radio if r.label == "Endpoints").set_value("two random latents").run()
    assert not at.exception and strip_caption(at).startswith("10 frames")


def test_gif_names_say_the_run_and_long_strips_wrap(explore_runs, monkeypatch):
    """Issue 13, item 13: two runs' GIFs get different file names (the run's folder), and a
    24-frame strip wraps into rows of 12 instead of shrinking each frame."""
    from pathlib import Path

    from streamlit.delta_generator import DeltaGenerator

    names, real = [], DeltaGenerator.download_button

    def spy(self, *args, **kwargs):
        names.append(kwargs.get("file_name"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", spy)
    at = run_page(PAGE, explore_runs[GOOD])
    run_page(PAGE, explore_runs[FLOW])
    assert names[-2:] == [f"{Path(explore_runs[GOOD]).name}-linear-10.gif",
                          f"{Path(explore_runs[FLOW]).name}-linear-10.gif"], names
    at.slider(key=next(s.key for s in at.slider if s.label == "Frames")).set_value(24).run()
    assert not at.exception
    assert "24 frames" in strip_caption(at) and "in 2 rows of 12" in strip_caption(at)


def test_the_norm_caption_describes_the_path_shown(explore_runs):
    """Issue 24, item 10: the GAN's normal-CDF path was captioned as if a linear path were
    shown ("and a linear path dips towards the origin"). The caption now names the path
    shown, its own |z| (recomputed here from the same two seeded latents), whether it dips,
    and the other paths' lowest |z| between the same latents."""
    import torch

    from genlab.evaluation import explore
    from genlab.runs import store

    model, _, _ = store.load_model(explore_runs[GAN], map_location="cpu")
    ends = explore.prior_latents(model, 2, seed=0)
    at = run_page(PAGE, explore_runs[GAN])
    for method, name in (("normal-cdf", "normal-CDF"), ("linear", "linear"), ("spherical", "spherical")):
        if method != "normal-cdf":
            next(r for r in at.radio if r.label == "Path").set_value(method).run()
        assert not at.exception, [e.value for e in at.exception]
        line = next(c.value for c in at.caption if c.value.startswith("|z| along"))
        norms = explore.interpolate(ends[0], ends[1], 10, method).norm(dim=1)
        assert line.startswith(f"|z| along the {name} path: {float(norms[0]):.2f} → min "
                               f"{float(norms.min()):.2f} → {float(norms[-1]):.2f}"), line
        dip = 1 - float(norms.min()) / float(torch.minimum(norms[0], norms[-1]))
        assert (f"this path dips {dip:.0%} below its lower end" in line) == (dip > 0.05), line
        for other in set(explore.INTERPOLATIONS) - {method}:
            low = float(explore.interpolate(ends[0], ends[1], 10, other).norm(dim=1).min())
            other_name = {"normal-cdf": "normal-CDF"}.get(other, other)
            assert f"{low:.2f} on the {other_name} path" in line, line
        assert "a linear path dips" not in line
