"""Latent explorer (AppTest): a slider decodes live and fast, the same z gives the same
image back, the 2-D manifold is drawn, and a GAN, missing data, a corrupt checkpoint and
an empty folder each get a message instead of a traceback."""
from __future__ import annotations


from streamlit.testing.v1 import AppTest

from explore_fixture import (AE_GMM, CORRUPT, FLOW, GAN, explore_root, explore_runs,  # noqa: F401
                             figures, image_by_caption)
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
    points = [p for t in scatter["series"] for p in t["data"]]
    assert len(points) == 2000 and sorted(p[2] for p in points) == list(range(2000))  # every code, its index
    assert {t["name"] for t in scatter["series"]} <= {str(d) for d in range(10)}
    # a click selects a point, a box or a lasso a region (issue 13, item 1)
    assert all(t["selectedMode"] == "multiple" for t in scatter["series"])
    assert {"rect", "polygon"} <= set(scatter["toolbox"]["feature"]["brush"]["type"])
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


def test_a_shipped_run_draws_its_stored_projection_without_encoding(monkeypatch, data_root):
    """Issue 13, item 2: the shipped 20-D posterior-flow VAE (the run the page used to open
    on, with UMAP of 10,000 codes on its critical path) draws PCA and UMAP from its stored
    projections.npz: no test image beyond the first is encoded, and UMAP is not run."""
    from genlab import explore

    monkeypatch.setenv("GENLAB_RUNS", str(REPO / "checkpoints"))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    encoded, real = [], explore.encode_images
    monkeypatch.setattr(explore, "encode_images", lambda m, x, **kw: encoded.append(len(x)) or real(m, x, **kw))
    monkeypatch.setattr(explore, "project", lambda *a, **k: (_ for _ in ()).throw(AssertionError("projected")))
    at = run_page(PAGE, str(REPO / "checkpoints" / "vae-realnvp-post-mnist"))
    assert not at.exception, [e.value for e in at.exception]
    assert figures(at)[0]["xAxis"]["name"] == "PCA 1"
    at = next(r for r in at.radio if r.label == "Projection").set_value("umap").run()
    assert not at.exception and figures(at)[0]["xAxis"]["name"] == "UMAP 1"
    assert max(encoded, default=0) <= 1, encoded  # the sliders' first test image only


def test_umap_is_computed_in_the_background_on_request(explore_runs):
    """A run without stored projections (the untrained flow): PCA at once; UMAP, asked
    for, is computed in a background thread while the page shows PCA and says so, then
    drawn (and written beside the checkpoint: not a shipped run)."""
    import time

    from genlab import explore

    at = run_page(PAGE, explore_runs[FLOW])
    assert figures(at)[0]["xAxis"]["name"] == "PCA 1"
    at = next(r for r in at.radio if r.label == "Projection").set_value("umap").run()
    assert not at.exception
    assert "computed in the background" in "\n".join(i.value for i in at.info)
    assert figures(at)[0]["xAxis"]["name"] == "PCA 1"  # meanwhile
    deadline = time.time() + 300
    while figures(at)[0]["xAxis"]["name"] != "UMAP 1":
        assert time.time() < deadline, "UMAP never arrived"
        time.sleep(2)
        at.run()  # what the page's 2-s polling fragment does
        assert not at.exception, [e.value for e in at.exception]
    stored = explore.load_projections(explore_runs[FLOW], explore.checkpoint_digest(
        f"{explore_runs[FLOW]}/checkpoint.pt"))
    assert stored is not None and "umap" in stored.xy
