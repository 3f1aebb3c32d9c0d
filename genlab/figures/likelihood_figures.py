"""Plotly figures of the true posterior, of likelihoods on two datasets and of a
class-conditional model's log p(x|y) against its log p(x) (the Posterior,
Out-of-distribution and Compare pages; importable by scripts, notebooks and tests, no streamlit).
Each builder returns a ``plotly.graph_objects.Figure``: ``fig.show()`` in a notebook,
``fig.write_html(path)`` to keep it. q's contours are plotly's own contour trace."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .charts import CLASS_COLORS, HIGHLIGHT_COLOR, INK, RUN_COLORS, TRAIN_COLOR, floats, scatter

MARGIN = dict(l=10, r=10, t=40, b=10)
Q_COLOR = "#ffffff"
REF_COLOR = CLASS_COLORS[7]  # grey
MAX_CELLS = 128  # the posterior heatmap's cells a side at most (finer grids are averaged)
Q_NAME = "q(z|x): 1, 2, 3 sd"
Q_SIGMAS = (1.0, 2.0, 3.0)  # q's contours: a Gaussian's density 1, 2, 3 sd from its mean
LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, x=0)


def _pool(z1, z2, a, cells: int = MAX_CELLS):
    """Centres and a grid averaged over blocks so that at most ``cells`` remain a side (a
    trailing remainder of cells is dropped); the grid itself if it is that small."""
    f1, f2 = -(-len(z1) // cells), -(-len(z2) // cells)
    m1, m2 = len(z1) // f1, len(z2) // f2
    block = a[:m1 * f1, :m2 * f2].reshape(m1, f1, m2, f2).mean(axis=(1, 3))
    return z1[:m1 * f1].reshape(m1, f1).mean(1), z2[:m2 * f2].reshape(m2, f2).mean(1), block


def q_levels(q_max: float) -> list[float]:
    """q's contour levels, for 1, 2 and 3 sd (``Q_SIGMAS``): where a Gaussian's density is
    exp(-s^2 / 2) of its peak ``q_max``; the ellipses hold about 39 %, 86 % and 99 % of it."""
    return [float(q_max * np.exp(-0.5 * s * s)) for s in Q_SIGMAS]


def posterior_figure(z1, z2, post, q, *, code=None, height: int = 460) -> go.Figure:
    """p(z|x) as a heatmap over the grid (post[i, j] at z1[i], z2[j], a density; grids finer
    than 128 cells a side averaged over blocks), with a colour bar, and q(z|x)'s density
    (q[i, j], on the same grid) as plotly contour lines at :func:`q_levels` (1, 2 and 3
    standard deviations of a Gaussian), the encoder's mean ``code`` (2,) as a cross. One
    unit of z1 and of z2 are the same length on screen.

    >>> import numpy as np
    >>> z = np.linspace(-3, 3, 61)
    >>> q = np.exp(-0.5 * (z[:, None] ** 2 + z[None, :] ** 2)) / (2 * np.pi)
    >>> fig = posterior_figure(z, z, np.roll(q, 5, axis=0), q, code=[0.0, 0.0])
    >>> [t.type for t in fig.data], fig.layout.yaxis.scaleanchor  # p, q's 3 levels, the code
    (['heatmap', 'contour', 'contour', 'contour', 'scatter'], 'x')
    >>> fig.show()  # in a notebook
    """
    z1, z2 = np.asarray(z1, float), np.asarray(z2, float)
    post, q = np.asarray(post, float), np.asarray(q, float)
    levels = q_levels(float(q.max()))
    q = _pool(z1, z2, q)[2]
    z1, z2, post = _pool(z1, z2, post)
    h1 = (z1[1] - z1[0]) / 2 if len(z1) > 1 else 0.5
    h2 = (z2[1] - z2[0]) / 2 if len(z2) > 1 else 0.5
    fig = go.Figure(go.Heatmap(
        x=z1, y=z2, z=post.T.astype(np.float32), colorscale="Viridis", zmin=0.0, name="p(z|x)",
        colorbar=dict(title=dict(text="p(z|x)"), thickness=12),
        hovertemplate="z1 %{x:.3g}, z2 %{y:.3g}<br>p(z|x) %{z:.3g}<extra></extra>"))
    for i, level in enumerate(levels):  # one trace a level (they are not evenly spaced), one legend entry
        fig.add_trace(go.Contour(
            x=z1, y=z2, z=q.T.astype(np.float32), showscale=False, name=Q_NAME, legendgroup="q",
            showlegend=i == 0, hoverinfo="skip", line=dict(color=Q_COLOR, width=1.5),
            contours=dict(coloring="none", start=level, end=level, size=level)))
    if code is not None:
        fig.add_trace(go.Scatter(
            x=[float(code[0])], y=[float(code[1])], mode="markers", name="encode(x)",
            marker=dict(symbol="x", size=12, color=Q_COLOR, line=dict(color=INK, width=1)),
            hovertemplate="encode(x): (%{x:.3g}, %{y:.3g})<extra></extra>"))
    fig.update_layout(height=height, margin=MARGIN, plot_bgcolor="#440154",  # Viridis' lowest
                      legend=LEGEND | dict(bgcolor="#440154", font=dict(color=Q_COLOR)))
    fig.update_xaxes(title="z1", range=[z1[0] - h1, z1[-1] + h1], constrain="domain", showgrid=False,
                     zeroline=False)
    fig.update_yaxes(title="z2", range=[z2[0] - h2, z2[-1] + h2], constrain="domain", showgrid=False,
                     zeroline=False, scaleanchor="x", scaleratio=1)
    return fig


def iw_figure(iw: dict[int, list[float]], log_px: float, elbo: float, *, height: int = 360) -> go.Figure:
    """Importance-weighted estimates of log p(x) against k on a log axis (``iw``: k -> the
    repeats' estimates; each repeat a dot, their mean a line), the quadrature's log p(x)
    and the ELBO as horizontal lines across it.

    >>> fig = iw_figure({1: [-92.0, -91.5], 10: [-90.2, -90.4], 100: [-89.9, -89.8]}, -89.6, -92.3)
    >>> [t.name for t in fig.data[2:]], fig.layout.xaxis.type
    (['log p(x) by quadrature -89.60', 'ELBO -92.30'], 'log')
    >>> fig.show()  # in a notebook
    """
    ks = sorted(iw)
    k_lo, k_hi = ks[0] / 2, ks[-1] * 2  # the axis' ends: room for the dots at the first and last k

    def level(name: str, y: float, color: str, dash: str) -> go.Scatter:  # a line across the axis
        return go.Scatter(x=[k_lo, k_hi], y=[float(y)] * 2, mode="lines", name=name, hoverinfo="name",
                          line=dict(color=color, dash=dash))

    fig = go.Figure([
        go.Scatter(x=[int(k) for k in ks for _ in iw[k]], y=[float(v) for k in ks for v in iw[k]],
                   mode="markers", name="IW(k), each draw", marker=dict(size=7, opacity=0.5, color=TRAIN_COLOR),
                   hovertemplate="k %{x}: %{y:.2f}<extra></extra>"),
        go.Scatter(x=[int(k) for k in ks], y=[float(np.mean(iw[k])) for k in ks], mode="lines+markers",
                   name="IW(k), mean of the draws", line=dict(color=TRAIN_COLOR),
                   hovertemplate="k %{x}: mean %{y:.2f}<extra></extra>"),
        level(f"log p(x) by quadrature {log_px:.2f}", log_px, HIGHLIGHT_COLOR, "dash"),
        level(f"ELBO {elbo:.2f}", elbo, REF_COLOR, "dot"),
    ])
    fig.update_layout(height=height, margin=MARGIN, legend=LEGEND)
    fig.update_xaxes(type="log", range=[np.log10(k_lo), np.log10(k_hi)], title="k (importance samples)")
    fig.update_yaxes(title="log p(x) estimate (nats)")
    return fig


def ood_histogram_figure(series: list[tuple[str, np.ndarray]], unit: str, *, height: int = 320,
                         bins: int = 50) -> go.Figure:
    """Overlaid histograms (densities) of -log p(x) per image, one per (name, scores), on
    common bins from the 0.5th to the 99.5th percentile of all scores: half-transparent bars
    a bin wide, each density = count / (all of the series' scores x bin width), so a series'
    bars hold the share of its scores inside the bins (binned here with numpy, so the figure
    carries bins x series numbers whatever the count of images).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> fig = ood_histogram_figure([("own", rng.normal(90, 5, 500)), ("other", rng.normal(80, 8, 500))], "nats")
    >>> [t.name for t in fig.data], len(fig.data[0].x), fig.layout.barmode
    (['own', 'other'], 50, 'overlay')
    >>> fig.show()  # in a notebook
    """
    allv = np.concatenate([np.asarray(s, float) for _, s in series])
    lo, hi = np.percentile(allv, [0.5, 99.5])
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    fig = go.Figure()
    for i, (name, s) in enumerate(series):
        s = np.asarray(s, float)
        dens = np.histogram(s, bins=edges)[0] / (len(s) * np.diff(edges))
        fig.add_trace(go.Bar(x=centres, y=dens, width=width, name=name, opacity=0.55,
                             marker=dict(color=RUN_COLORS[i % len(RUN_COLORS)], line=dict(width=0)),
                             hovertemplate=f"{name}: %{{y:.3g}}<extra></extra>"))
    fig.update_layout(height=height, margin=MARGIN, barmode="overlay", bargap=0, legend=LEGEND,
                      hovermode="x unified")
    fig.update_xaxes(title=f"-log p(x) ({unit}); lower = more likely", hoverformat=".4g")
    fig.update_yaxes(title="density", rangemode="tozero")
    return fig


def given_scatter_figure(nll, nll_given, unit: str, *, height: int = 420) -> go.Figure:
    """Each image's -log p(x|y) with its own label y (vertical) against -log p(x) (horizontal)
    of one class-conditional model, in ``unit``, with the line y = x; one unit is the same
    length on both axes. By Bayes' rule log p(x|y) - log p(x) = log p(y|x) - log p(y): the
    images below the line are those whose label the model's classifier finds likelier than
    its prior does, those above the others (two traces, their counts in the legend); WebGL
    (Scattergl) from charts.GL_POINTS points on.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> nll = rng.normal(90, 5, 500)
    >>> fig = given_scatter_figure(nll, nll - np.log(10) + rng.exponential(0.3, 500), "nats")
    >>> [len(t.x) for t in fig.data], fig.layout.yaxis.scaleanchor  # y = x, below it, above it
    ([2, 499, 1], 'x')
    >>> fig.show()  # in a notebook
    """
    nll, given = np.asarray(nll, float), np.asarray(nll_given, float)
    below = given < nll
    lo, hi = float(min(nll.min(), given.min())), float(max(nll.max(), given.max()))
    pad = 0.03 * (hi - lo) if hi > lo else 0.5
    lo, hi = lo - pad, hi + pad
    fig = go.Figure(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x: log p(x|y) = log p(x)",
                               hoverinfo="skip", line=dict(color=REF_COLOR, dash="dash")))
    hover = (f"image %{{customdata}}<br>-log p(x) %{{x:.4g}}<br>-log p(x|y) %{{y:.4g}} {unit}"
             "<extra></extra>")
    for mask, name, color in ((below, "p(y|x) > p(y): below the line", RUN_COLORS[0]),
                              (~below, "p(y|x) <= p(y)", HIGHLIGHT_COLOR)):
        idx = np.flatnonzero(mask)
        fig.add_trace(scatter(floats(nll[idx]), floats(given[idx]), mode="markers",
                              name=f"{name} ({len(idx)} images)", customdata=idx.tolist(),
                              hovertemplate=hover, marker=dict(size=5, opacity=0.6, color=color)))
    fig.update_layout(height=height, margin=MARGIN, legend=LEGEND)
    fig.update_xaxes(title=f"-log p(x) ({unit})", range=[lo, hi], constrain="domain")
    fig.update_yaxes(title=f"-log p(x | y), its own label ({unit})", range=[lo, hi],
                     constrain="domain", scaleanchor="x", scaleratio=1)
    return fig
