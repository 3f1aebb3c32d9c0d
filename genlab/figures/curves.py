"""ECharts options of runs (no streamlit here): training curves, live panels, several runs
overlaid and the importance-weighted bound against k, each a :class:`genlab.figures.charts.Chart`
(the option and the height it is laid out for). Pages draw them with st.echarts_chart;
tests read their options."""
from __future__ import annotations

import math

from .charts import RUN_COLORS, TRAIN_COLOR, VAL_COLOR, Chart, num, value_axis
from .tables import metric_names

PART_COLORS = {"d_loss": "#1f77b4", "g_loss": "#ff7f0e", "d_real": "#2ca02c", "d_fake": "#d62728",
               "grad_var": "#2ca02c", "grad_var_nobaseline": "#d62728"}
MAX_POINTS = 2000  # per series; longer series are strided so charts stay light
PANELS = (("D and G losses", ("d_loss", "g_loss"), False),
          ("D outputs: mean D(x), mean D(G(z))", ("d_real", "d_fake"), False),
          ("encoder gradient variance", ("grad_var", "grad_var_nobaseline"), True))
"""Metrics drawn together in one panel (title, names, log y); the others get one each."""
TITLE_H = 24  # px above each panel for its title
X_NAME_H = 20  # px under the bottom row for the x title
LEGEND_LINE_H = 22  # px per line of legend
LEGEND_W = 520  # px the legend is assumed to wrap at (Home's card column is about this wide)
DIGITS = 6  # significant digits of the values of long series


# -- panel grids: one panel per metric ------------------------------------------------------
def _legend(names: list[str]) -> tuple[dict, int]:
    """A legend on top listing each name once, and the height it takes (estimated: about
    7 px a character plus the symbol, wrapped at LEGEND_W)."""
    width = sum(35 + 7 * len(n) for n in names)
    lines = max(1, math.ceil(width / LEGEND_W))
    return {"data": names, "top": 0, "left": 0}, lines * LEGEND_LINE_H + 6


def panel_grid(titles: list[str], series: list[dict], *, max_cols: int, row_height: int,
               x_title: str, log_y: set[int] = frozenset(), x_axis: dict | None = None) -> Chart:
    """Panels titled ``titles``, at most ``max_cols`` a row, ``row_height`` px each: panel i
    is grid i with x and y axes i (log y for i in ``log_y``; ``x_axis``: more x-axis
    options), its title above it, the x title under the bottom row only. ``series`` say
    their panel by xAxisIndex and yAxisIndex. The legend on top names each series once."""
    cols = min(len(titles), max_cols)
    rows = math.ceil(len(titles) / cols)
    names = list(dict.fromkeys(s["name"] for s in series))
    legend, top = _legend(names)
    grids, xs, ys, heads = [], [], [], []
    for i, title in enumerate(titles):
        r, c = divmod(i, cols)
        y0 = top + r * row_height
        left = f"{100 * c / cols + 1:.2f}%"
        bottom_row = r == rows - 1
        # "same": the box holds the axes' labels and names too, so panels never overlap
        grids.append({"left": left, "width": f"{100 / cols - 2:.2f}%", "top": y0 + TITLE_H,
                      "height": row_height - TITLE_H - 6 + (X_NAME_H if bottom_row else 0),
                      "outerBoundsMode": "same", "outerBoundsContain": "all"})
        xs.append(value_axis(x_title if bottom_row else "", gridIndex=i, splitNumber=4,
                             **(x_axis or {})))
        ys.append(value_axis(log=i in log_y, gridIndex=i, splitNumber=4))
        heads.append({"text": title, "left": left, "top": y0 + 2,
                      "textStyle": {"fontSize": 13, "fontWeight": "normal"}})
    spec = {"animation": False, "title": heads, "legend": legend, "grid": grids, "xAxis": xs,
            "yAxis": ys, "series": series,
            "tooltip": {"trigger": "axis", "valueFormatter": "%.4g"}}
    return Chart(spec, top + rows * row_height + X_NAME_H)


def _on(panel: int, **series) -> dict:
    return {"xAxisIndex": panel, "yAxisIndex": panel, **series}


def _points(records: list[dict], name: str, event: str, split: str, *, epoch: bool = False
            ) -> list[list]:
    """[step, value] (and the epoch if asked) of ``name`` in records of ``event`` and
    ``split``, strided to at most MAX_POINTS."""
    pts = [[r["step"], num(r[name], DIGITS)] + ([r.get("epoch")] if epoch else []) for r in records
           if r.get("event") == event and r.get("split") == split
           and isinstance(r.get(name), (int, float)) and isinstance(r.get("step"), (int, float))]
    return pts[::max(1, math.ceil(len(pts) / MAX_POINTS))]


def _train_line(panel: int, name: str, data: list, color: str) -> dict:
    """Per-step training values as a line (a marker while there is one point)."""
    return _on(panel, type="line", name=name, data=data, showSymbol=len(data) < 2, symbolSize=6,
               color=color, lineStyle={"width": 1.5})


def _val_points(panel: int, metric: str, data: list, **style) -> dict:
    """Per-epoch validation values [step, value, epoch]; the tooltip gives the epoch."""
    return _on(panel, name="validation (per epoch)", data=data, dimensions=["step", metric, "epoch"],
               encode={"x": 0, "y": 1, "tooltip": [1, 2]}, **style)


def _without_elbo(names: list[str]) -> list[str]:
    return [n for n in names if n != "elbo" or "loss" not in names]  # elbo = -loss: redundant


def curves_figure(records: list[dict], *, names: list[str] | None = None, height: int = 260,
                  max_cols: int = 3) -> Chart:
    """Training curves, one panel per metric ("loss" then the parts, e.g. recon and kl):
    training records per logged step as a line, validation per epoch as lines and markers,
    both against the optimisation step; ``height`` px a row."""
    names = _without_elbo(names or metric_names(records) or ["loss"])
    series = []
    for i, name in enumerate(names):
        series.append(_train_line(i, "train (per step)", _points(records, name, "step", "train"),
                                  TRAIN_COLOR))
        series.append(_val_points(i, name, _points(records, name, "epoch", "val", epoch=True),
                                  type="line", color=VAL_COLOR, lineStyle={"width": 2},
                                  symbolSize=7))
    return panel_grid(names, series, max_cols=max_cols, row_height=height, x_title="step")


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


def live_figure(records: list[dict], *, height: int = 250, max_cols: int = 3) -> Chart:
    """Training curves while a run trains: per-step training values as lines and
    per-epoch validation values as markers, against the step, in :func:`live_panels`;
    ``height`` px a row."""
    panels = live_panels(metric_names(records) or ["loss"])
    series = []
    for i, (_, names, _) in enumerate(panels):
        grouped = len(names) > 1
        for j, name in enumerate(names):
            color = PART_COLORS.get(name, RUN_COLORS[j]) if grouped else TRAIN_COLOR
            series.append(_train_line(i, name if grouped else "train (per step)",
                                      _points(records, name, "step", "train"), color))
            series.append(_val_points(i, name, _points(records, name, "epoch", "val", epoch=True),
                                      type="scatter", symbol="diamond", symbolSize=10,
                                      itemStyle={"color": color if grouped else VAL_COLOR,
                                                 "borderColor": "#000000", "borderWidth": 1}))
    return panel_grid([p[0] for p in panels], series, max_cols=max_cols, row_height=height,
                      x_title="step", log_y={i for i, p in enumerate(panels) if p[2]})


def overlay_figure(series: list[tuple[str, list[dict]]], *, names: list[str] | None = None,
                   height: int = 280, max_cols: int = 3) -> Chart:
    """Several runs' per-epoch curves on shared axes, one panel per metric they share:
    validation solid, training dotted, one colour per run, against the epoch (steps
    differ with the batch size; epochs do not); ``height`` px a row."""
    if names is None:
        sets = [set(metric_names([r for r in recs if r.get("event") == "epoch"])) for _, recs in series]
        common = set.intersection(*sets) if sets else set()
        first = next((metric_names(recs) for _, recs in series if recs), [])
        names = [n for n in first if n in common] or ["loss"]
    names = _without_elbo(names)
    lines = []
    for i, name in enumerate(names):
        for j, (label, recs) in enumerate(series):
            color = RUN_COLORS[j % len(RUN_COLORS)]
            for split, dash in (("val", "solid"), ("train", "dotted")):
                data = [[rec["epoch"], num(rec[name], DIGITS)] for rec in recs
                        if rec.get("event") == "epoch" and rec.get("split") == split
                        and isinstance(rec.get(name), (int, float))]
                lines.append(_on(i, type="line", name=f"{label} · {split}", data=data, color=color,
                                 lineStyle={"type": dash, "width": 2 if split == "val" else 1.2},
                                 symbolSize=6 if split == "val" else 4))
    last = max((rec.get("epoch") or 1 for _, recs in series for rec in recs), default=1)
    step = max(1, math.ceil(last / 8))  # whole epochs from 1, the axis ending on a tick
    whole = {"min": 1, "max": 1 + step * max(1, math.ceil((last - 1) / step)), "interval": step}
    return panel_grid(names, lines, max_cols=max_cols, row_height=height, x_title="epoch",
                      x_axis=whole)


def bound_figure(points: dict[str, dict[int, float]], *, height: int = 320) -> Chart:
    """The importance-weighted bound on log p(x) (nats per image) against the number of
    samples k on a log axis, one line per run: k = 1 is the ELBO, and the bound rises
    toward log p(x) as k grows (Burda et al. 2016, Theorem 1)."""
    series = [{"type": "line", "name": label, "color": RUN_COLORS[j % len(RUN_COLORS)],
               "data": [[int(k), num(by_k[k])] for k in sorted(by_k)]}
              for j, (label, by_k) in enumerate(points.items())]
    legend, top = _legend(list(points))
    ticks = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    spec = {"animation": False, "legend": legend, "series": series,
            "grid": {"left": 0, "right": 10, "top": top + 10, "bottom": 0,
                     "outerBoundsMode": "same", "outerBoundsContain": "all"},
            "xAxis": value_axis("importance samples k", log=True, min=1, max=1000,
                                axisLabel={"customValues": ticks}, axisTick={"customValues": ticks}),
            "yAxis": value_axis("bound on log p(x) (nats per image)", nameGap=50),
            "tooltip": {"trigger": "axis", "valueFormatter": "%.2f nats"}}
    return Chart(spec, height)
