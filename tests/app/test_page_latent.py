"""Latent explorer (AppTest): a slider decodes live and fast, the same z gives the same
image back, the 2-D manifold is drawn, and a GAN, missing data, a corrupt checkpoint and
an empty folder each get a message instead of a traceback."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from explore_fixture import AE_GMM, CORRUPT, FLOW, GAN, figures, image_by_caption
from runs_fixture import GOOD, REPO, texts
from runs_fixture import run_page as _run_page

PAGE = "pages/latent.py"


def run_page(file: str, run: str | None = None):
    """The page with the server's sliders (issue 15: an MLP decoder starts in the browser,
    which tests/app/test_live_decoder*.py cover)."""
    at = _run_page(file, run)
    switch = [t for t in at.toggle if t.key == "live_decoder"]
    return switch[0].set_value(False).run() if switch else at


def z_slider(at, name: str = "z1"):
    return next(s for s in at.slider if s.label == name)


def x_title(fig: dict) -> str:
    return fig["layout"]["xaxis"]["title"]["text"]


def test_moving_a_slider_decodes_a_new_image(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    first = image_by_caption(at, "decode(z)")
    start = z_slider(at).value
    z_slider(at).set_value(start + 1.5).run()
    assert not at.exception
    moved = image_by_caption(at, "decode(z)")
    assert moved != first  # another z, another image
    assert at.session_state["latent_decode_ms"] > 0  # server time, measured (its goal: benchmarks)
    z_slider(at).set_value(start).run()
    assert image_by_caption(at, "decode(z)") == first  # decoding is deterministic


def test_codes_scatter_selection_data_and_manifold(explore_runs):
    at = run_page(PAGE, explore_runs[GOOD])
    scatter = figures(at)[0]
    codes = np.concatenate([t["customdata"] for t in scatter["data"]])
    assert len(codes) == 2000 and sorted(codes) == list(range(2000))  # every code, its index
    assert {t["type"] for t in scatter["data"]} == {"scatter"}  # 2,000 codes: SVG (GL_CODES)
    assert {t["name"] for t in scatter["data"]} <= {str(d) for d in range(10)}
    # a click selects a point, a box or a lasso a region (issue 13, item 1)
    assert scatter["layout"]["clickmode"] == "event+select" and scatter["layout"]["dragmode"] == "pan"
    element = at.get("plotly_chart")[0].proto
    assert set(element.selection_mode) == {element.SelectionMode.POINTS, element.SelectionMode.BOX,
                                           element.SelectionMode.LASSO}
    assert scatter["layout"]["yaxis"]["scaleanchor"] == "x"  # a 2-D latent: equal axes
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
    # issue 24: "The posterior view need the ..." read wrong for one purpose or another
    assert "test images are not in the data root**; they are needed for the codes and reconstructions" in warning
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


def test_a_flow_gets_principal_direction_sliders_draws_and_an_interpolation(explore_runs):
    """Issue 13, item 3: a flow's page says why one pixel-dimension does almost nothing
    and gives sliders along the test codes' principal directions, temperature draws and
    an interpolation between two encoded images."""
    at = run_page(PAGE, explore_runs[FLOW])
    assert not at.exception, [e.value for e in at.exception]
    note = "\n".join(i.value for i in at.info)
    assert "one per pixel" in note and "principal directions" in note
    pcs = [s for s in at.slider if s.label.startswith("PC ")]
    assert sorted(s.label for s in pcs) == sorted(f"PC {i}" for i in range(1, 11))
    assert not [s for s in at.slider if s.label.startswith("z")]  # no per-pixel sliders
    first = image_by_caption(at, "decode(z)")
    next(s for s in pcs if s.label == "PC 1").set_value(3.0).run()
    assert not at.exception and image_by_caption(at, "decode(z)") != first
    image_by_caption(at, "PC 1 left to right, PC 2 bottom to top")
    image_by_caption(at, "row r moves along PC r + 1")
    draws = image_by_caption(at, "32 samples drawn now at T = 0.70")
    next(s for s in at.slider if s.label == "Temperature T").set_value(1.0).run()
    assert image_by_caption(at, "32 samples drawn now at T = 1.00") != draws
    image_by_caption(at, "10 frames on the straight line between the two codes")


def test_a_vae_and_a_gan_draw_samples_at_the_temperature_of_their_slider(explore_runs):
    """Issue 15, section 5: beside the grids, samples drawn now at a temperature, the
    slider's range from the model's caps (the GAN's truncation stops at 1), new draws on
    request; the same T and seed give the same grid back."""
    for name, top in ((GOOD, 1.5), (GAN, 1.0)):
        at = run_page(PAGE, explore_runs[name])
        assert not at.exception, [e.value for e in at.exception]
        temp = next(s for s in at.slider if s.label == "Temperature T")
        assert (temp.min, temp.max, temp.value) == (0.05, top, 1.0), name
        at1 = image_by_caption(at, "32 samples drawn now at T = 1.00 (seed 0)")
        temp.set_value(0.5).run()
        assert not at.exception
        cool = image_by_caption(at, "32 samples drawn now at T = 0.50 (seed 0)")
        assert cool != at1
        next(b for b in at.button if b.label == "New draws").click().run()
        assert image_by_caption(at, "32 samples drawn now at T = 0.50 (seed 1)") != cool


def test_the_page_opens_on_a_2d_model_with_pca(explore_runs):
    """Issue 13, item 2: without a run chosen elsewhere the page opens on a healthy run
    with a 2-D latent (here the ae-gmm or the VAE, not the flow, the GAN or the corrupt
    VAE), and a projection is PCA unless UMAP is asked for."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at = at.switch_page(PAGE).run()
    assert not at.exception
    picked = at.selectbox(key="pick_run").value
    assert picked in (explore_runs[GOOD], explore_runs[AE_GMM]), picked
    assert not at.error


@pytest.mark.parametrize("name", ["vae-realnvp-post-mnist", "realnvp-mnist", "nice-fashion-mnist"])
def test_a_shipped_run_draws_its_stored_projection_without_encoding(monkeypatch, data_root, name):
    """Issue 13, item 2: a shipped run (the 20-D posterior-flow VAE the page used to open
    on, with UMAP of 10,000 codes on its critical path; two flows, whose switch spent
    seconds encoding 2,000 test images while their files predated the robust directions)
    draws PCA and UMAP from its stored projections.npz: no test image beyond the first is
    encoded, and UMAP is not run."""
    from genlab.evaluation import explore

    monkeypatch.setenv("GENLAB_RUNS", str(REPO / "checkpoints"))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    encoded, real = [], explore.encode_images
    monkeypatch.setattr(explore, "encode_images", lambda m, x, **kw: encoded.append(len(x)) or real(m, x, **kw))
    monkeypatch.setattr(explore, "project", lambda *a, **k: (_ for _ in ()).throw(AssertionError("projected")))
    at = run_page(PAGE, str(REPO / "checkpoints" / name))
    assert not at.exception, [e.value for e in at.exception]
    assert x_title(figures(at)[0]) == "PCA 1"
    at = next(r for r in at.radio if r.label == "Projection").set_value("umap").run()
    assert not at.exception and x_title(figures(at)[0]) == "UMAP 1"
    assert "scaleanchor" not in figures(at)[0]["layout"]["yaxis"]  # UMAP's axes are not equal
    # the sliders' first test image, and a flow's interpolation between two test images
    assert max(encoded, default=0) <= (2 if "vae" not in name else 1), encoded


def test_umap_is_computed_in_the_background_on_request(explore_runs):
    """A run without stored projections (the untrained flow): PCA at once; UMAP, asked
    for, is computed in a background thread while the page shows PCA and says so, then
    drawn (and written beside the checkpoint: not a shipped run)."""
    import time

    from genlab.evaluation import explore

    at = run_page(PAGE, explore_runs[FLOW])
    assert x_title(figures(at)[0]) == "PCA 1"
    at = next(r for r in at.radio if r.label == "Projection").set_value("umap").run()
    assert not at.exception
    assert "computed in the background" in "\n".join(i.value for i in at.info)
    assert x_title(figures(at)[0]) == "PCA 1"  # meanwhile
    deadline = time.time() + 300
    while x_title(figures(at)[0]) != "UMAP 1":
        assert time.time() < deadline, "UMAP never arrived"
        time.sleep(2)
        at.run()  # what the page's 2-s polling fragment does
        assert not at.exception, [e.value for e in at.exception]
    stored = explore.load_projections(explore_runs[FLOW], explore.checkpoint_digest(
        f"{explore_runs[FLOW]}/checkpoint.pt"))
    assert stored is not None and "umap" in stored.xy


def _images(monkeypatch) -> list[tuple[str, tuple, object]]:
    """(caption, array shape, width) of every st.image the page draws from now on."""
    import streamlit as st
    from streamlit.delta_generator import DeltaGenerator

    seen, real = [], DeltaGenerator.image

    def spy(self, image, caption=None, width="content", **kw):
        seen.append((caption or "", getattr(image, "shape", None), width))
        return real(self, image, caption=caption, width=width, **kw)

    monkeypatch.setattr(DeltaGenerator, "image", spy)
    monkeypatch.setattr(st, "image", lambda *a, **kw: spy(st._main, *a, **kw))  # bound at import
    return seen


def _select(monkeypatch, pick) -> None:
    """The scatter's selection, as selected_codes maps it back (a click, a box)."""
    from genlab.figures import latent_figures

    monkeypatch.setattr(latent_figures, "selected_codes", lambda fig, selection: list(pick))


def test_one_clicked_code_shows_its_input_and_reconstruction_at_a_sensible_size(explore_runs, monkeypatch):
    """Issue 24, item 10: one clicked point showed two images of about 500 px each (the
    long caption widened the element and the images stretched with it)."""
    _select(monkeypatch, [7])
    seen = _images(monkeypatch)
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    caption, shape, width = next(s for s in seen if s[0].startswith("1 of 2,000 codes selected"))
    assert width == shape[1]  # its own size in pixels, not stretched
    scale = shape[1] / (28 + 2 * 2)  # one column of 28-px images, 2-px padding, enlarged
    assert 140 <= 28 * scale <= 200, shape  # each image (it was about 500 px on screen)
    assert shape[0] == (2 * 28 + 3 * 2) * scale  # input above reconstruction
    assert any(b.label == "Put the first code shown in the sliders" for b in at.button)


def test_a_box_selection_shows_a_spread_of_its_classes(explore_runs, monkeypatch, data_root):
    """Issue 24, item 10: a box or lasso selects series by series (one per class), so the
    first 16 were all 0s; the 16 shown now come from every class selected."""
    from genlab.data import load_split
    from genlab.evaluation import explore

    labels = load_split("mnist", "test", data_root, limit=2000).y.numpy()
    pick = [int(i) for c in range(10) for i in np.flatnonzero(labels == c)]  # class by class
    _select(monkeypatch, pick)
    shown, real = [], explore.spread_sample
    monkeypatch.setattr(explore, "spread_sample", lambda *a, **k: shown.append(real(*a, **k)) or shown[-1])
    seen = _images(monkeypatch)
    at = run_page(PAGE, explore_runs[GOOD])
    assert not at.exception, [e.value for e in at.exception]
    caption, shape, width = next(s for s in seen if s[0].startswith("2000 of 2,000 codes selected"))
    assert "16 shown, spread over their classes" in caption
    assert set(labels[shown[-1]]) == set(range(10)) and len(shown[-1]) == 16
    assert width == shape[1] <= 960 + 17 * 2


def test_nice_codes_far_out_neither_shrink_the_scatter_nor_steer_the_sliders(monkeypatch, data_root, tmp_path):
    """Issue 24, item 6, on a copy of the shipped nice-mnist: a few codes reached 1,100 on
    PCA 1, so 99 % of the points sat in one dot and the principal-direction sliders
    (sd 53) moved nothing. Its copy is given a projections.npz as written before the
    robust directions (one such code at 1,100 on PCA 1, sd 53), so PCA and the directions
    are computed from the page's codes; its UMAP is still the stored one; nothing is
    written beside the checkpoint."""
    from genlab.evaluation import explore

    run = tmp_path / "nice-mnist"
    shutil.copytree(REPO / "checkpoints" / "nice-mnist", run)
    digest = explore.checkpoint_digest(run / "checkpoint.pt")
    stored = explore.load_projections(run, digest)
    xy = {m: v.copy() for m, v in stored.xy.items()}
    xy["pca"][7] = (1100.0, 0.0)
    axes = dataclasses.replace(stored.axes, sd=torch.full_like(stored.axes.sd, 53.0))
    explore.save_projections(run, dataclasses.replace(stored, xy=xy, axes=axes, robust=False), digest)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    real = explore.project
    monkeypatch.setattr(explore, "project", lambda x, method="pca", **k: real(x, method, **k)
                        if method == "pca" else (_ for _ in ()).throw(AssertionError("UMAP run")))
    at = run_page(PAGE, str(run))
    assert not at.exception, [e.value for e in at.exception]
    scatter = figures(at)[0]
    assert x_title(scatter) == "PCA 1"
    x0, x1 = scatter["layout"]["xaxis"]["range"]
    assert x1 - x0 < 60, x1 - x0  # the stored, plain PCA's view was 1,212 wide
    n_codes = sum(len(t["customdata"]) for t in scatter["data"])
    outside = [s for t in scatter["data"] if isinstance(t["marker"].get("symbol"), list)
               for s in t["marker"]["symbol"] if s.startswith("triangle")]
    assert n_codes == 2000 and len(outside) <= 20  # at most 1 % at the edge
    if outside:
        assert f"▲ {len(outside)} of 2,000 codes lie outside the view" in texts(at)
    pc1 = next(s for s in at.slider if s.label == "PC 1")
    sd = float(pc1.help.split("(sd ")[1].rstrip(")"))
    assert 2 < sd < 10, sd  # the codes' robust spread along PC 1 (the stored one: 53)
    at = next(r for r in at.radio if r.label == "Projection").set_value("umap").run()
    assert not at.exception and x_title(figures(at)[0]) == "UMAP 1"  # the stored UMAP
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
