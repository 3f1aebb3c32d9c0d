"""Plotly figures of latent spaces (no streamlit here; each is a ``plotly.graph_objects.Figure``,
so it shows in a notebook with ``fig.show()`` and saves with ``fig.write_html()``): codes
coloured by class, with click, box and lasso selection (the Latent explorer, the True
posterior's image picker), a mixture's components over them and its weights (Clusters).
Pages place them; :func:`selected_codes` maps a selection back to the codes.

The codes are one trace per class: ``Scattergl`` (WebGL) beyond :data:`GL_CODES` codes,
plain ``Scatter`` (SVG) up to it. WebGL traces are drawn above every SVG trace whatever
their order, so whatever must lie over the codes (the ring of the image looked at, a
mixture's ellipses and means) is of the same kind as they are."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .charts import CLASS_COLORS, HIGHLIGHT_COLOR, INK, TRAIN_COLOR

MARGIN = dict(l=10, r=10, t=30, b=10)
PAD = 1.05  # the view reaches this far beyond the points' half-width around their centre

FENCE = 3.0  # Tukey's far-out fences: 3 IQR beyond the quartiles (+-4.7 sd for normal data)
STRETCH = 2.0  # codes beyond the fences are left out of the view when they would widen it this much
GL_CODES = 2500
"""A figure of more codes than this draws them (and what lies over them) with ``Scattergl``,
of fewer with ``Scatter``: in headless Chromium (software WebGL) SVG drew 2,000 codes in
ten traces sooner than WebGL (medians about 0.36 s against 0.50 s), they were even at 3,000,
and WebGL was sooner at 5,000 (0.5 s against 0.7 s)."""


def trace_kind(n_codes: int) -> type[go.Scatter] | type[go.Scattergl]:
    """The trace class of a figure of ``n_codes`` codes (:data:`GL_CODES`).

    >>> trace_kind(2000).__name__, trace_kind(5000).__name__
    ('Scatter', 'Scattergl')
    """
    return go.Scattergl if n_codes > GL_CODES else go.Scatter


EDGE_SYMBOLS = (("triangle-left", "triangle-right"), ("triangle-down", "triangle-up"))
"""The marker of a code drawn at the view's edge, by axis and side: it points towards the code."""


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


def _ranges(lo, hi, equal: bool) -> np.ndarray:
    """The axes' ranges (2, 2), [[x0, x1], [y0, y1]], around points between lo and hi (2,):
    one half-width on both axes when ``equal``."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-6) * PAD
    if equal:
        half = np.full(2, half.max())
    return np.stack([centre - half, centre + half], axis=1)


def _axes(fig: go.Figure, rng: np.ndarray, axes: tuple[str, str], equal: bool) -> None:
    """Fixed ranges ``rng`` (2, 2) titled ``axes``; with ``equal`` one unit is as long on
    both axes on screen (scaleanchor), the plot area shrinking to fit (constrain="domain":
    the ranges, and the codes drawn at their edges, stay as set)."""
    fig.update_xaxes(title=axes[0], range=rng[0].tolist(), constrain="domain", zeroline=False)
    fig.update_yaxes(title=axes[1], range=rng[1].tolist(), constrain="domain", zeroline=False)
    if equal:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)


def _class_traces(xy, labels, class_names, *, size: int = 5, opacity: float = 0.75,
                  rng: np.ndarray | None = None) -> list[go.Scatter | go.Scattergl]:
    """One trace per class (:func:`trace_kind`), in class order; ``customdata`` holds each point's
    index into xy, so a selection maps back to the codes whatever the trace
    (:func:`selected_codes`). A point outside the ranges ``rng`` (2, 2) is drawn at their
    edge as a triangle pointing towards it, its own coordinates in its hover label
    (:func:`outside_codes` lists them)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    labels = np.asarray(labels if labels is not None else np.zeros(len(xy), int))
    shown = xy if rng is None else np.clip(xy, rng[:, 0], rng[:, 1])
    finite = np.isfinite(xy).all(axis=1)
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        marker = dict(size=size, opacity=opacity, color=CLASS_COLORS[int(c) % len(CLASS_COLORS)])
        hover = f"{name} · image %{{customdata}}"
        extra = {}
        edge = finite[idx] & (shown[idx] != xy[idx]).any(axis=1)
        if edge.any():
            symbols, sizes, text = ["circle"] * len(idx), [size] * len(idx), [""] * len(idx)
            for j in np.flatnonzero(edge):
                i = idx[j]
                a = 0 if shown[i, 0] != xy[i, 0] else 1  # the axis it left the view along
                symbols[j] = EDGE_SYMBOLS[a][int(xy[i, a] > shown[i, a])]
                sizes[j] = size + 5
                text[j] = f" · outside the view, at ({xy[i, 0]:.4g}, {xy[i, 1]:.4g})"
            marker |= dict(symbol=symbols, size=sizes)
            extra = dict(text=text)
            hover += "%{text}"
        out.append(trace_kind(len(xy))(
            x=shown[idx, 0].astype(np.float32), y=shown[idx, 1].astype(np.float32), mode="markers",
            name=str(name), customdata=idx, marker=marker, hovertemplate=hover + "<extra></extra>",
            **extra))
    return out


def latent_scatter_figure(xy, labels=None, class_names=None, *, axes=("z1", "z2"),
                          equal: bool = True, height: int = 480, mark: int | None = None) -> go.Figure:
    """Codes (N, 2) coloured by class (``labels`` (N,), named by ``class_names``). A click
    selects a point (clickmode "event+select"; shift-click adds one), the toolbar's box and
    lasso select a region, a double-click clears. The drag mode is pan, not select:
    Streamlit (1.67) sets clickmode "event" when the drag mode is select or lasso, and a
    click would then select nothing. ``equal`` keeps one unit the same length on both axes
    (a latent space, not a projection); ``mark`` rings that code (the image looked at). The
    axes span the points inside Tukey's far-out fences (:func:`view_limits`); codes beyond
    the view are drawn at its edge as triangles (:func:`outside_codes`).

    >>> import numpy as np
    >>> xy, labels = np.random.default_rng(0).normal(size=(500, 2)), np.arange(500) % 10
    >>> fig = latent_scatter_figure(xy, labels)
    >>> len(fig.data), fig.layout.xaxis.title.text, fig.layout.dragmode  # a trace per class
    (10, 'z1', 'pan')
    >>> fig.show()  # in a notebook
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    rng = _ranges(*view_limits(xy), equal)
    fig = go.Figure(_class_traces(xy, labels, class_names, rng=rng))
    if mark is not None:
        at = np.clip(xy[mark], rng[:, 0], rng[:, 1])
        fig.add_trace(trace_kind(len(xy))(x=[float(at[0])], y=[float(at[1])], mode="markers", name="this image",
                                   hoverinfo="skip", marker=dict(symbol="circle-open", size=16,
                                                                 color=HIGHLIGHT_COLOR, line=dict(width=3))))
    fig.update_layout(height=height, margin=MARGIN, dragmode="pan", clickmode="event+select",
                      legend=dict(title="class", itemsizing="constant"), uirevision="codes")
    _axes(fig, rng, axes, equal)
    return fig


def _point_index(p: dict) -> int | None:
    i = p.get("point_index", p.get("point_number"))
    return None if i is None else int(i)


def selected_codes(fig: go.Figure, selection) -> list[int]:
    """Indices into the codes of a selection that ``st.plotly_chart(..., on_select=...)``
    returns for a figure of :func:`latent_scatter_figure` (its ``points``: a trace's
    number and the point's position in it), first seen first, once each. Points of a trace
    without codes (the ring of ``mark``) are left out.

    >>> fig = latent_scatter_figure([[0, 0], [1, 1], [2, 0]], [0, 1, 0])
    >>> selected_codes(fig, {"points": [{"curve_number": 0, "point_index": 1}]})
    [2]
    """
    out = []
    points = (selection or {}).get("points", []) or []
    for p in points:
        curve, i = p.get("curve_number"), _point_index(p)
        if curve is None or i is None or not 0 <= curve < len(fig.data):
            continue
        codes = fig.data[curve].customdata
        if codes is not None and 0 <= i < len(codes):
            out.append(int(np.ravel(codes[i])[0]))
    return list(dict.fromkeys(out))


def outside_codes(fig: go.Figure) -> list[int]:
    """Indices of the codes a :func:`latent_scatter_figure` draws at the edge of its view
    (outside it, as triangles), in index order.

    >>> outside_codes(latent_scatter_figure([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.5]] * 20 + [[500, 0]]))
    [100]
    """
    out = []
    for t in fig.data:
        symbols = t.marker.symbol if t.customdata is not None else None
        if isinstance(symbols, (list, tuple)):
            out += [int(np.ravel(t.customdata[j])[0]) for j, s in enumerate(symbols) if s != "circle"]
    return sorted(out)


def mixture_figure(means, ellipses: list, *, xy=None, labels=None, class_names=None,
                   highlight: int | None = None, axes=("z1", "z2"), n_std: float = 2.0,
                   height: int = 520) -> go.Figure:
    """A mixture's components over the codes (``xy`` (N, 2), faint, by class): each
    component's ``n_std``-sigma ellipse (``ellipses``: points (n, 2) per component) and its
    mean (``means`` (K, 2)), numbered; ``highlight`` in red. Equal axes.

    >>> import numpy as np
    >>> means = np.array([[0.0, 0.0], [3.0, 1.0]])
    >>> t = np.linspace(0, 2 * np.pi, 73)[:, None]
    >>> fig = mixture_figure(means, [m + np.hstack([np.cos(t), np.sin(t)]) for m in means], highlight=1)
    >>> [t.name for t in fig.data]
    ['2-sigma ellipses', 'component 1', 'means']
    >>> fig.show()  # in a notebook
    """
    means = np.asarray(means, dtype=float).reshape(-1, 2)
    rng = _ranges(*_extent([means, *ellipses] + ([] if xy is None else [xy])), True)
    fig = go.Figure(_class_traces(xy, labels, class_names, size=4, opacity=0.35) if xy is not None else [])
    first = next((k for k in range(len(ellipses)) if k != highlight), None)
    kind = trace_kind(0 if xy is None else len(np.asarray(xy).reshape(-1, 2)))
    for k, pts in enumerate(ellipses):
        hot = k == highlight
        pts = np.asarray(pts, dtype=float)
        fig.add_trace(kind(
            x=pts[:, 0], y=pts[:, 1], mode="lines", hoverinfo="skip", showlegend=hot or k == first,
            name=f"component {k}" if hot else f"{n_std:g}-sigma ellipses",
            legendgroup="highlight" if hot else "ellipses",
            line=dict(color=HIGHLIGHT_COLOR if hot else INK, width=3 if hot else 1.2)))
    fig.add_trace(kind(
        x=means[:, 0], y=means[:, 1], mode="markers+text", name="means", text=[str(k) for k in range(len(means))],
        textposition="top center", textfont=dict(color=INK), marker=dict(symbol="diamond", size=9, color=INK),
        hovertemplate="component %{text}<extra></extra>"))
    fig.update_layout(height=height, margin=MARGIN, legend=dict(itemsizing="constant"))
    _axes(fig, rng, axes, True)
    return fig


def weights_figure(weights, *, highlight: int | None = None, height: int = 260) -> go.Figure:
    """Mixture weights as bars, component k at x = k; ``highlight`` in red.

    >>> fig = weights_figure([0.5, 0.3, 0.2], highlight=2)
    >>> fig.data[0].marker.color
    ('#1f77b4', '#1f77b4', '#d62728')
    >>> fig.show()  # in a notebook
    """
    colors = [HIGHLIGHT_COLOR if k == highlight else TRAIN_COLOR for k in range(len(weights))]
    fig = go.Figure(go.Bar(x=list(range(len(weights))), y=[float(w) for w in weights], marker_color=colors,
                           name="weight", hovertemplate="component %{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(height=height, margin=MARGIN, bargap=0.15, xaxis_title="component",
                      yaxis_title="weight")
    fig.update_xaxes(dtick=1 if len(weights) <= 20 else None)
    return fig
