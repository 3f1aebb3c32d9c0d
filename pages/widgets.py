"""What several pages draw the same way (not a page itself): a run's state as a badge,
a run's sample grid read from its folder, and Home's card of a run (built here, cached in
pages/cache.py)."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

import plotly.graph_objects as go
from PIL import Image, UnidentifiedImageError

from genlab.figures import curves_figure
from genlab.status import RunSummary, summarize
from genlab.tables import eval_line, key_config, metrics_rows, units_note

STATE_ICON = {"done": ":green[:material/check_circle:]", "running": ":blue[:material/pending:]",
              "starting": ":blue[:material/pending:]", "stopped": ":orange[:material/pause_circle:]",
              "failed": ":red[:material/error:]", "interrupted": ":orange[:material/warning:]",
              "broken": ":red[:material/report:]", "unknown": ":gray[:material/help:]"}
"""Markdown badges (Streamlit's bundled Material icons: no emoji font needed)."""


def read_image(path: str | os.PathLike | None) -> tuple[bytes | None, str | None]:
    """PNG bytes of an image file checked by Pillow, or (None, why it cannot be shown)."""
    if path is None:
        return None, None
    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except UnidentifiedImageError:
        return None, f"{Path(path).name}: not a readable image"
    except (OSError, ValueError) as e:
        return None, f"{Path(path).name}: unreadable image ({str(e).splitlines()[0][:120]})"
    return data, None


EMPTY = "—"
"""What an empty table cell shows (st.dataframe's ``placeholder``; its default is "None")."""


def number_columns(rows: list[dict], digits: dict[str, int]) -> dict:
    """st.dataframe column configs: ``digits[column]`` decimals for those columns."""
    import streamlit as st

    present = set(rows[0]) if rows else set()
    return {c: st.column_config.NumberColumn(format=f"%.{d}f") for c, d in digits.items() if c in present}


class Card(NamedTuple):
    """Everything Home's card shows about a run."""
    summary: RunSummary
    config: str  # key options in one line
    rows: list[dict]  # metrics by source (train, val, test)
    eval: str  # eval.json in one line
    units: str
    figure: go.Figure | None  # training curves
    image: bytes | None  # the latest sample grid
    image_error: str | None  # why it cannot be shown


def run_card(run_dir: str | os.PathLike) -> Card:
    """A run's card; never raises on a broken run (its summary says why)."""
    s = summarize(run_dir)
    image, image_error = read_image(s.sample)
    return Card(s, key_config(s), metrics_rows(s), eval_line(s.eval), units_note(s),
                curves_figure(s.metrics) if s.metrics else None, image, image_error)
