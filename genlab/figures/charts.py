"""What the figure modules (figures, latent_figures, likelihood_figures) build: an Apache
ECharts option, drawn in the app by Streamlit's own ``st.echarts_chart``, with the height
it is laid out for; and the palette and number helpers they share (no streamlit here).

Why ECharts and not plotly: Streamlit's ECharts script is 1.2 MB against plotly's 4.7 MB,
and draws on a canvas. A fresh browser spends about 1.3 s of its one main thread on
plotly (running the script, then the first chart) before a page with a chart is drawn.
A bare page with a 2,000-point scatter was drawn in 2.11 s with ECharts and in 3.15 s
with plotly (1.33 s with no chart; Chromium on this 2-core machine, a fresh browser and
server each time, median of 3)."""
from __future__ import annotations

import math
from typing import NamedTuple

TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
HIGHLIGHT_COLOR = "#d62728"
INK = "#222222"


class Chart(NamedTuple):
    """An ECharts option (JSON-compatible: Python numbers, strings, lists and dicts; no
    callbacks), the height in pixels it is laid out for, and its width where the layout
    needs one (equal axes), else None: the page's width."""
    spec: dict
    height: int
    width: int | None = None


def num(v, digits: int | None = None) -> float | None:
    """A float for JSON: None for NaN or infinity (ECharts leaves a gap), rounded to
    ``digits`` significant digits if given (smaller pages)."""
    v = float(v)
    if not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}") if digits else v


def value_axis(name: str = "", *, log: bool = False, **kw) -> dict:
    """A numeric axis titled ``name`` (log scale if asked), its title in the middle, where
    ECharts (6) would otherwise move it away from the tick labels, off the chart."""
    return {"type": "log" if log else "value", "name": name, "nameLocation": "middle",
            "nameGap": 28, "nameMoveOverlap": False, "scale": True, **kw}
