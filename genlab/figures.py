"""Plotly figures of runs and latent spaces (no streamlit here): training curves, live
panels, several runs overlaid, the importance-weighted bound against k, codes coloured by
class and a mixture's components. Pages only place them; tests read their traces."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .tables import metric_names

TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
HIGHLIGHT_COLOR = "#d62728"
PART_COLORS = {"d_loss": "#1f77b4", "g_loss": "#ff7f0e", "d_real": "#2ca02c", "d_fake": "#d62728",
               "grad_var": "#2ca02c", "grad_var_nobaseline": "#d62728"}
MAX_POINTS = 2000  # per trace; longer series are strided so charts stay light
PANELS = (("D and G losses", ("d_loss", "g_loss"), False),
          ("D outputs: mean D(x), mean D(G(z))", ("d_real", "d_fake"), False),
          ("encoder gradient variance", ("grad_var", "grad_var_nobaseline"), True))
"""Metrics drawn together in one panel (title, names, log y); the others get one each."""
MARGIN = dict(l=10, r=10, t=30, b=10)


# -- panel grids: one subplot per metric ----------------------------------------------------
def panel_grid(titles: list[str], *, max_cols: int, vertical_spacing: float = 0.2
               ) -> tuple[go.Figure, list[tuple[int, int]]]:
    """Subplots titled ``titles``, at most ``max_cols`` a row: (figure, (row, col) of each)."""
    cols = min(len(titles), max_cols)
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=vertical_spacing)
    return fig, [(i // cols + 1, i % cols + 1) for i in range(len(titles))]


def _grid_layout(fig: go.Figure, cells: list[tuple[int, int]], *, x_title: str, height: int,
                 extra: int, **layout) -> go.Figure:
    """The x title under the bottom row only, ``height`` per row, the legend on top."""
    rows = cells[-1][0]
    for r, c in cells:
        fig.update_xaxes(title_text=x_title if r == rows else None, row=r, col=c)
    fig.update_layout(height=height * rows + extra, margin=dict(MARGIN, t=70),
                      legend=dict(orientation="h", yref="container", yanchor="top", y=1.0, x=0),
                      **layout)
    return fig


def _series(records: list[dict], name: str, event: str, split: str) -> tuple[list, list, list]:
    pts = [(r["step"], r[name], r.get("epoch")) for r in records
           if r.get("event") == event and r.get("split") == split
           and isinstance(r.get(name), (int, float)) and isinstance(r.get("step"), (int, float))]
    stride = max(1, math.ceil(len(pts) / MAX_POINTS))
    pts = pts[::stride]
    return [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]


def _without_elbo(names: list[str]) -> list[str]:
    return [n for n in names if n != "elbo" or "loss" not in names]  # elbo = -loss: redundant


def curves_figure(records: list[dict], *, names: list[str] | None = None, height: int = 260,
                  max_cols: int = 3) -> go.Figure:
    """Training curves, one panel per metric ("loss" then the parts, e.g. recon and kl):
    training records per logged step as a line, validation per epoch as markers, both
    against the optimisation step."""
    names = _without_elbo(names or metric_names(records) or ["loss"])
    fig, cells = panel_grid(names, max_cols=max_cols, vertical_spacing=0.18)
    for i, (name, (r, c)) in enumerate(zip(names, cells)):
        x, y, _ = _series(records, name, "step", "train")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines" if len(x) > 1 else "markers",
                                 name="train (per step)",
                                 line=dict(color=TRAIN_COLOR, width=1.5), legendgroup="train",
                                 showlegend=i == 0), row=r, col=c)
        x, y, ep = _series(records, name, "epoch", "val")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="validation (per epoch)",
                                 customdata=ep, hovertemplate="epoch %{customdata}: %{y:.4g}",
                                 line=dict(color=VAL_COLOR, width=2), marker=dict(size=7),
                                 legendgroup="val", showlegend=i == 0), row=r, col=c)
    _grid_layout(fig, cells, x_title="step", height=height, extra=30, hovermode="x unified")
    fig.update_xaxes(nticks=4, tickangle=0, tickformat="~s")  # 2k, 4k: level in narrow panels
    return fig


def live_panels(names: list[str]) -> list[tuple[str, list[str], bool]]:
    """Panels for live curves: the grouped ones (D/G losses, D outputs, gradient variance
    with and without baseline) where present, every other metric alone. A GAN's "loss"
    (L_D + L_G) and "elbo" (= -loss) are left out as redundant."""
    present = set(names)
    grouped = [(t, [n for n in ns if n in present], log) for t, ns, log in PANELS
               if any(n in present for n in ns)]
    taken = {n for _, ns, _ in grouped for n in ns}
    drop = {"elbo"} if "loss" in present else set()
    if {"d_loss", "g_loss"} <= present:
        drop.add("loss")
    single = [(n, [n], False) for n in names if n not in taken | drop]
    return single[:1] + grouped + single[1:]


def live_figure(records: list[dict], *, height: int = 250, max_cols: int = 3) -> go.Figure:
    """Training curves while a run trains: per-step training values as lines and
    per-epoch validation values as markers, against the step, in :func:`live_panels`."""
    panels = live_panels(metric_names(records) or ["loss"])
    fig, cells = panel_grid([p[0] for p in panels], max_cols=max_cols)
    for i, ((_, names, log), (r, c)) in enumerate(zip(panels, cells)):
        for j, name in enumerate(names):
            color = PART_COLORS.get(name, RUN_COLORS[j]) if len(names) > 1 else TRAIN_COLOR
            x, y, _ = _series(records, name, "step", "train")
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines" if len(x) > 1 else "markers",
                                     name=name if len(names) > 1 else "train (per step)",
                                     legendgroup=name if len(names) > 1 else "train",
                                     line=dict(color=color, width=1.5),
                                     showlegend=len(names) > 1 or i == 0), row=r, col=c)
            x, y, ep = _series(records, name, "epoch", "val")
            fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name="validation (per epoch)",
                                     customdata=ep, hovertemplate=f"{name}, epoch %{{customdata}}: %{{y:.4g}}",
                                     legendgroup="val", showlegend=i == 0 and j == 0,
                                     marker=dict(size=9, color=VAL_COLOR if len(names) == 1 else color,
                                                 symbol="diamond", line=dict(width=1, color="black"))),
                          row=r, col=c)
        if log:
            fig.update_yaxes(type="log", row=r, col=c)
    return _grid_layout(fig, cells, x_title="step", height=height, extra=40)


def overlay_figure(series: list[tuple[str, list[dict]]], *, names: list[str] | None = None,
                   height: int = 280, max_cols: int = 3) -> go.Figure:
    """Several runs' per-epoch curves on shared axes, one panel per metric they share:
    validation solid, training dashed, one colour per run, against the epoch (steps
    differ with the batch size; epochs do not)."""
    if names is None:
        sets = [set(metric_names([r for r in recs if r.get("event") == "epoch"])) for _, recs in series]
        common = set.intersection(*sets) if sets else set()
        first = next((metric_names(recs) for _, recs in series if recs), [])
        names = [n for n in first if n in common] or ["loss"]
    names = _without_elbo(names)
    fig, cells = panel_grid(names, max_cols=max_cols)
    for i, (name, (r, c)) in enumerate(zip(names, cells)):
        for j, (label, recs) in enumerate(series):
            color = RUN_COLORS[j % len(RUN_COLORS)]
            for split, dash in (("val", "solid"), ("train", "dot")):
                pts = [(rec["epoch"], rec[name]) for rec in recs if rec.get("event") == "epoch"
                       and rec.get("split") == split and isinstance(rec.get(name), (int, float))]
                fig.add_trace(go.Scatter(
                    x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                    name=f"{label} · {split}", legendgroup=f"{label}-{split}", showlegend=i == 0,
                    line=dict(color=color, dash=dash, width=2 if split == "val" else 1.2),
                    marker=dict(size=6 if split == "val" else 4)), row=r, col=c)
    _grid_layout(fig, cells, x_title="epoch", height=height, extra=40)
    last = max((rec.get("epoch") or 1 for _, recs in series for rec in recs), default=1)
    fig.update_xaxes(tick0=1, dtick=max(1, math.ceil(last / 8)))  # whole epochs
    return fig


def bound_figure(points: dict[str, dict[int, float]], *, height: int = 320) -> go.Figure:
    """The importance-weighted bound on log p(x) (nats per image) against the number of
    samples k on a log axis, one line per run: k = 1 is the ELBO, and the bound rises
    toward log p(x) as k grows (Burda et al. 2016, Theorem 1)."""
    fig = go.Figure()
    for j, (label, by_k) in enumerate(points.items()):
        ks = sorted(by_k)
        fig.add_trace(go.Scatter(x=ks, y=[by_k[k] for k in ks], mode="lines+markers", name=label,
                                 line=dict(color=RUN_COLORS[j % len(RUN_COLORS)]),
                                 hovertemplate="k=%{x}: %{y:.2f} nats<extra></extra>"))
    fig.update_layout(height=height, margin=MARGIN,
                      xaxis=dict(type="log", title="importance samples k", range=[-0.1, 3.1],
                                 tickvals=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]),
                      yaxis_title="bound on log p(x) (nats per image)",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


# -- latent spaces (Latent explorer, Clusters) -------------------------------------------
def _class_traces(xy, labels, class_names, *, size: int = 5, opacity: float = 0.75) -> list:
    """One scatter trace per class; customdata holds each point's index into xy, so a
    selection maps back to the codes whatever the trace."""
    xy, labels = np.asarray(xy), np.asarray(labels if labels is not None else np.zeros(len(xy), int))
    traces = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        traces.append(go.Scatter(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=name, customdata=idx,
            marker=dict(size=size, opacity=opacity, color=CLASS_COLORS[int(c) % len(CLASS_COLORS)]),
            hovertemplate=f"{name} · image %{{customdata}}<extra></extra>"))
    return traces


def latent_scatter_figure(xy, labels=None, class_names=None, *, axes=("z1", "z2"),
                          equal: bool = True, height: int = 480) -> go.Figure:
    """Codes (N, 2) coloured by class; a click selects a point, and box or lasso select are
    in the toolbar. Not ``dragmode="select"``: Streamlit (1.67) sets ``clickmode="event"``
    whenever the drag mode is select or lasso, so a click would select nothing and no
    selection event would come back; with the pan drag it keeps "event+select".
    ``equal`` keeps one unit the same length on both axes (a latent space, not a projection)."""
    fig = go.Figure(_class_traces(xy, labels, class_names))
    fig.update_layout(height=height, margin=MARGIN, dragmode="pan", clickmode="event+select",
                      legend=dict(title="class", itemsizing="constant"),
                      xaxis_title=axes[0], yaxis_title=axes[1])
    if equal:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def mixture_figure(means, ellipses: list, *, xy=None, labels=None, class_names=None,
                   highlight: int | None = None, axes=("z1", "z2"), n_std: float = 2.0,
                   height: int = 520) -> go.Figure:
    """A mixture's components over the codes: each component's ``n_std``-sigma ellipse
    (points (n, 2) per component) and its mean, numbered; ``highlight`` in red."""
    fig = go.Figure(_class_traces(xy, labels, class_names, size=4, opacity=0.35) if xy is not None else [])
    first = next((k for k in range(len(ellipses)) if k != highlight), None)
    for k, pts in enumerate(ellipses):
        hot = k == highlight
        fig.add_trace(go.Scatter(
            x=pts[:, 0], y=pts[:, 1], mode="lines", showlegend=k == first or hot, hoverinfo="skip",
            name=f"component {k}" if hot else f"{n_std:g}-sigma ellipses",
            legendgroup="hot" if hot else "ellipses",
            line=dict(color=HIGHLIGHT_COLOR if hot else "#222222", width=3 if hot else 1.2)))
    fig.add_trace(go.Scatter(
        x=[m[0] for m in means], y=[m[1] for m in means], mode="markers+text", name="means",
        text=[str(k) for k in range(len(means))], textposition="top center",
        marker=dict(symbol="x", size=9, color="#222222"), hovertemplate="component %{text}<extra></extra>"))
    fig.update_layout(height=height, margin=MARGIN,
                      legend=dict(itemsizing="constant"), xaxis_title=axes[0], yaxis_title=axes[1])
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def weights_figure(weights, *, highlight: int | None = None, height: int = 260) -> go.Figure:
    """Mixture weights as bars, component k at x = k; ``highlight`` in red."""
    colors = [HIGHLIGHT_COLOR if k == highlight else TRAIN_COLOR for k in range(len(weights))]
    fig = go.Figure(go.Bar(x=list(range(len(weights))), y=list(map(float, weights)),
                           marker_color=colors, hovertemplate="component %{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(height=height, margin=MARGIN,
                      xaxis_title="component", yaxis_title="weight", bargap=0.15)
    return fig
