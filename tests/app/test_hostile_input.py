"""Hostile input to the app (issue 30, item 4), through the router as a browser drives it:
URL query parameters, an unknown page, uploaded files, typed text and typed run folders.
Each gets one line saying what was wrong and what is allowed, never a traceback, and the
session goes on: the rest of the page draws and a later good input works. The last test
throws seeded random query strings at every page. (tests/test_lab_hostile.py checks the
lab's text, pictures and URL below the app.)"""
from __future__ import annotations

import io
import os
import random
import re
import struct
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from genlab.lab.state import PARSERS
from genlab.lab.targets import MAX_IMAGE_BYTES, MAX_UPLOAD_MB
from genlab.models.vae import VAEConfig
from genlab.runs import store
from genlab.training.train import TrainConfig
from pages import PAGES
from pages.ui.train_ui import WATCH
from runs_fixture import REPO, TIMEOUT, texts

TRAIN, LAB = "pages/train.py", "pages/lab.py"
SMALL = {"hidden": "16", "couplings": "2"}  # the lab's RealNVP kept tiny
RUNS = ("alpha", "beta")


@pytest.fixture(scope="module")
def configured(tmp_path_factory, data_root) -> Path:
    """A run folder of two configured runs, never trained (nothing here reads their weights)."""
    root = tmp_path_factory.mktemp("hostile-runs")
    for name in RUNS:
        store.write_config(store.new_run_dir(root, name), "vae", VAEConfig(latent_dim=2, hidden=(8,)),
                           TrainConfig(dataset="mnist", epochs=1, data_root=str(data_root), device="cpu"))
    return root


@pytest.fixture
def app_runs(configured, data_root, monkeypatch) -> Path:
    """The app, run in this process by AppTest, lists the two configured runs."""
    monkeypatch.setenv("GENLAB_RUNS", str(configured))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.chdir(REPO)
    return configured


def open_page(file: str, **params: str) -> AppTest:
    """A new session whose URL holds ``params``, run through app.py onto ``file``."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    return ok(ok(at.run()).switch_page(file).run())


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value[:300] for e in at.exception]
    assert "Traceback" not in texts(at)
    return at


def said(element) -> str:
    """What an alert says, its markdown escapes (pages.ui.widgets.plain) undone."""
    return re.sub(r"\\(.)", r"\1", element.value)


def one_line(lines: list[str], needle: str) -> str:
    """The one line holding ``needle``; it is one short line."""
    hits = [s for s in lines if needle in s]
    assert len(hits) == 1, (needle, lines)
    assert "\n" not in hits[0] and len(hits[0]) < 600, hits[0][:700]
    return hits[0]


def steps(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("step **")]


def png(width: int, height: int, data: bytes = b"") -> bytes:
    """A PNG declaring width x height grey pixels, holding ``data`` compressed."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))


def picture() -> bytes:
    a = np.full((30, 40), 255, np.uint8)
    a[8:22, 10:30] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


# -- 1. URL query parameters ----------------------------------------------------------------
@pytest.mark.parametrize("watch,why", [("../../etc", "is not a run name"),
                                       ("x" * 100_000, "is not a run name"),
                                       ("a\x00b\x07", "is not a run name"),
                                       ("no-such-run", "names no run in the run folders")],
                         ids=["dotdot", "100kB", "control", "unknown"])
def test_train_says_a_hostile_watch_in_one_line_and_watches_a_listed_run(app_runs, watch, why):
    at = open_page(TRAIN, watch=watch)
    line = one_line([said(w) for w in at.warning], "URL parameter watch=")  # short: the value is cut
    assert why in line and "\x00" not in line
    if why == "is not a run name":
        assert "letters, digits, '.', '_' and '-', at most 100 characters" in line
    watched = Path(at.session_state[WATCH])  # a listed run, not ../../etc
    assert watched.parent == app_runs and line.endswith(f"watching ` {watched.name} ` instead.")
    assert at.query_params["watch"] == watched.name  # the URL names the run shown, for a refresh
    other = str(app_runs / next(n for n in RUNS if n != watched.name))
    ok(at.selectbox(key=WATCH).set_value(other).run())  # the session goes on
    assert not [w for w in at.warning if "URL parameter" in w.value]
    assert at.query_params["watch"] == Path(other).name and at.subheader[0].value.endswith(Path(other).name)


def test_train_watches_the_run_a_good_url_names(app_runs):
    for name in RUNS:
        at = open_page(TRAIN, watch=name)
        assert at.session_state[WATCH] == str(app_runs / name) and not at.warning


def test_the_lab_says_each_hostile_url_value_in_one_short_line_and_still_steps():
    at = open_page(LAB, target="text", text="x" * 100_000, seed="9" * 5000, batch="-5", lr="1e999",
                   families="a\x00b", **{"k" * 100_000: "1"}, **SMALL)
    lines = [said(w) for w in at.warning]
    assert len(lines) == 6, lines
    for needle in ("text='xxxx", "seed='9999", "batch='-5'", "lr='1e999'", "families='a\\x00b'", "'kkkk"):
        one_line(lines, needle)
    assert "(100,000 characters)" in one_line(lines, "text=")
    assert "Text “genlab”" in texts(at)  # the default word, drawn
    ok(at.button(key="lab-step").click().run())
    assert steps(at) and steps(at)[0].startswith("step **1**")
    assert at.query_params["text"] == "genlab" and at.query_params["seed"] == "0"  # the URL cleaned


def test_a_url_value_cannot_put_a_link_or_markup_into_a_line():
    hostile = "www.e.x [a](http://e.x)<b>:red[c]`$d$!"  # a link, HTML, colour, code, maths
    at = open_page(LAB, families=hostile, **SMALL)
    body = one_line([w.value for w in at.warning], "families=")
    assert re.search(r"(?<!\\)[\[\]()<>!:`$]", body) is None, body  # every one escaped
    assert "www\\." in body and "http\\://" in body  # no bare address becomes a link
    assert repr(hostile) in said(at.warning[0])  # and it reads as typed


def test_an_unknown_page_path_runs_home_and_the_app_goes_on(app_runs):
    """A browser at /no-such-page: Streamlit says "Page not found" in its own dialog and
    runs the default page. AppTest has no URL path: it asks for a page id nothing has."""
    at = ok(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run())
    at._page_hash = "no-such-page"
    assert ok(at.run()).title[0].value == "genlab"  # Home
    at.query_params.update(SMALL)
    assert ok(at.switch_page(LAB).run()).title[0].value == "2-D lab"


# -- 2. uploaded files --------------------------------------------------------------------
def test_the_upload_limit_is_one_figure_in_the_config_and_the_code():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_UPLOAD_MB and MAX_IMAGE_BYTES == MAX_UPLOAD_MB * 2 ** 20


def test_hostile_uploads_are_one_line_each_and_a_good_picture_works_after():
    at = open_page(LAB, **SMALL)
    ok(at.selectbox(key="lab-target").set_value("image").run())
    assert at.file_uploader(key="lab-upload").proto.max_upload_size_mb == MAX_UPLOAD_MB
    good = picture()
    for name, data, says in [
            ("notes.png", b"plain text, not a picture", "not a readable image (UnidentifiedImageError)"),
            ("cut.png", good[:len(good) // 2], "not a readable image (image file is truncated"),
            ("bomb.png", png(30_000, 30_000), "the image declares more than the 16,777,216 pixels"),
            ("big.png", good + bytes(50 * 2 ** 20), "more than the 10,485,760 (10 MB) allowed")]:
        ok(at.file_uploader(key="lab-upload").set_value((name, data, "image/png")).run())
        line = one_line([said(e) for e in at.error], "Picture refused: ")
        assert says in line and "upload a" in line, (name, line)
        assert at.selectbox(key="lab-target").value == "image" and at.button(key="lab-step")  # controls drawn
    ok(at.file_uploader(key="lab-upload").set_value(("ok.png", good, "image/png")).run())
    assert not at.error and "Uploaded image" in texts(at)
    ok(at.button(key="lab-step").click().run())
    assert steps(at)[0].startswith("step **1**")


# -- 3. typed text ----------------------------------------------------------------------
def test_typed_text_is_refused_in_one_line_and_the_last_word_stays():
    at = open_page(LAB, target="text", text="Hi", **SMALL)
    assert "Text “Hi”" in texts(at)
    for typed, says in [("🙂🙂", "no glyph for '🙂'"), ("     ", "got only spaces"),
                        ("a\tb", "U+0009"), ("\u202eabc", "U+202E"), ("Café", "no glyph for 'é'")]:
        ok(at.text_input(key="lab-text").set_value(typed).run())
        line = one_line([said(w) for w in at.warning], "Text refused: ")
        assert says in line and "Still showing 'Hi'" in line, line
        assert "Text “Hi”" in texts(at) and steps(at)  # the experiments still draw
    ok(at.text_input(key="lab-text").set_value("Yo").run())
    assert not at.warning and "Text “Yo”" in texts(at) and at.query_params["text"] == "Yo"


# -- 4. run folders typed into the sidebar ---------------------------------------------------
def test_bad_run_folders_are_named_one_line_each_and_the_others_used(app_runs, tmp_path, monkeypatch):
    a_file, locked, missing = tmp_path / "a-file", tmp_path / "locked", tmp_path / "not-yet"
    a_file.write_text("x")
    locked.mkdir()
    if os.geteuid() == 0:  # root lists any folder: deny it as the kernel would another user
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == locked
                            else real(p, mode, *a, **k))
    else:
        locked.chmod(0)
    bad = {a_file: "is a file, not a folder", a_file / "runs": "is inside a file",
           "a\x00b": "has a NUL character in its name", "~no-such-user-here/runs": "names the home folder of no user",
           "n" * 5000: "cannot be read (File name too long)", locked: "cannot be read (permission denied)"}
    try:
        at = ok(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run())
        typed = [missing, *bad, app_runs]
        ok(at.text_input(key="runs_folders").set_value(", ".join(map(str, typed))).run())
        lines = [said(w) for w in at.sidebar.warning]
        assert len(lines) == len(bad), lines
        for why in bad.values():
            assert "skipped, the other folders are used" in one_line(lines, why)
        assert at.session_state["runs_roots"] == [missing, app_runs]  # the missing one stays: saving makes it
        caption = "\n".join(c.value for c in at.sidebar.caption)
        assert f"{missing} ` does not exist yet" in caption and str(app_runs) in caption
        assert all(f"**{n}**" in "\n".join(m.value for m in at.markdown) for n in RUNS)  # Home lists them
        ok(at.text_input(key="runs_folders").set_value(str(app_runs)).run())
        assert not at.sidebar.warning and at.session_state["runs_roots"] == [app_runs]
    finally:
        locked.chmod(0o755)


def test_when_no_typed_folder_can_be_used_the_default_ones_are(app_runs, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    at = ok(AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run())
    ok(at.text_input(key="runs_folders").set_value(str(a_file)).run())
    assert "so the default ones are used" in one_line([said(w) for w in at.sidebar.warning], "is a file")
    assert at.session_state["runs_roots"] == [app_runs]  # GENLAB_RUNS, as the box first said


# -- fuzz: random query strings at every page -----------------------------------------------
HOSTILE = ["../", "..\\..\\", "/etc/passwd", "\x00", "\x1b[31m", "\t", "\n", "é", "🙂", "\u202e", "中文",
           "%00", "&", "=", "#", "?", "<script>", "[x](http://e.example)", "`", "$x$", ":red[x]",
           "9" * 40, "-1", "-99999999999", "1e999", "nan", "inf", "0x10", "", " ", "x" * 10_000]
KEYS = [*PARSERS, "watch", "run", "page", "embed"]
CASES = 2  # a page


def random_query(rng: random.Random) -> dict[str, str]:
    word = lambda: "".join(rng.choice(HOSTILE) for _ in range(rng.randint(1, 3)))  # noqa: E731
    return {(rng.choice(KEYS) if rng.random() < 0.7 else word()): word() for _ in range(rng.randint(1, 4))}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.url_path or "home")
def test_random_hostile_query_strings_never_raise(app_runs, page):
    for case in range(CASES):
        query = random_query(random.Random(f"{page.url_path}-{case}"))
        at = open_page(page.file, **{**SMALL, **query})
        assert at.title, query  # the page drew
        for alert in [*at.warning, *at.error]:
            assert "\n" not in alert.value and len(alert.value) < 2000, (query, alert.value[:300])
