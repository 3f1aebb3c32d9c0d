"""What the figure modules (curves, latent_figures, likelihood_figures) share: the palette,
the plotly helpers every figure is built with (a base layout, a legend on top sized for
its names, a line or marker trace that is WebGL where it has thousands of points) and the
number helper for plain JSON (no streamlit here). Every figure is a
``plotly.graph_objects.Figure``: the app draws it with ``st.plotly_chart``, a notebook
with ``fig.show()``, and ``fig.write_html(path)`` saves it.

>>> import plotly.graph_objects as go
>>> fig = base_layout(go.Figure(scatter([1, 2, 3], [3.0, 2.5, 2.2], name="loss")), 260)
>>> fig.show()  # doctest: +SKIP
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
HIGHLIGHT_COLOR = "#d62728"
INK = "#222222"


def num(v, digits: int | None = None) -> float | None:
    """A float for JSON: None for NaN or infinity (plotly leaves a gap), rounded to
    ``digits`` significant digits if given (smaller pages)."""
    v = float(v)
    if not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}") if digits else v


GL_POINTS = 1000
"""A trace with more points than this is ``Scattergl`` (WebGL: one canvas, not one SVG
node a point), fewer a plain ``Scatter`` (crisper, and no WebGL context for a small trace)."""
FONT = dict(family="sans-serif", size=12, color=INK)
LEGEND_LINE_H = 22  # px per line of a legend on top
LEGEND_W = 520  # px such a legend is assumed to wrap at (Home's card column is about this wide)


def floats(values, digits: int | None = None) -> list[float | None]:
    """Plain floats for plotly's JSON: None (a gap in a line) for NaN or infinity, rounded
    to ``digits`` significant digits if given (smaller pages)."""
    return [num(v, digits) for v in values]


def scatter(x, y, *, mode: str = "lines", **kw) -> go.Scatter | go.Scattergl:
    """A line or marker trace of ``x`` against ``y``: :data:`GL_POINTS` decides
    ``Scattergl`` or ``Scatter``; ``kw`` are the trace's properties (name, line, marker,
    legendgroup, customdata, hovertemplate...).

    >>> scatter([1, 2, 3], [0.5, 0.25, 0.125], name="loss").type
    'scatter'
    >>> scatter(list(range(5000)), [0.0] * 5000).type
    'scattergl'
    """
    kind = go.Scattergl if len(x) > GL_POINTS else go.Scatter
    return kind(x=list(x), y=list(y), mode=mode, **kw)


def legend_top(names: list[str]) -> tuple[dict, int]:
    """A horizontal legend above the plot and the height it takes in px (estimated: about
    7 px a character plus the symbol, wrapped at :data:`LEGEND_W`).

    >>> legend, px = legend_top(["train (per step)", "validation (per epoch)"])
    >>> legend["orientation"], px
    ('h', 28)
    """
    width = sum(40 + 7 * len(n) for n in names)
    lines = max(1, math.ceil(width / LEGEND_W))
    return dict(orientation="h", x=0, xanchor="left", yanchor="bottom", y=1.0,
                font=dict(size=12), itemsizing="constant"), lines * LEGEND_LINE_H + 6


def base_layout(fig: go.Figure, height: int, *, width: int | None = None,
                margin: dict | None = None, **kw) -> go.Figure:
    """``fig`` laid out as every genlab figure is: ``height`` px (``width`` px where the
    layout needs one, e.g. equal axes, else the page's or notebook's width), white
    background with light grid lines, tight margins, no animation, hover labels of the
    points nearest the cursor; ``kw`` more layout. Returns ``fig``.

    >>> fig = base_layout(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), 240)
    >>> fig.layout.height, fig.layout.template.layout.plot_bgcolor
    (240, 'white')
    """
    fig.update_layout(template="plotly_white", height=height, width=width, font=FONT,
                      margin=dict(l=8, r=8, t=8, b=8) | (margin or {}), hoverlabel=dict(namelength=-1), **kw)
    fig.update_xaxes(automargin=True, zeroline=False)
    fig.update_yaxes(automargin=True, zeroline=False)
    return fig
