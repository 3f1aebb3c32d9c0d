"""A real browser: `python app.py` (what `make run` does) on a free localhost port with the shipped runs
(checkpoints/), driven by Debian's Chromium through Playwright.

One fresh server; every page is opened by its own URL (a new session each), the first of
them a page other than Home, which is the case that once ran the page file without the
router (pages.via_router). On each page: no exception box, no error alert, nothing the
browser's console calls an error (no failed request either), the router's sidebar and
menu, one real interaction on the pages that have one, and a full-page
screenshot to test-artifacts/screenshots/<page>.png (docs/screenshots/ holds the
reviewed copies the README shows). Each page's time is printed, not tested: a time fails on a
busy machine, not on a bug; the goals are benchmarks/app_browser.py's (issue 24, item 2).

Without /usr/bin/chromium or the playwright package the test skips locally and fails
under CI (env CI set), so a missing browser can never pass silently."""
from __future__ import annotations

import importlib.util
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from pages import PAGES
from runs_fixture import REPO

CHROMIUM = Path("/usr/bin/chromium")
SHIPPED = REPO / "checkpoints"
SHOTS = REPO / "test-artifacts" / "screenshots"
PAGE_TIMEOUT_MS = 180_000
WIDTH = 1400
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
TITLES = [p.title for p in PAGES]


def _require_browser():
    why = None
    if not CHROMIUM.exists():
        why = f"{CHROMIUM} not found (apt-get install chromium)"
    elif importlib.util.find_spec("playwright") is None:
        why = "the playwright package is not installed (pip install -r requirements-dev.txt)"
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


# -- waiting and looking ------------------------------------------------------------
def _settle(page) -> None:
    """Streamlit has finished the script run, and every chart and image has drawn."""
    page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                   .every(c => c.querySelector('.js-plotly-plot .main-svg'))
              && [...document.images].every(i => i.complete)
              && !document.querySelector('[data-testid="stSpinner"]')
              && !document.querySelector('[data-testid="stSkeleton"]')""", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(300)  # let the last layout pass settle
    page.wait_for_selector(IDLE, timeout=PAGE_TIMEOUT_MS)


def _open(page, url_path: str, title: str) -> None:
    page.goto(f"/{url_path}", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(f'[data-testid="stMainBlockContainer"] h1:has-text("{title}")',
                           timeout=PAGE_TIMEOUT_MS)
    _settle(page)


def _image_src(page, caption: str) -> str | None:
    """The source URL of the st.image whose caption starts with ``caption``."""
    return page.evaluate("""c => {
        const e = [...document.querySelectorAll('[data-testid="stImage"]')]
            .find(e => e.innerText.trim().startsWith(c));
        return e ? e.querySelector('img').src : null }""", caption)


def _wait_image_changed(page, caption: str, before: str) -> str:
    page.wait_for_function("""([c, b]) => {
        const e = [...document.querySelectorAll('[data-testid="stImage"]')]
            .find(e => e.innerText.trim().startsWith(c));
        return e && e.querySelector('img').src !== b }""", arg=[caption, before],
        timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    return _image_src(page, caption)


def _choose(page, label: str, text: str) -> None:
    """Pick the option of the selectbox ``label`` that starts with ``text``."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    page.keyboard.type(text)  # the list shows a screenful of options: filter it
    page.get_by_role("option", name=re.compile("^" + re.escape(text))).first.click()
    page.wait_for_function("([l, t]) => document.querySelector(`input[aria-label='${l}']`)"
                           ".value.startsWith(t)", arg=[label, text], timeout=PAGE_TIMEOUT_MS)
    _settle(page)


def _nudge(page, label: str, presses: int) -> None:
    """Move the slider ``label`` by ``presses`` steps with the keyboard, as a person would."""
    thumb = page.locator(f'input[type="range"][aria-label="{label}"]').first
    thumb.focus()
    for _ in range(abs(presses)):
        thumb.press("ArrowRight" if presses > 0 else "ArrowLeft")


def _check(page, name: str) -> None:
    """No exception box, no error alert, no traceback; the router's sidebar and menu."""
    main = page.locator('[data-testid="stMain"]').inner_text()
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, f"{name}: {boxes.first.inner_text()[:2000]}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: {errors.first.inner_text()[:1000]}"
    assert "Traceback" not in main, name
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Device" in sidebar and SHIPPED.name in sidebar, f"{name}: not run through app.py"
    links = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    menu = [t.strip().splitlines()[-1] for t in links.all_inner_texts()]  # after the icon's name
    assert menu == TITLES, f"{name}: menu {menu}"


MEDIA_URL = re.compile(r"https?://\S+/media/\S+")


def _watch_console(page) -> list[tuple[str, str | None]]:
    """What the browser's console calls an error, uncaught exceptions and failed requests,
    each with the media URL it names (None for the others), as they come.

    Issue 24, item 10: opened at its own URL, each page first asked /<page>/_stcore/health
    and /<page>/_stcore/host-config (Streamlit guessing its base path): two 404s a visit."""
    seen = []

    def media(text: str) -> str | None:
        m = MEDIA_URL.search(text)
        return m[0] if m else None

    page.on("console", lambda m: m.type == "error" and seen.append(
        (f"{m.text} ({m.location.get('url')})", media(m.text) or media(m.location.get("url") or ""))))
    page.on("pageerror", lambda e: seen.append((f"uncaught: {e}", None)))
    page.on("response", lambda r: r.status >= 400 and seen.append((f"HTTP {r.status} {r.url}", media(r.url))))
    return seen


def _console_errors(page, seen: list[tuple[str, str | None]]) -> list[str]:
    """The errors in ``seen``, less those about an image a later script run replaced, and
    every image on the page that did not load.

    Streamlit drops a script run's media files when the next run ends, so while a slider's
    key is held down the image of a run that the next one overtook can be gone before the
    browser asks for it (a 404, then Streamlit's "Image source error"); nothing of it is
    left on the page, where every image must have loaded."""
    images = page.evaluate("() => [...document.images].map(i => [i.src, i.complete && i.naturalWidth > 0])")
    shown = {src for src, _ in images}
    errors = [text for text, url in seen if not (url and url not in shown)]
    return errors + [f"image not drawn: {src}" for src, ok in images if not ok]


def _screenshot(page, name: str) -> None:
    """The whole page: the main area scrolls inside the window, which a plain full-page
    screenshot would cut, so grow the window to the content's height (until it settles:
    charts re-lay themselves out when the window changes)."""
    js = """() => { const c = document.querySelector('[data-testid="stMainBlockContainer"]');
                    const m = document.querySelector('[data-testid="stMain"]');
                    return c.getBoundingClientRect().top + m.scrollTop + c.scrollHeight }"""
    page.mouse.move(WIDTH - 8, 300)  # the right margin: no hover toolbar or sidebar button
    height = 0
    for _ in range(5):
        new = max(900, int(page.evaluate(js)))
        if new == height:
            break
        height = new
        page.set_viewport_size({"width": WIDTH, "height": height})
        page.wait_for_timeout(400)
        _settle(page)  # lazily drawn elements (grey skeletons) come in as the window grows
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": 900})


# -- the pages ------------------------------------------------------------------------
def clusters(page) -> None:
    """Another run, then another component count: the mixture is refitted."""
    _choose(page, "Run", "ae-gmm-mnist")
    own = re.search(r"The run's own mixture: (\d+) components",
                    page.locator('[data-testid="stMain"]').inner_text())
    assert own, "the autoencoder + GMM's own mixture is not shown"
    _nudge(page, "Components", -4)
    page.wait_for_selector(f"text=A mixture of {int(own[1]) - 4} components fitted on 2000 test codes",
                           timeout=PAGE_TIMEOUT_MS)
    _settle(page)


def home(page) -> None:
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert f"Runs ({len(list(SHIPPED.glob('*/config.json')))})" in main
    for name in ("vae-2d-mnist", "realnvp-fashion-mnist", "gan-mnist"):
        assert name in main


def _click_point(page, series: int = 0) -> None:
    """A real mouse click (move, down, up) on the first point of one trace of the Latent
    explorer's scatter, placed through the chart's own axes (data to pixels): a WebGL
    trace holds no element per point, so this asks plotly's graph div for its axes."""
    xy = page.evaluate("""s => {
        const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
        const t = gd._fullData[s], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(t.x[0]), box.top + ya._offset + ya.l2p(t.y[0])] }""", series)
    page.mouse.move(*xy)
    page.wait_for_timeout(200)  # the hover label first, as a person sees it
    page.mouse.down()
    page.mouse.up()


def latent(page) -> None:
    """Opened without a run chosen, the page is on a 2-D model, and a real click on a point
    shows that image (issue 13, items 1 and 2). Then the 2-D VAE from its Home details card;
    a slider decodes a new image."""
    assert page.get_by_role("combobox", name="Run").input_value().split(" ")[0] in (
        "vae-2d-iwae5-mnist", "vae-2d-mnist", "ae-gmm-mnist")  # a 2-D run, not a 20-D one and its UMAP
    _click_point(page)
    page.wait_for_selector("text=/1 of 2,000 codes selected/", timeout=30_000)
    _settle(page)
    assert _image_src(page, "1 of 2,000 codes selected")
    page.goto("/", timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    tile = page.locator('[data-testid="stVerticalBlock"]:has(> div strong:text-is("vae-2d-mnist"))').last
    tile.locator("button", has_text="Details").click()
    page.wait_for_selector('h3:has-text("vae-2d-mnist")', timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    card = page.locator('[data-testid="stVerticalBlock"]:has(> div h3:has-text("vae-2d-mnist"))').last
    card.locator("button", has_text="Latent explorer").click()
    page.wait_for_url("**/latent", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('h1:has-text("Latent explorer")', timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    assert page.get_by_role("combobox", name="Run").input_value().startswith("vae-2d-mnist")
    # issue 15: an MLP decoder starts in the browser (tests/app/test_live_decoder_browser.py);
    # the server's sliders are one switch away
    page.get_by_text("Decode in the browser while dragging").click()
    page.wait_for_selector('[data-testid="stImage"]:has-text("decode(z)")', timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    before = _image_src(page, "decode(z)")
    _nudge(page, "z1", 40)
    after = _wait_image_changed(page, "decode(z)", before)
    assert after and after != before
    assert "server time" in page.locator('[data-testid="stMain"]').inner_text()


def interpolate(page) -> None:
    """A strip between two test images of the 20-D VAE, then another pair; 24 frames wrap
    into rows of 12 frames that keep their size (issue 13, item 13)."""
    _choose(page, "Run", "vae-20d-mnist")
    before = _image_src(page, "10 frames")
    assert before, "no interpolation strip"
    page.locator("button", has_text="Random pair").click()
    _wait_image_changed(page, "10 frames", before)
    _nudge(page, "Frames", 14)
    page.wait_for_selector("text=/24 frames, .*in 2 rows of 12/", timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    width = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stImage"]')]
        .find(e => e.innerText.trim().startsWith('24 frames')).querySelector('img').width""")
    assert width / 12 >= 60, f"{width / 12:.0f} px a frame"


def compare(page) -> None:
    """The MNIST runs, a third one added: each in the samples, the eval tables and the
    bound (a GAN has none)."""
    _choose(page, "Dataset", "mnist")
    page.get_by_role("combobox", name="Runs (2 to 4)").click()
    page.keyboard.type("vae-20d-mnist")
    page.get_by_role("option", name=re.compile("^vae-20d-mnist")).first.click()
    page.keyboard.press("Escape")
    page.wait_for_selector('[data-testid="stMain"] p:has-text("vae-20d-mnist")', timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    picked = page.locator('[data-testid="stMultiSelect"] [data-tag]')
    assert picked.count() == 3, picked.all_inner_texts()
    assert page.locator('[data-testid="stTable"]').count() >= 2  # eval table, bound table
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 2  # curves, bound


def posterior(page) -> None:
    """Issue 15: another test image of the 2-D VAE, another posterior."""
    _choose(page, "Run (VAEs with a 2-D latent)", "vae-2d-mnist")
    metric = page.locator('[data-testid="stMetric"]').first
    before = metric.inner_text()
    box = page.get_by_label(re.compile(r"^Test image \(0-"))
    box.fill("3")
    box.press("Enter")
    page.wait_for_function("b => document.querySelector('[data-testid=\"stMetric\"]').innerText !== b",
                           arg=before, timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 3  # codes, posterior, IW


STEPS = {"clusters": clusters, "": home, "latent": latent, "interpolate": interpolate,
         "compare": compare, "posterior": posterior}
ORDER = ["clusters", "", "latent", "train", "interpolate", "compare", "posterior",
         "likelihood", "lab"]  # not Home first
LOCAL = ("localhost", "127.0.0.1")


def test_every_page_in_a_browser(server):
    _require_browser()
    from playwright.sync_api import sync_playwright

    assert sorted(ORDER) == sorted(p.url_path for p in PAGES)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, base_url=server)
            outside = []  # issue 13, item 14: the app works offline: it asks nothing of the net
            page.on("request", lambda r: urlparse(r.url).hostname not in LOCAL
                    and urlparse(r.url).scheme in ("http", "https", "ws", "wss") and outside.append(r.url))
            console = _watch_console(page)
            firsts = {}
            for url_path in ORDER:
                spec = next(s for s in PAGES if s.url_path == url_path)
                name, t0 = url_path or "home", time.perf_counter()
                console.clear()
                _open(page, url_path, spec.title if url_path else "genlab")  # a new session
                firsts[name] = time.perf_counter() - t0
                _check(page, name)
                if url_path in STEPS:
                    STEPS[url_path](page)
                    _check(page, name)
                errors = _console_errors(page, console)
                assert not errors, f"{name}: console errors {errors}"
                _screenshot(page, name)
                print(f"{name}: first visit {firsts[name]:.1f} s, with its steps "
                      f"{time.perf_counter() - t0:.1f} s")  # a figure, not a test (-s shows it)
            assert not outside, f"requests outside localhost: {sorted(set(outside))[:5]}"
        finally:
            browser.close()
