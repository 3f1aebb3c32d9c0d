"""The browser decoder in a real browser (headless Chromium through Playwright, the shipped
runs served by `python app.py`): dragging a slider redraws the image on the input events
before the release, the release reports the code to Python, the canvas holds the server's
decode of the same code within 1/255 on random codes (the 2-D VAE and the MLP GAN, whose
batch norm is folded), and no request leaves localhost. The time from an input event to new
pixels and the server path's key-press-to-image time are measured, not tested (a time fails
on a busy machine, not on a bug; the 20 ms goal is benchmarks/app_browser.py's). Figures go
to test-artifacts/live_decoder.json; a screenshot to test-artifacts/screenshots/."""
from __future__ import annotations

import json
import statistics
import time
from urllib.parse import urlparse

import numpy as np
import torch

from genlab.evaluation import explore
from genlab.runs import store
from test_app_browser import (CHROMIUM, PAGE_TIMEOUT_MS, SHIPPED, SHOTS, WIDTH, _choose,
                              _image_src, _nudge, _open, _require_browser, _screenshot, _settle)

LOCAL = {"localhost", "127.0.0.1", "::1", ""}

# in the component's frame: set random codes through the sliders' input events and read
# the native-size canvas back after each (the timing is the input handler's, pixels drawn)
RANDOM_CODES_JS = """([n, seed]) => {
    let s = seed;
    const rnd = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
    const inputs = [...document.querySelectorAll('input[type=range]')];
    const native = document.getElementById('native');
    const out = [];
    for (let t = 0; t < n; t++) {
        for (const el of inputs) {
            const lo = Number(el.min), hi = Number(el.max);
            el.value = String(lo + rnd() * (hi - lo));
        }
        const t0 = performance.now();
        inputs.forEach(el => el.dispatchEvent(new Event('input', { bubbles: true })));
        const ms = (performance.now() - t0) / inputs.length;  // one input event: decode + draw
        const img = native.getContext('2d').getImageData(0, 0, native.width, native.height);
        out.push({ z: window.genlabDecoder.z, ms: ms,
                   red: Array.from(img.data.filter((_, i) => i % 4 === 0)) });
    }
    return out; }"""


def _frame(page):
    page.wait_for_selector('iframe[title*="latent_decoder"]', timeout=PAGE_TIMEOUT_MS)
    frame = next(f for f in page.frames if "latent_decoder" in f.url)
    frame.wait_for_function("() => Number(document.getElementById('out').dataset.draws || 0) > 0",
                            timeout=PAGE_TIMEOUT_MS)
    return frame


def _server_pixels(run: str, codes: list[list[float]]) -> np.ndarray:
    model, _, _ = store.load_model(SHIPPED / run, map_location="cpu")
    x = explore.decode_latents(model, torch.tensor(codes, dtype=torch.float32))  # (n, 1, H, W)
    return (x[:, 0] * 255).round().to(torch.uint8).flatten(1).numpy()


def _check_codes(frame, run: str, n: int = 20) -> dict:
    got = frame.evaluate(RANDOM_CODES_JS, [n, 12345])
    browser = np.array([g["red"] for g in got], dtype=np.int16)
    server = _server_pixels(run, [g["z"] for g in got]).astype(np.int16)
    diff = np.abs(browser - server)
    assert diff.max() <= 1, f"{run}: pixels differ by up to {diff.max()}/255"
    assert server.std() > 10  # the codes gave different, non-blank images
    ms = [g["ms"] for g in got]
    return {"max_pixel_diff": int(diff.max()), "pixels_differing": int((diff > 0).sum()),
            "median_ms": statistics.median(ms), "max_ms": max(ms), "n": n}


def _drag(page, frame, label: str) -> tuple[int, float]:
    """Drag the slider's thumb with the mouse: the draws during the drag, and the largest
    input-event-to-pixels time the component recorded."""
    thumb = frame.locator(f'input[aria-label="{label}"]')
    thumb.scroll_into_view_if_needed()
    box = thumb.bounding_box()
    y = box["y"] + box["height"] / 2
    draws0 = int(frame.evaluate("() => window.genlabDecoder.draws"))
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    worst = 0.0
    for i in range(1, 21):
        page.mouse.move(box["x"] + box["width"] * (0.5 + 0.02 * i), y)
        worst = max(worst, float(frame.evaluate("() => window.genlabDecoder.ms")))
    during = int(frame.evaluate("() => window.genlabDecoder.draws")) - draws0
    page.mouse.up()
    return during, worst


def _server_latency(page, presses: int = 5) -> list[float]:
    """Key press on the server's slider to a new image in the page (seconds), each press."""
    page.get_by_text("Decode in the browser while dragging").click()
    page.wait_for_selector('[data-testid="stImage"]:has-text("decode(z)")', timeout=PAGE_TIMEOUT_MS)
    _settle(page)
    times = []
    for _ in range(presses):
        before = _image_src(page, "decode(z)")
        t0 = time.perf_counter()
        _nudge(page, "z1", 1)
        page.wait_for_function("""([b]) => { const e = [...document.querySelectorAll(
            '[data-testid="stImage"]')].find(e => e.innerText.trim().startsWith('decode(z)'));
            return e && e.querySelector('img').src !== b && e.querySelector('img').complete }""",
                               arg=[before], timeout=PAGE_TIMEOUT_MS)
        times.append(time.perf_counter() - t0)
        _settle(page)
    return times


def test_sliders_decode_in_the_browser_as_they_move(server):
    _require_browser()
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    figures, requests = {}, []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, base_url=server)
            page.on("request", lambda r: requests.append((r.url, r.frame.url)))
            _open(page, "latent", "Latent explorer")
            _choose(page, "Run", "vae-2d-mnist")
            frame = _frame(page)
            during, worst = _drag(page, frame, "z1")
            assert during >= 5, f"only {during} redraws while dragging"  # before any release
            page.wait_for_selector('[data-testid="stMain"] :text("Released at z = (")',
                                   timeout=PAGE_TIMEOUT_MS)  # the code reached Python
            _settle(page)
            frame = _frame(page)
            figures["vae-2d-mnist"] = {**_check_codes(frame, "vae-2d-mnist"), "drag_redraws": during,
                                       "drag_worst_ms": worst}
            _screenshot(page, "latent-live")
            figures["server_path_s"] = _server_latency(page)
            _choose(page, "Run", "gan-mnist")  # it types the name: the list is long
            page.get_by_text("Decode in the browser while dragging").click()  # the switch back on
            figures["gan-mnist"] = _check_codes(_frame(page), "gan-mnist")
        finally:
            browser.close()
    (SHOTS.parent / "live_decoder.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))
    component = [u for u, f in requests if "latent_decoder" in f or "/component/" in u]
    assert component and all(urlparse(u).hostname in LOCAL for u in component), component
    foreign = [u for u, _ in requests if urlparse(u).hostname not in LOCAL | {None}
               and not u.startswith(("data:", "blob:", "about:"))]
    assert not foreign, foreign
