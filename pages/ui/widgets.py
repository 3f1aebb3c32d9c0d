"""What several pages draw the same way (not a page itself): a run's state as a badge,
a run's sample grid read from its folder, Home's card of a run (built here, cached in
pages/ui/cache.py), and text from outside (a URL, a typed folder) made safe to show in
Streamlit's markdown (:func:`plain`, :func:`code`)."""
from __future__ import annotations

import io
import numbers
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from PIL import Image, UnidentifiedImageError

from genlab.errors import first_line
from genlab.figures.curves import curves_figure
from genlab.figures.tables import eval_line, key_config, metrics_rows, units_note
from genlab.runs.status import RunSummary, summarize

if TYPE_CHECKING:
    import plotly.graph_objects as go

STATE_ICON = {"done": ":green[:material/check_circle:]", "running": ":blue[:material/pending:]",
              "starting": ":blue[:material/pending:]", "stopped": ":orange[:material/pause_circle:]",
              "failed": ":red[:material/error:]", "interrupted": ":orange[:material/warning:]",
              "broken": ":red[:material/report:]", "unknown": ":gray[:material/help:]"}
"""Markdown badges (Streamlit's bundled Material icons: no emoji font needed)."""


_MARKDOWN = re.compile(r"([\\`*_\[\]<>()!#|~$:{}])")


def plain(text: str) -> str:
    """``text`` (which may hold a URL's or a user's words) as markdown that shows it as
    typed: no link, picture, emphasis, code, maths or colour directive can start inside
    it. Every character markdown acts on is escaped with a backslash (CommonMark escapes
    any ASCII punctuation), ``://`` and ``www.`` so that no bare address becomes a link,
    and a line break becomes a space (a message is one line)."""
    text = " ".join(str(text).splitlines())
    return re.sub(r"(?i)\b(www)\.", r"\1\\.", _MARKDOWN.sub(r"\\\1", text))


def code(text: str, most: int = 200) -> str:
    """``text`` as an inline code span shown verbatim (a folder's path): cut to ``most``
    characters with its length said, characters that do not print as their escapes (a NUL
    as \\x00), fenced by more backticks than it holds in a row."""
    text = str(text)
    cut = f"{text[:most]}… ({len(text):,} characters)" if len(text) > most else text
    cut = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    fence = "`" * (max((len(m) for m in re.findall("`+", cut)), default=0) + 1)
    return f"{fence} {cut} {fence}"


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
        return None, f"{Path(path).name}: unreadable image ({first_line(e, 120)})"
    return data, None


EMPTY = "—"
"""What an empty table cell shows (never "None" or "nan")."""


def table(rows: list[dict], formats: dict[str, str] | None = None, *, where=None) -> None:
    """Rows of figures as a static table (``st.table``): ``formats[column]`` a format spec
    (".2f", ".4g", "{:.0%}") for those columns, whole numbers as such, EMPTY for a missing
    value, no index. ``where``: the container to draw in (default: the page).

    Not ``st.dataframe``: its data grid is a megabyte of JavaScript, beside Arrow's, that a
    fresh browser parses on the first page that shows one. A bare page with one 8-row
    st.dataframe was drawn in 1.97 s, with st.table 1.34 s, with neither 0.99 s (Chromium,
    this 2-core machine, a new browser each time: runs of benchmarks/app_browser.py's
    first_render). These tables are a few to a few dozen rows to read, not data to scroll
    or sort."""
    import pandas as pd
    import streamlit as st

    df = pd.DataFrame(rows)
    for c in df.columns:  # a column of whole numbers with gaps stays whole (not 3.000000)
        col = df[c]
        if col.dtype.kind == "f" and c not in (formats or {}) and (col.dropna() % 1 == 0).all():
            df[c] = col.astype("Int64")

    def number(spec: str):  # a column may hold a word too ("exact"): only numbers are formatted
        spec = spec if spec.startswith("{") else f"{{:{spec}}}"
        return lambda v: spec.format(v) if isinstance(v, numbers.Number) and not isinstance(v, bool) else str(v)

    specs = {c: number(f) for c, f in (formats or {}).items() if c in df.columns}
    styler = df.style.format(na_rep=EMPTY).format(specs, na_rep=EMPTY).hide(axis="index")
    (where or st).table(styler)


PLOTLY_CONFIG = {"displaylogo": False, "scrollZoom": False,
                 "modeBarButtonsToRemove": ["sendDataToCloud"]}
"""plotly.js's options for every chart the app draws: no plotly logo or cloud button (the
modebar keeps zoom, pan, autoscale and selection), no scroll-wheel zoom (the page scrolls)."""


def draw(fig, *, key: str, where=None, **kw):
    """Draw a genlab figure (a ``plotly.graph_objects.Figure`` from genlab/figures/) with
    Streamlit's ``st.plotly_chart`` in ``where`` (default: the page): the figure's own
    ``layout.height``, its ``layout.width`` where it sets one (equal axes), else the
    page's width. ``kw`` passes on (``on_select``, ``selection_mode``). Returns what the
    element returns: its selection state when selectable."""
    import streamlit as st

    where = where or st
    width = "content" if fig.layout.width else "stretch"  # "content": the figure's layout.width
    return where.plotly_chart(fig, width=width, height="content", key=key,
                              config={**PLOTLY_CONFIG, **kw.pop("config", {})}, **kw)


TEMPERATURE_HELP = ("Samples drawn now from the checkpoint at temperature T: the prior's draws "
                    "scaled by T (flows, Gaussian latents and the flow prior's base: N(0, T^2 I), "
                    "Kingma & Dhariwal 2018), the mixture's components scaled (autoencoder + GMM), "
                    "the GAN's noise truncated (T <= 1; it was trained on N(0, I)). T = 1 is the "
                    "model as trained; lower T gives more typical, less varied images.")


def temperature_note(model, asked: float) -> tuple[float, str]:
    """The temperature ``model`` samples at for a slider set to ``asked`` and what to say
    when that differs: its highest (the GAN's truncation stops at 1), or 1 for a prior with
    no scale (Bernoulli units)."""
    rng = model.temperature_range()
    if rng is None:
        return 1.0, f"; {model.kind} samples at T = 1 only (its {model.caps.prior} prior has no scale)"
    if asked > rng[1]:
        return rng[1], f"; {model.kind} goes up to T = {rng[1]:g}"
    return asked, ""


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
