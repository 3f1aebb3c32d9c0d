"""ECharts options of the true posterior and of likelihoods on two datasets (the Posterior
and Out-of-distribution pages; importable by scripts and tests, no streamlit). Each builder
returns a :class:`genlab.figures.charts.Chart`. ECharts has neither contours nor histograms: q's
contours are traced by contourpy and the scores binned with numpy."""
from __future__ import annotations

import numpy as np

from .charts import (CLASS_COLORS, HIGHLIGHT_COLOR, INK, RUN_COLORS, TRAIN_COLOR, Chart, num,
                     value_axis)

Q_COLOR = "#ffffff"
REF_COLOR = CLASS_COLORS[7]  # grey
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
           "#6ece58", "#b5de2b", "#fde725")
MAX_CELLS = 128  # the posterior heatmap's cells a side at most (finer grids are averaged)
Q_NAME = "q(z|x): 1, 2, 3 sd"
Q_SIGMAS = (1.0, 2.0, 3.0)  # q's contours: a Gaussian's density 1, 2, 3 sd from its mean
LEFT, TOP = 56, 40  # the posterior's plot area: fixed, so that its two axes keep one scale
CROSS = "path://M1,0L5,4L9,0L10,1L6,5L10,9L9,10L5,6L1,10L0,9L4,5L0,1Z"  # an x


def _pool(z1, z2, a, cells: int = MAX_CELLS):
    """Centres and a grid averaged over blocks so that at most ``cells`` remain a side (a
    trailing remainder of cells is dropped); the grid itself if it is that small."""
    f1, f2 = -(-len(z1) // cells), -(-len(z2) // cells)
    m1, m2 = len(z1) // f1, len(z2) // f2
    block = a[:m1 * f1, :m2 * f2].reshape(m1, f1, m2, f2).mean(axis=(1, 3))
    return z1[:m1 * f1].reshape(m1, f1).mean(1), z2[:m2 * f2].reshape(m2, f2).mean(1), block


def contour(z1, z2, f, level: float) -> list:
    """Where f (f[i, j] at z1[i], z2[j]) crosses ``level`` (contourpy, the contouring of
    matplotlib: ECharts draws lines but traces no contours), as polylines: [z1, z2] points
    with None between lines (a gap in an ECharts line); a closed line ends where it starts."""
    from contourpy import LineType, contour_generator

    gen = contour_generator(x=np.asarray(z1, float), y=np.asarray(z2, float), z=np.asarray(f, float).T,
                            line_type=LineType.Separate)
    out: list = []
    for line in gen.lines(level):
        out += [[num(a, 4), num(b, 4)] for a, b in line] + [None]
    return out


def posterior_figure(z1, z2, post, q, *, code=None, height: int = 460) -> Chart:
    """p(z|x) as a heatmap over the grid (post[i, j] at z1[i], z2[j], a density; grids finer
    than 128 cells a side averaged over blocks), with a colour bar, and q(z|x)'s density as
    contour lines (``contour``, on the same grid) at the levels holding about 39 %, 86 %
    and 99 % of a Gaussian (1, 2 and 3 standard deviations), the encoder's mean as a cross.
    The plot area is sized so that a unit of z1 and of z2 are the same length on screen."""
    z1, z2 = np.asarray(z1, float), np.asarray(z2, float)
    post, q = np.asarray(post, float), np.asarray(q, float)
    top = float(q.max())
    q = _pool(z1, z2, q)[2]
    z1, z2, post = _pool(z1, z2, post)
    h1 = (z1[1] - z1[0]) / 2 if len(z1) > 1 else 0.5
    h2 = (z2[1] - z2[0]) / 2 if len(z2) > 1 else 0.5
    x_lo, x_hi, y_lo, y_hi = z1[0] - h1, z1[-1] + h1, z2[0] - h2, z2[-1] + h2
    # the plot area in pixels, one unit of z1 as long as one of z2, at most 380 px wide
    side = height - TOP - 90
    w, h = side * (x_hi - x_lo) / (y_hi - y_lo), side
    if w > 380:
        w, h = 380, 380 * (y_hi - y_lo) / (x_hi - x_lo)
    w, h = round(w), round(h)
    # the heatmap's lowest colour behind it: no light seams where cells meet between pixels
    grid = {"left": LEFT, "top": TOP, "width": w, "height": h, "outerBoundsMode": "none",
            "show": True, "backgroundColor": VIRIDIS[0], "borderWidth": 0}
    cells = [[i, j, num(post[i, j], 3), num(z1[i], 3), num(z2[j], 3)]
             for i in range(len(z1)) for j in range(len(z2))]
    hidden = {"type": "category", "show": False}
    shown = {"nameLocation": "middle", "scale": False, "splitLine": {"show": False},
             "axisLabel": {"showMinLabel": False, "showMaxLabel": False}}
    series = [{"type": "heatmap", "name": "p(z|x)", "data": cells, "xAxisIndex": 0, "yAxisIndex": 0,
               "itemStyle": {"borderWidth": 0},
               "tooltip": {"formatter": "z1 {@[3]}, z2 {@[4]}<br/>p(z|x) {@[2]}"}}]
    for s in Q_SIGMAS:  # one legend entry for the three
        series.append({"type": "line", "name": Q_NAME, "xAxisIndex": 1, "yAxisIndex": 1,
                       "data": contour(z1, z2, q, top * np.exp(-0.5 * s * s)), "showSymbol": False,
                       "connectNulls": False, "silent": True, "lineStyle": {"color": Q_COLOR, "width": 1.5},
                       "itemStyle": {"color": Q_COLOR, "borderColor": INK}})
    if code is not None:
        series.append({"type": "scatter", "name": "encode(x)", "xAxisIndex": 1, "yAxisIndex": 1,
                       "data": [[num(code[0], 4), num(code[1], 4)]], "symbol": CROSS, "symbolSize": 12,
                       "itemStyle": {"color": Q_COLOR, "borderColor": INK, "borderWidth": 0.8}})
    spec = {
        "animation": False,
        "grid": grid,
        # on the heatmap's darkest colour, where the white lines and cross show; plain icons
        "legend": {"top": 0, "left": LEFT, "backgroundColor": VIRIDIS[0], "textStyle": {"color": Q_COLOR},
                   "borderRadius": 3,
                   "data": [{"name": Q_NAME, "itemStyle": {"opacity": 0}},
                            {"name": "encode(x)", "itemStyle": {"color": Q_COLOR, "borderWidth": 0}}]},
        "tooltip": {"trigger": "item"},
        "xAxis": [{**hidden, "data": [str(i) for i in range(len(z1))]},
                  {**shown, "type": "value", "name": "z1", "nameGap": 26, "position": "bottom",
                   "min": num(x_lo), "max": num(x_hi)}],
        "yAxis": [{**hidden, "data": [str(j) for j in range(len(z2))]},
                  {**shown, "type": "value", "name": "z2", "nameGap": 38, "position": "left",
                   "min": num(y_lo), "max": num(y_hi)}],
        "visualMap": {"type": "continuous", "seriesIndex": 0, "dimension": 2, "min": 0.0,
                      "max": num(post.max(), 3) or 1.0, "orient": "horizontal",
                      "left": LEFT, "top": TOP + h + 48, "itemWidth": 12,
                      "itemHeight": min(max(w - 90, 120), 220),
                      "text": [f"{post.max():.3g}", "p(z|x)  0"], "inRange": {"color": list(VIRIDIS)}},
        "series": series,
    }
    return Chart(spec, height, max(LEFT + w + 24, 330))


def iw_figure(iw: dict[int, list[float]], log_px: float, elbo: float, *, height: int = 360) -> Chart:
    """Importance-weighted estimates of log p(x) against k on a log axis (each repeat a dot,
    their mean a line), the quadrature's log p(x) and the ELBO as horizontal lines."""
    ks = sorted(iw)
    k_lo, k_hi = ks[0] / 2, ks[-1] * 2  # the axis' ends: room for the dots at the first and last k

    def level(name: str, y: float, color: str, dash: str) -> dict:  # a line across the axis
        return {"type": "line", "name": name, "data": [[k_lo, num(y)], [k_hi, num(y)]], "symbol": "none",
                "color": color, "lineStyle": {"color": color, "type": dash}}

    series = [
        {"type": "scatter", "name": "IW(k), each draw", "data": [[int(k), num(v)] for k in ks for v in iw[k]],
         "symbolSize": 7, "itemStyle": {"color": TRAIN_COLOR, "opacity": 0.5}},
        {"type": "line", "name": "IW(k), mean of the draws", "color": TRAIN_COLOR,
         "data": [[int(k), num(np.mean(iw[k]))] for k in ks], "lineStyle": {"color": TRAIN_COLOR}},
        level(f"log p(x) by quadrature {log_px:.2f}", log_px, HIGHLIGHT_COLOR, "dashed"),
        level(f"ELBO {elbo:.2f}", elbo, REF_COLOR, "dotted"),
    ]
    legend = [s["name"] for s in series[:2]] + [{"name": s["name"], "itemStyle": {"opacity": 0}}
                                                for s in series[2:]]  # the lines' icons: no dot
    spec = {
        "animation": False,
        "grid": {"left": 64, "right": 20, "top": 56, "bottom": 48, "outerBoundsMode": "none"},  # as set
        "legend": {"top": 0, "data": legend},
        "tooltip": {"trigger": "item"},
        "xAxis": value_axis("k (importance samples)", log=True, min=k_lo, max=k_hi,
                            axisLabel={"showMinLabel": False, "showMaxLabel": False}),
        "yAxis": value_axis("log p(x) estimate (nats)", nameGap=48),
        "series": series,
    }
    return Chart(spec, height)


def ood_histogram_figure(series: list[tuple[str, np.ndarray]], unit: str, *, height: int = 320,
                         bins: int = 50) -> Chart:
    """Overlaid histograms (densities) of -log p(x) per image, one per (name, scores), on
    common bins from the 0.5th to the 99.5th percentile of all scores: half-transparent bars
    at the bins' centres, each density = count / (all of the series' scores x bin width), so
    a series' bars hold the share of its scores inside the bins."""
    allv = np.concatenate([np.asarray(s, float) for _, s in series])
    lo, hi = np.percentile(allv, [0.5, 99.5])
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    out = []
    for i, (name, s) in enumerate(series):
        s = np.asarray(s, float)
        dens = np.histogram(s, bins=edges)[0] / (len(s) * np.diff(edges))
        color = RUN_COLORS[i % len(RUN_COLORS)]
        out.append({"type": "bar", "name": name, "barGap": "-100%", "barCategoryGap": "0%", "color": color,
                    "data": [[num(c, 6), num(d, 4)] for c, d in zip(centres, dens)],
                    "itemStyle": {"color": color, "opacity": 0.55}})
    spec = {
        "animation": False,
        "grid": {"left": 64, "right": 20, "top": 40, "bottom": 48, "outerBoundsMode": "none"},  # as set
        "legend": {"top": 0},
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "xAxis": value_axis(f"-log p(x) ({unit}); lower = more likely"),
        "yAxis": value_axis("density", nameGap=48, scale=False),
        "series": out,
    }
    return Chart(spec, height)
