"""Copy the browser test's screenshots into docs/screenshots/ for the README, smaller:
1200 px wide, Home cut after its first run cards, 256-colour PNGs (each under 300 KB).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/app/test_app_browser.py
    .venv/bin/python docs/screenshots.py

Look at every one before committing it (the test checks behaviour, not looks)."""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SRC, DST = REPO / "test-artifacts" / "screenshots", REPO / "docs" / "screenshots"
WIDTH = 1200
MAX_HEIGHT = {"home": 2750}  # source pixels: the intro, the runs table and the first cards
MAX_BYTES = 300_000


def blank_row(im: Image.Image, below: int, sidebar: int = 320) -> int:
    """The lowest row above ``below`` that is page background right of the sidebar (the
    gap between two cards), so a cut never halves one; ``below`` if there is none."""
    import numpy as np

    px = np.asarray(im)[:below, sidebar:-20].astype(int)  # (H, W, 3)
    rows = np.flatnonzero(px.min(axis=(1, 2)) > 245)  # white from the sidebar to the edge
    return int(rows[-1]) + 1 if len(rows) else below


def shrink(src: Path, dst: Path) -> int:
    with Image.open(src) as im:
        im = im.convert("RGB")
        cut = MAX_HEIGHT.get(src.stem)
        if cut and im.height > cut:
            im = im.crop((0, 0, im.width, blank_row(im, cut)))
        if im.width > WIDTH:
            im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.LANCZOS)
        for colours in (256, 128, 64):
            im.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                dst, optimize=True)
            if dst.stat().st_size < MAX_BYTES:
                break
    return dst.stat().st_size


def main(names: list[str]) -> None:
    DST.mkdir(parents=True, exist_ok=True)
    for src in sorted(SRC.glob("*.png")):
        if not names or src.stem in names:
            size = shrink(src, DST / src.name)
            print(f"{DST / src.name}: {size / 1e3:.0f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
