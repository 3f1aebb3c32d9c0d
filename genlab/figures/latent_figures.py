"""ECharts options of latent spaces (genlab.figures.charts; no streamlit here): codes coloured by
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


FENCE = 3.0  # Tukey's far-out fences: 3 IQR beyond the quartiles (+-4.7 sd for normal data)
STRETCH = 2.0  # codes beyond the fences are left out of the view when they would widen it this much


def _extent(xy_list: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest finite coordinates (2,) of all the points in ``xy_list``."""
    pts = np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in xy_list]) if xy_list else np.zeros((1, 2))
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        return np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    return pts.min(axis=0), pts.max(axis=0)


def view_limits(xy, fence: float = FENCE, stretch: float = STRETCH) -> tuple[np.ndarray, np.ndarray]:
    """What a scatter of points (N, 2) shows, (lo (2,), hi (2,)): every point, except on an
    axis where the points beyond Tukey's far-out fences (Q1 - fence * IQR, Q3 + fence * IQR)
    would stretch the view to more than ``stretch`` times the width of the others; there it
    spans the others, so that a few outlying codes cannot shrink them into one dot (NICE's
    PCA 1: 30 times). An axis whose IQR is 0 (most points equal) is not fenced."""
    pts = np.asarray(xy, dtype=float).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        return _extent([])
    q1, q3 = np.quantile(pts, [0.25, 0.75], axis=0)
    lo_f, hi_f = q1 - fence * (q3 - q1), q3 + fence * (q3 - q1)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    for a in range(2):
        v = pts[:, a]
        inner = v[(v >= lo_f[a]) & (v <= hi_f[a])]
        if q3[a] > q1[a] and len(inner) and hi[a] - lo[a] > stretch * (inner.max() - inner.min()):
            lo[a], hi[a] = inner.min(), inner.max()
    return lo, hi


def _layout(lo, hi, axes: tuple[str, str], height: int, equal: bool) -> tuple[dict, int | None, np.ndarray]:
    """The grid and axes for points between lo and hi (2,), the chart's width in pixels
    when ``equal`` (a square plot area over one range on both axes: one unit the same
    length on each) or None (the page's width), and the axes' ranges (2, 2): [[x0, x1],
    [y0, y1]]."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
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
    return spec, (LEFT + RIGHT + side if equal else None), np.array(rng, dtype=float)


def _class_series(xy, labels, class_names, *, size: int = 5, opacity: float = 0.75,
                  selectable: bool = True, rng: np.ndarray | None = None) -> list[dict]:
    """One scatter series per class; each point is [x, y, index into xy], so a selection
    maps back to the codes whatever the series (``selected_codes``). A point outside the
    axes' ranges ``rng`` (2, 2) is drawn at their edge as a triangle, its own coordinates
    in its tooltip (``outside_codes`` lists them)."""
    xy = np.asarray(xy, dtype=float)
    labels = np.asarray(labels if labels is not None else np.zeros(len(xy), int))
    shown = xy if rng is None else np.clip(xy, rng[:, 0], rng[:, 1])
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        data = []
        for i in idx:
            point = [num(shown[i, 0], DIGITS), num(shown[i, 1], DIGITS), int(i)]
            if np.isfinite(xy[i]).all() and (shown[i] != xy[i]).any():
                point = {"value": point, "symbol": "triangle", "symbolSize": size + 4,
                         "tooltip": {"formatter": f"{name} · image {i} · outside the view, at "
                                                  f"({xy[i, 0]:.4g}, {xy[i, 1]:.4g})"}}
            data.append(point)
        s = {"type": "scatter", "name": str(name), "symbolSize": size,
             "itemStyle": {"color": CLASS_COLORS[int(c) % len(CLASS_COLORS)], "opacity": opacity},
             "data": data, "tooltip": {"formatter": f"{name} · image {{@[2]}}"}}
        if selectable:
            s |= {"selectedMode": "multiple",
                  "select": {"itemStyle": {"borderColor": INK, "borderWidth": 2, "opacity": 1}}}
        out.append(s)
    return out


def _value(point) -> list:
    """A series' data item as [x, y, ...]: plain, or the "value" of one with its own style."""
    return point["value"] if isinstance(point, dict) else point


def latent_scatter_figure(xy, labels=None, class_names=None, *, axes=("z1", "z2"),
                          equal: bool = True, height: int = 480, mark: int | None = None) -> Chart:
    """Codes (N, 2) coloured by class. A click selects a point (another click on it lets it
    go), the toolbar's box and lasso select a region, a double-click clears. ``equal``
    keeps one unit the same length on both axes (a latent space, not a projection);
    ``mark`` rings that code (the image being looked at). The axes span the points inside
    Tukey's far-out fences (:func:`view_limits`); codes beyond the view are drawn at its
    edge as triangles (:func:`outside_codes`)."""
    xy = np.asarray(xy, dtype=float)
    spec, width, rng = _layout(*view_limits(xy), axes, height, equal)
    series = _class_series(xy, labels, class_names, rng=rng)
    if mark is not None:
        at = np.clip(xy[mark], rng[:, 0], rng[:, 1])
        series.append({"type": "scatter", "name": "this image", "symbol": "emptyCircle", "symbolSize": 16,
                       "itemStyle": {"color": HIGHLIGHT_COLOR, "borderWidth": 3}, "silent": True,
                       "data": [[num(at[0], DIGITS), num(at[1], DIGITS)]]})
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
            point = _value(series["data"][i])
            if len(point) > 2:
                out.append(int(point[2]))
    return list(dict.fromkeys(out))


def outside_codes(spec: dict) -> list[int]:
    """Indices of the codes a ``latent_scatter_figure`` draws at the edge of its view
    (outside it), in index order."""
    return sorted(p["value"][2] for s in spec["series"] for p in s["data"]
                  if isinstance(p, dict) and len(p["value"]) > 2)


def mixture_figure(means, ellipses: list, *, xy=None, labels=None, class_names=None,
                   highlight: int | None = None, axes=("z1", "z2"), n_std: float = 2.0,
                   height: int = 520) -> Chart:
    """A mixture's components over the codes: each component's ``n_std``-sigma ellipse
    (points (n, 2) per component) and its mean, numbered; ``highlight`` in red."""
    means = np.asarray(means, dtype=float)
    spec, width, _ = _layout(*_extent([means, *ellipses] + ([] if xy is None else [xy])), axes, height, True)
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
