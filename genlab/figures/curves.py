"""plotly figures of runs (no streamlit here): training curves, the live panels of a run
at work, several runs overlaid and the importance-weighted bound against k. Each is a
``plotly.graph_objects.Figure`` laid out for its height (``fig.layout.height``): the app
draws it with ``st.plotly_chart``, a notebook with ``fig.show()``.

>>> from genlab.runs.status import summarize
>>> records = summarize("checkpoints/vae-2d-mnist").metrics  # its metrics.jsonl  # doctest: +SKIP
>>> curves_figure(records).show()  # doctest: +SKIP
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .charts import RUN_COLORS, TRAIN_COLOR, VAL_COLOR, base_layout, legend_top, num, scatter
from .tables import metric_names

PART_COLORS = {"d_loss": "#1f77b4", "g_loss": "#ff7f0e", "d_real": "#2ca02c", "d_fake": "#d62728",
               "grad_var": "#2ca02c", "grad_var_nobaseline": "#d62728"}
MAX_POINTS = 2000  # per series; longer series are strided so charts stay light
PANELS = (("D and G losses", ("d_loss", "g_loss"), False),
          ("D outputs: mean D(x), mean D(G(z))", ("d_real", "d_fake"), False),
          ("encoder gradient variance", ("grad_var", "grad_var_nobaseline"), True))
"""Metrics drawn together in one panel (title, names, log y); the others get one each."""
TITLE_H = 24  # px above each panel for its title
TICKS_H = 22  # px under each panel for its tick labels
X_NAME_H = 18  # px under the bottom row for the x title
DIGITS = 6  # significant digits of the values of long series
VALUE = "%{y:.4g}"  # hover format of a value


def _example_records(n: int = 40) -> list[dict]:
    """metrics.jsonl's records of a made-up run (for the docstring examples)."""
    recs = [{"event": "step", "split": "train", "step": s, "epoch": (s - 1) // 10 + 1,
             "loss": 200 / s ** 0.3, "recon": 180 / s ** 0.3, "kl": 20.0} for s in range(1, n + 1)]
    return recs + [{"event": "epoch", "split": "val", "step": 10 * e, "epoch": e,
                    "loss": 210 / (10 * e) ** 0.3, "recon": 190 / (10 * e) ** 0.3, "kl": 20.0}
                   for e in range(1, n // 10 + 1)]


# -- panel grids: one panel per metric ------------------------------------------------------
def panel_grid(titles: list[str], names: list[str], *, max_cols: int, row_height: int,
               x_title: str, log_y: set[int] = frozenset(), share_x: bool = True) -> go.Figure:
    """An empty figure of panels titled ``titles``, at most ``max_cols`` a row and
    ``row_height`` px each (its title, the plot, its tick labels), panel i in row
    ``i // cols + 1``, column ``i % cols + 1`` (log y for i in ``log_y``), the x title
    under the bottom row only, and a legend on top sized for ``names``. ``share_x``: one
    x range for every panel (zooming one zooms all). Add traces with ``row=`` and ``col=``
    (:func:`cell`).


    >>> fig = panel_grid(["loss", "kl"], ["train"], max_cols=2, row_height=200, x_title="step")
    >>> fig.add_trace(scatter([1, 2], [3.0, 2.0], name="train"), *cell(1, 2)).layout.height
    246
    """
    cols = min(len(titles), max_cols)
    rows = math.ceil(len(titles) / cols)
    legend, legend_h = legend_top(names)
    panel_h = row_height - TITLE_H - TICKS_H
    plot_h = rows * panel_h + (rows - 1) * (TITLE_H + TICKS_H)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles),
                        vertical_spacing=(TITLE_H + TICKS_H) / plot_h if rows > 1 else 0.0,
                        horizontal_spacing=0.22 / cols if cols > 1 else 0.0)
    for i, a in enumerate(fig.layout.annotations):  # the panel titles: at the panel's left
        a.update(font=dict(size=13), x=fig.get_subplot(*cell(i, cols)).xaxis.domain[0], xanchor="left")
    top = legend_h + TITLE_H
    base_layout(fig, top + plot_h + TICKS_H + X_NAME_H, margin=dict(t=top, b=0),
                legend=legend | dict(y=1 + TITLE_H / plot_h), hovermode="x unified")
    for i in range(len(titles)):
        r, c = cell(i, cols)
        if r == rows:
            fig.update_xaxes(title=dict(text=x_title, standoff=4), row=r, col=c)
        if i in log_y:
            fig.update_yaxes(type="log", row=r, col=c)
        if share_x and i:
            fig.update_xaxes(matches="x", row=r, col=c)
    for i in range(len(titles), rows * cols):  # an unused cell of the last row: no empty axes
        r, c = cell(i, cols)
        fig.update_xaxes(visible=False, row=r, col=c)
        fig.update_yaxes(visible=False, row=r, col=c)
    return fig


def cell(i: int, cols: int) -> tuple[int, int]:
    """(row, col), from 1, of panel ``i`` (from 0) in a grid ``cols`` wide.

    >>> cell(4, 3)
    (2, 2)
    """
    r, c = divmod(i, cols)
    return r + 1, c + 1


def _points(records: list[dict], name: str, event: str, split: str) -> list[dict]:
    """The records of ``event`` and ``split`` with a number for ``name`` and a step,
    strided to at most MAX_POINTS."""
    pts = [r for r in records if r.get("event") == event and r.get("split") == split
           and isinstance(r.get(name), (int, float)) and isinstance(r.get("step"), (int, float))]
    return pts[::max(1, math.ceil(len(pts) / MAX_POINTS))]


def _train_line(recs: list[dict], name: str, label: str, color: str, shown: set) -> go.Scatter:
    """Per-step training values of ``name`` as a line (a marker while there is one point),
    in legend group ``label``, shown in the legend the first time ``label`` comes."""
    return scatter([r["step"] for r in recs], [num(r[name], DIGITS) for r in recs],
                   mode="lines" if len(recs) > 1 else "markers", name=label,
                   legendgroup=label, showlegend=_first(label, shown),
                   line=dict(color=color, width=1.5), marker=dict(color=color, size=6),
                   hovertemplate=VALUE)


def _val_points(recs: list[dict], name: str, label: str, shown: set, **style) -> go.Scatter:
    """Per-epoch validation values of ``name``; the hover label gives the epoch."""
    return scatter([r["step"] for r in recs], [num(r[name], DIGITS) for r in recs], name=label,
                   legendgroup=label, showlegend=_first(label, shown),
                   customdata=[r.get("epoch") for r in recs],
                   hovertemplate=VALUE + " (epoch %{customdata})", **style)


def _first(label: str, shown: set) -> bool:
    """Whether ``label`` is new to the legend (then it is taken): one entry a name."""
    new = label not in shown
    shown.add(label)
    return new


def _steady_ranges(fig: go.Figure) -> go.Figure:
    """A linear panel whose values are all one number v (a constant lr, a KL weight at 1)
    gets the y range v ± |v|/2: plotly's own, v ± 1, would draw lr = 3e-4 at "0"."""
    by_axis: dict[str, set] = {}
    for t in fig.data:
        by_axis.setdefault(t.yaxis or "y", set()).update(v for v in t.y if v is not None)
    for axis, values in by_axis.items():
        if len(values) == 1 and (v := values.pop()) != 0:
            name = "yaxis" + axis[1:]
            if fig.layout[name].type != "log":
                fig.layout[name].range = [v - abs(v) / 2, v + abs(v) / 2]
    return fig


def _without_elbo(names: list[str]) -> list[str]:
    return [n for n in names if n != "elbo" or "loss" not in names]  # elbo = -loss: redundant


def curves_figure(records: list[dict], *, names: list[str] | None = None, height: int = 260,
                  max_cols: int = 3) -> go.Figure:
    """Training curves, one panel per metric ("loss" then the parts, e.g. recon and kl):
    training records per logged step as a line, validation per epoch as lines and markers,
    both against the optimisation step; ``height`` px a row. ``records``: a run's
    metrics.jsonl (``genlab.runs.store.read_metrics``).

    >>> fig = curves_figure(_example_records())
    >>> [a.text for a in fig.layout.annotations]
    ['loss', 'recon', 'kl']
    >>> fig.show()  # doctest: +SKIP
    """
    names = _without_elbo(names or metric_names(records) or ["loss"])
    labels = ["train (per step)", "validation (per epoch)"]
    fig = panel_grid(names, labels, max_cols=max_cols, row_height=height, x_title="step")
    cols, shown = min(len(names), max_cols), set()
    for i, name in enumerate(names):
        fig.add_trace(_train_line(_points(records, name, "step", "train"), name, labels[0],
                                  TRAIN_COLOR, shown), *cell(i, cols))
        fig.add_trace(_val_points(_points(records, name, "epoch", "val"), name, labels[1], shown,
                                  mode="lines+markers", line=dict(color=VAL_COLOR, width=2),
                                  marker=dict(color=VAL_COLOR, size=7)), *cell(i, cols))
    return _steady_ranges(fig)


def live_panels(names: list[str]) -> list[tuple[str, list[str], bool]]:
    """Panels for live curves: the grouped ones (D/G losses, D outputs, gradient variance
    with and without baseline) where present, every other metric alone. A GAN's "loss"
    (L_D + L_G) and "elbo" (= -loss) are left out as redundant.

    >>> live_panels(["loss", "d_loss", "g_loss"])
    [('D and G losses', ['d_loss', 'g_loss'], False)]
    """
    present = set(names)
    grouped = [(t, [n for n in ns if n in present], log) for t, ns, log in PANELS
               if any(n in present for n in ns)]
    taken = {n for _, ns, _ in grouped for n in ns}
    drop = {"elbo"} if "loss" in present else set()
    if {"d_loss", "g_loss"} <= present:
        drop.add("loss")
    single = [(n, [n], False) for n in names if n not in taken | drop]
    return single[:1] + grouped + single[1:]


LIVE = "live"
"""The live figure's ``uirevision``: a zoom or a legend click survives the redraws."""


def live_figure(records: list[dict], *, height: int = 250, max_cols: int = 3) -> go.Figure:
    """Training curves while a run trains: per-step training values as lines and
    per-epoch validation values as markers, against the step, in :func:`live_panels`;
    ``height`` px a row. Redrawn with new records (the Train page, every 2 s), it keeps
    the reader's zoom and hidden traces (``uirevision``).

    >>> fig = live_figure(_example_records())
    >>> [a.text for a in fig.layout.annotations], fig.layout.uirevision
    (['loss', 'recon', 'kl'], 'live')
    >>> fig.show()  # doctest: +SKIP
    """
    panels = live_panels(metric_names(records) or ["loss"])
    val = "validation (per epoch)"
    labels = list(dict.fromkeys(n if len(ns) > 1 else "train (per step)" for _, ns, _ in panels
                                for n in ns)) + [val]
    fig = panel_grid([p[0] for p in panels], labels, max_cols=max_cols, row_height=height,
                     x_title="step", log_y={i for i, p in enumerate(panels) if p[2]})
    cols, shown = min(len(panels), max_cols), set()
    for i, (_, names, _) in enumerate(panels):
        grouped = len(names) > 1
        for j, name in enumerate(names):
            color = PART_COLORS.get(name, RUN_COLORS[j]) if grouped else TRAIN_COLOR
            fig.add_trace(_train_line(_points(records, name, "step", "train"), name,
                                      name if grouped else labels[0], color, shown), *cell(i, cols))
            fig.add_trace(_val_points(_points(records, name, "epoch", "val"), name, val, shown,
                                      mode="markers", marker=dict(
                                          symbol="diamond", size=9, color=color if grouped else VAL_COLOR,
                                          line=dict(color="#000000", width=1))), *cell(i, cols))
    fig.update_layout(uirevision=LIVE)
    return _steady_ranges(fig)


def overlay_figure(series: list[tuple[str, list[dict]]], *, names: list[str] | None = None,
                   height: int = 280, max_cols: int = 3) -> go.Figure:
    """Several runs' per-epoch curves on shared axes, one panel per metric they share:
    validation solid, training dotted, one colour per run, against the epoch (steps
    differ with the batch size; epochs do not); ``height`` px a row. ``series``: (label,
    metrics.jsonl records) a run.

    >>> fig = overlay_figure([("a", _example_records()), ("b", _example_records(20))])
    >>> sorted({t.name for t in fig.data})
    ['a · train', 'a · val', 'b · train', 'b · val']
    >>> fig.show()  # doctest: +SKIP
    """
    if names is None:
        sets = [set(metric_names([r for r in recs if r.get("event") == "epoch"])) for _, recs in series]
        common = set.intersection(*sets) if sets else set()
        first = next((metric_names(recs) for _, recs in series if recs), [])
        names = [n for n in first if n in common] or ["loss"]
    names = _without_elbo(names)
    labels = [f"{label} · {split}" for label, _ in series for split in ("val", "train")]
    fig = panel_grid(names, labels, max_cols=max_cols, row_height=height, x_title="epoch")
    cols, shown = min(len(names), max_cols), set()
    for i, name in enumerate(names):
        for j, (label, recs) in enumerate(series):
            color = RUN_COLORS[j % len(RUN_COLORS)]
            for split, dash in (("val", "solid"), ("train", "dot")):
                got = [rec for rec in recs if rec.get("event") == "epoch" and rec.get("split") == split
                       and isinstance(rec.get(name), (int, float))]
                name_ = f"{label} · {split}"
                fig.add_trace(scatter(
                    [rec["epoch"] for rec in got], [num(rec[name], DIGITS) for rec in got],
                    mode="lines+markers", name=name_, legendgroup=name_, showlegend=_first(name_, shown),
                    line=dict(color=color, dash=dash, width=2 if split == "val" else 1.2),
                    marker=dict(color=color, size=6 if split == "val" else 4),
                    hovertemplate=VALUE), *cell(i, cols))
    last = max((rec.get("epoch") or 1 for _, recs in series for rec in recs), default=1)
    step = max(1, math.ceil(last / 8))  # whole epochs from 1, the axis ending on a tick
    end = 1 + step * max(1, math.ceil((last - 1) / step))
    pad = 0.03 * (end - 1)  # the first and last markers whole
    fig.update_xaxes(tick0=1, dtick=step, range=[1 - pad, end + pad])
    return _steady_ranges(fig)


K_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def bound_figure(points: dict[str, dict[int, float]], *, height: int = 320) -> go.Figure:
    """The importance-weighted bound on log p(x) (nats per image) against the number of
    samples k on a log axis, one line per run: k = 1 is the ELBO, and the bound rises
    toward log p(x) as k grows (Burda et al. 2016, Theorem 1).

    >>> fig = bound_figure({"vae": {1: -98.1, 10: -95.3, 100: -94.6}})
    >>> fig.layout.xaxis.type, list(fig.data[0].x)
    ('log', [1, 10, 100])
    >>> fig.show()  # doctest: +SKIP
    """
    legend, legend_h = legend_top(list(points))
    fig = go.Figure([scatter([int(k) for k in sorted(by_k)], [num(by_k[k]) for k in sorted(by_k)],
                             mode="lines+markers", name=label,
                             line=dict(color=RUN_COLORS[j % len(RUN_COLORS)], width=2),
                             marker=dict(size=7), hovertemplate="%{y:.2f} nats")
                     for j, (label, by_k) in enumerate(points.items())])
    base_layout(fig, height, margin=dict(t=legend_h + 4), legend=legend, hovermode="x unified",
                showlegend=True)
    fig.update_xaxes(type="log", range=[-0.04, 3.04], tickvals=list(K_TICKS),
                     title=dict(text="importance samples k", standoff=4))
    fig.update_yaxes(title=dict(text="bound on log p(x) (nats per image)", standoff=6))
    return fig
