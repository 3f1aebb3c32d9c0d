"""Plotly figures of the true posterior and of likelihoods on two datasets (the Posterior
and Out-of-distribution pages; importable by scripts and tests, no streamlit)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

MARGIN = dict(l=10, r=10, t=40, b=10)
Q_COLOR = "#ffffff"
EXACT_COLOR = "#d62728"


def posterior_figure(z1, z2, post, q, *, code=None, height: int = 460) -> go.Figure:
    """p(z|x) as a heatmap over the grid (post[i, j] at z1[i], z2[j], a density) and q(z|x)'s
    density as contour lines at the levels holding about 39 %, 86 % and 99 % of a Gaussian
    (1, 2 and 3 standard deviations), the encoder's mean as a cross."""
    z1, z2 = np.asarray(z1), np.asarray(z2)
    post, q = np.asarray(post), np.asarray(q)
    fig = go.Figure(go.Heatmap(x=z1, y=z2, z=post.T, colorscale="Viridis", name="p(z|x)",
                               colorbar=dict(title="p(z|x)"),
                               hovertemplate="z1 %{x:.2f}, z2 %{y:.2f}<br>p(z|x) %{z:.3g}<extra></extra>"))
    top = float(q.max())
    levels = sorted(top * np.exp(-0.5 * np.array([9.0, 4.0, 1.0])))  # 3, 2, 1 sigma of a Gaussian
    for i, level in enumerate(levels):
        fig.add_trace(go.Contour(
            x=z1, y=z2, z=q.T, showscale=False, contours=dict(coloring="none", start=level, end=level,
                                                               size=1.0), line=dict(color=Q_COLOR, width=1.5),
            name="q(z|x): 1, 2, 3 sd", showlegend=i == 0, legendgroup="q", hoverinfo="skip"))
    if code is not None:
        fig.add_trace(go.Scatter(x=[float(code[0])], y=[float(code[1])], mode="markers",
                                 marker=dict(symbol="x", size=11, color=Q_COLOR), name="encode(x)"))
    fig.update_layout(height=height, margin=MARGIN, xaxis_title="z1", yaxis_title="z2",
                      legend=dict(orientation="h", y=1.08, bgcolor="rgba(255,255,255,0.6)"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def iw_figure(iw: dict[int, list[float]], log_px: float, elbo: float, *, height: int = 360) -> go.Figure:
    """Importance-weighted estimates of log p(x) against k (each repeat a dot, their mean a
    line), the quadrature's log p(x) and the ELBO as horizontal lines."""
    ks = sorted(iw)
    fig = go.Figure()
    xs = [k for k in ks for _ in iw[k]]
    ys = [v for k in ks for v in iw[k]]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="IW(k), each draw",
                             marker=dict(size=6, opacity=0.5, color="#1f77b4")))
    fig.add_trace(go.Scatter(x=ks, y=[float(np.mean(iw[k])) for k in ks], mode="lines+markers",
                             name="IW(k), mean of the draws", line=dict(color="#1f77b4")))
    fig.add_hline(y=log_px, line=dict(color=EXACT_COLOR, dash="dash"),
                  annotation_text=f"log p(x) by quadrature {log_px:.2f}", annotation_position="bottom right")
    fig.add_hline(y=elbo, line=dict(color="#7f7f7f", dash="dot"),
                  annotation_text=f"ELBO {elbo:.2f}", annotation_position="top right")
    fig.update_layout(height=height, margin=MARGIN, xaxis_title="k (importance samples)",
                      yaxis_title="log p(x) estimate (nats)", legend=dict(orientation="h", y=1.12))
    fig.update_xaxes(type="log")
    return fig


def ood_histogram_figure(series: list[tuple[str, np.ndarray]], unit: str, *, height: int = 320,
                         bins: int = 50) -> go.Figure:
    """Overlaid histograms (densities) of -log p(x) per image, one per (name, scores)."""
    allv = np.concatenate([np.asarray(s) for _, s in series])
    lo, hi = np.percentile(allv, [0.5, 99.5])
    size = (hi - lo) / bins if hi > lo else 1.0
    fig = go.Figure([go.Histogram(x=np.asarray(s), name=name, histnorm="probability density",
                                  opacity=0.6, xbins=dict(start=float(lo), end=float(hi), size=float(size)))
                     for name, s in series])
    fig.update_layout(barmode="overlay", height=height, margin=MARGIN,
                      xaxis_title=f"-log p(x) ({unit}); lower = more likely", yaxis_title="density",
                      legend=dict(orientation="h", y=1.12))
    return fig
