"""ECharts options of latent spaces (genlab.charts; no streamlit here): codes coloured by
class, with click and box or lasso selection (the Latent explorer, the True posterior's
image picker), a mixture's components over them and its weights (Clusters). Pages place
them; ``selected_codes`` maps a selection back to the codes."""
from __future__ import annotations

import numpy as np

from .charts import CLASS_COLORS, HIGHLIGHT_COLOR, INK, TRAIN_COLOR, Chart, num, value_axis

# the plot area in pixels: fixed (ECharts' own "outer bounds" would move it with the tick
# labels), so that equal axes are equal on screen and a test can place a click on a point
LEFT, RIGHT, TOP, BOTTOM = 56, 130, 44, 44
DIGITS = 5  # significant digits of a coordinate sent to the browser


def _layout(xy_list: list[np.ndarray], axes: tuple[str, str], height: int, equal: bool) -> tuple[dict, int | None]:
    """The grid and axes for points that span ``xy_list``, and the chart's width in pixels
    when ``equal`` (a square plot area over one range on both axes: one unit the same
    length on each) or None (the page's width)."""
    pts = np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in xy_list]) if xy_list else np.zeros((1, 2))
    pts = pts[np.isfinite(pts).all(axis=1)]
    lo, hi = (pts.min(axis=0), pts.max(axis=0)) if len(pts) else (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-6) * 1.05
    if equal:
        half = np.full(2, half.max())
    rng = [(num(c - h, DIGITS), num(c + h, DIGITS)) for c, h in zip(centre, half)]
    side = height - TOP - BOTTOM
    spec = {"grid": {"left": LEFT, "right": RIGHT, "top": TOP, "bottom": BOTTOM, "outerBoundsMode": "none"},
            "xAxis": value_axis(axes[0], min=rng[0][0], max=rng[0][1], scale=False, nameGap=26,
                                axisLabel={"hideOverlap": True, "showMinLabel": False, "showMaxLabel": False}),
            "yAxis": value_axis(axes[1], min=rng[1][0], max=rng[1][1], scale=False, nameGap=40,
                                axisLabel={"hideOverlap": True, "showMinLabel": False, "showMaxLabel": False})}
    return spec, (LEFT + RIGHT + side if equal else None)


def _class_series(xy, labels, class_names, *, size: int = 5, opacity: float = 0.75,
                  selectable: bool = True) -> list[dict]:
    """One scatter series per class; each point is [x, y, index into xy], so a selection
    maps back to the codes whatever the series (``selected_codes``)."""
    xy = np.asarray(xy, dtype=float)
    labels = np.asarray(labels if labels is not None else np.zeros(len(xy), int))
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        s = {"type": "scatter", "name": str(name), "symbolSize": size,
             "itemStyle": {"color": CLASS_COLORS[int(c) % len(CLASS_COLORS)], "opacity": opacity},
             "data": [[num(a, DIGITS), num(b, DIGITS), int(i)] for (a, b), i in zip(xy[idx], idx)],
             "tooltip": {"formatter": f"{name} · image {{@[2]}}"}}
        if selectable:
            s |= {"selectedMode": "multiple",
                  "select": {"itemStyle": {"borderColor": INK, "borderWidth": 2, "opacity": 1}}}
        out.append(s)
    return out


def latent_scatter_figure(xy, labels=None, class_names=None, *, axes=("z1", "z2"),
                          equal: bool = True, height: int = 480, mark: int | None = None) -> Chart:
    """Codes (N, 2) coloured by class. A click selects a point (another click on it lets it
    go), the toolbar's box and lasso select a region, a double-click clears. ``equal``
    keeps one unit the same length on both axes (a latent space, not a projection);
    ``mark`` rings that code (the image being looked at)."""
    xy = np.asarray(xy, dtype=float)
    spec, width = _layout([xy], axes, height, equal)
    series = _class_series(xy, labels, class_names)
    if mark is not None:
        series.append({"type": "scatter", "name": "this image", "symbol": "emptyCircle", "symbolSize": 16,
                       "itemStyle": {"color": HIGHLIGHT_COLOR, "borderWidth": 3}, "silent": True,
                       "data": [[num(xy[mark, 0], DIGITS), num(xy[mark, 1], DIGITS)]]})
    spec |= {"animation": False, "tooltip": {"trigger": "item"}, "series": series,
             "legend": {"type": "scroll", "orient": "vertical", "right": 8, "top": TOP},
             "toolbox": {"right": RIGHT, "top": 4, "feature": {"brush": {"type": ["rect", "polygon", "clear"]}}},
             "brush": {"xAxisIndex": 0, "yAxisIndex": 0, "brushMode": "single", "throttleType": "debounce",
                       "seriesIndex": list(range(len(series) - (mark is not None)))}}
    return Chart(spec, height, width)


def selected_codes(spec: dict, selection) -> list[int]:
    """Indices into the codes of a selection returned by ``st.echarts_chart`` for a chart of
    ``latent_scatter_figure``: its ``selected`` entries name a series and the positions of
    the points in it, whose third value is the code's index (first seen first, once each)."""
    out = []
    for entry in (selection or {}).get("selected", []) or []:
        series = spec["series"][entry["series_index"]]
        for i in entry.get("data_indices", []):
            point = series["data"][i]
            if len(point) > 2:
                out.append(int(point[2]))
    return list(dict.fromkeys(out))


def mixture_figure(means, ellipses: list, *, xy=None, labels=None, class_names=None,
                   highlight: int | None = None, axes=("z1", "z2"), n_std: float = 2.0,
                   height: int = 520) -> Chart:
    """A mixture's components over the codes: each component's ``n_std``-sigma ellipse
    (points (n, 2) per component) and its mean, numbered; ``highlight`` in red."""
    means = np.asarray(means, dtype=float)
    spec, width = _layout([means, *ellipses] + ([] if xy is None else [xy]), axes, height, True)
    series = [] if xy is None else _class_series(xy, labels, class_names, size=4, opacity=0.35,
                                                 selectable=False)
    for k, pts in enumerate(ellipses):
        hot = k == highlight
        series.append({"type": "line", "name": f"component {k}" if hot else f"{n_std:g}-sigma ellipses",
                       "showSymbol": False, "silent": True, "z": 3 if hot else 2,
                       "lineStyle": {"color": HIGHLIGHT_COLOR if hot else INK, "width": 3 if hot else 1.2},
                       "itemStyle": {"color": HIGHLIGHT_COLOR if hot else INK},
                       "data": [[num(a, DIGITS), num(b, DIGITS)] for a, b in pts]})
    series.append({"type": "scatter", "name": "means", "symbol": "diamond", "symbolSize": 9, "z": 4,
                   "itemStyle": {"color": INK},
                   "label": {"show": True, "position": "top", "formatter": "{@[2]}", "color": INK},
                   "tooltip": {"formatter": "component {@[2]}"},
                   "data": [[num(m[0], DIGITS), num(m[1], DIGITS), k] for k, m in enumerate(means)]})
    spec |= {"animation": False, "tooltip": {"trigger": "item"}, "series": series,
             "legend": {"type": "scroll", "orient": "vertical", "right": 8, "top": TOP}}
    return Chart(spec, height, width)


def weights_figure(weights, *, highlight: int | None = None, height: int = 260) -> Chart:
    """Mixture weights as bars, component k at x = k; ``highlight`` in red."""
    spec = {"animation": False, "grid": {"left": 56, "right": 16, "top": 16, "bottom": 44},
            "tooltip": {"trigger": "item", "formatter": "component {b}: {c}"},
            "xAxis": {"type": "category", "name": "component", "nameLocation": "middle", "nameGap": 26,
                      "data": [str(k) for k in range(len(weights))]},
            "yAxis": value_axis("weight", nameGap=40, scale=False),
            "series": [{"type": "bar", "name": "weight", "barCategoryGap": "15%",
                        "data": [{"value": num(w),
                                  "itemStyle": {"color": HIGHLIGHT_COLOR if k == highlight else TRAIN_COLOR}}
                                 for k, w in enumerate(weights)]}]}
    return Chart(spec, height)
