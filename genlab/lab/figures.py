"""Plotly figures of the 2-D lab (they show in a notebook with ``fig.show()`` too): pure
functions of arrays and of an :class:`~genlab.lab.train.Experiment`.

- :func:`density_figure`: a density on the grid as a heatmap, samples over it;
- :func:`layers_figure`: base samples and a square grid carried through a flow's layers;
- :func:`critic_figure`: a GAN's D(x) as a heatmap, its samples and the generator's pull;
- :func:`latent_figure`: a VAE's decoder curve in data space, q(z|x) of chosen points, the
  aggregate posterior against the prior;
- :func:`ellipses_figure`: a mixture's 2-sigma ellipses at each of its last EM steps;
- :func:`curves_figure`: the loss and the exact KL against steps;
- :func:`view_figure`: the family's own view, by what the family declares.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .targets import BOX, Grid

RANGE = [-BOX, BOX]
SAMPLES = 1000  # points drawn over a density
DISPLAY = 64  # heatmaps are shown at DISPLAY x DISPLAY (grid cells averaged in blocks)
SQUARE = dict(range=RANGE, constrain="domain", showgrid=False, zeroline=False)


def _square(fig: go.Figure, height: int = 320, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=36, b=10), showlegend=False,
                      uirevision="lab", **kw)
    fig.update_xaxes(**SQUARE)
    fig.update_yaxes(scaleanchor="x", **SQUARE)
    return fig


def display_grid(values: np.ndarray, grid: Grid, size: int = DISPLAY) -> tuple[np.ndarray, np.ndarray]:
    """(n*n,) grid values -> (centres (m,), z (m, m)) averaged in blocks to at most ``size``."""
    z = np.asarray(values, dtype=np.float64).reshape(grid.n, grid.n)
    f = max(1, grid.n // size)
    m = grid.n // f
    z = z[:m * f, :m * f].reshape(m, f, m, f).mean((1, 3))
    centres = -grid.box + (2 * grid.box / m) * (np.arange(m) + 0.5)
    return centres, z


def _heat(values, grid: Grid, colorscale: str = "Viridis", **kw) -> go.Heatmap:
    c, z = display_grid(values, grid)
    return go.Heatmap(x=c, y=c, z=np.round(z, 5), colorscale=colorscale, showscale=False,
                      hoverinfo="skip", **kw)


def _points(x, color: str = "white", size: int = 3, name: str = "", **kw) -> go.Scattergl:
    x = np.asarray(x)
    return go.Scattergl(x=np.round(x[:, 0], 3), y=np.round(x[:, 1], 3), mode="markers", name=name,
                        marker=dict(size=size, color=color, opacity=0.6), hoverinfo="skip", **kw)


def density_figure(values: np.ndarray, grid: Grid, title: str, samples=None, *,
                   height: int = 320) -> go.Figure:
    """A density (n*n,) on the grid as a heatmap, with optional samples (B, 2) over it.

    >>> grid = Grid(32)
    >>> p = grid.points().numpy()
    >>> fig = density_figure(np.exp(-0.5 * (p ** 2).sum(1)) / (2 * np.pi), grid, "N(0, I)", p[:5])
    >>> len(fig.data), fig.data[0].z.shape, fig.layout.title.text
    (2, (32, 32), 'N(0, I)')
    >>> fig.show()  # doctest: +SKIP
    """
    fig = go.Figure(_heat(values, grid))
    if samples is not None:
        fig.add_trace(_points(samples))
    return _square(fig, height, title=dict(text=title, font=dict(size=13)))


def _grid_lines(lim: float = 3.0, lines: int = 9, pts: int = 30) -> list[torch.Tensor]:
    """A square grid in the base space: each line as (pts, 2)."""
    t = torch.linspace(-lim, lim, pts)
    out = []
    for v in torch.linspace(-lim, lim, lines):
        out.append(torch.stack([t, torch.full_like(t, float(v))], 1))
        out.append(torch.stack([torch.full_like(t, float(v)), t], 1))
    return out


def _segments(lines: list[np.ndarray]) -> tuple[list, list]:
    xs, ys = [], []
    for line in lines:
        xs += [*np.round(line[:, 0], 3), None]
        ys += [*np.round(line[:, 1], 3), None]
    return xs, ys


def _layer_picks(n_layers: int, panels: int) -> list[int]:
    """Which of the states 0..n_layers to show: base, data and evenly between."""
    if n_layers + 1 <= panels:
        return list(range(n_layers + 1))
    return sorted({round(i * n_layers / (panels - 1)) for i in range(panels)})


def layers_figure(family, n: int = 300, panels: int = 6, seed: int = 0) -> go.Figure:
    """Base samples and a square grid carried through each layer in turn (evenly chosen
    layers when there are more than ``panels``), the points coloured by their base angle.

    >>> from genlab.lab.families import Options, make_family
    >>> from genlab.lab.targets import get_target
    >>> flow = make_family("realnvp", get_target("moons"), Options(couplings=2, hidden=8), lr=1e-3)
    >>> [a.text for a in layers_figure(flow, n=50).layout.annotations]
    ['base N(0, I)', '1: AffineCoupling', '2: AffineCoupling']
    """
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    lines = _grid_lines()
    states = family.trace(torch.cat([z, *lines]))
    names = family.layer_names()
    picks = _layer_picks(len(states) - 1, panels)
    cols = min(3, len(picks))
    rows = math.ceil(len(picks) / cols)
    fig = make_subplots(rows, cols, subplot_titles=[f"{i}: {names[i]}" if i else "base N(0, I)" for i in picks],
                        horizontal_spacing=0.03, vertical_spacing=0.08)
    colour = np.arctan2(z[:, 1].numpy(), z[:, 0].numpy())
    for j, i in enumerate(picks):
        r, c = j // cols + 1, j % cols + 1
        s = states[i].numpy()
        pts, rest = s[:n], s[n:]
        xs, ys = _segments(np.split(rest, len(lines)))
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(width=1, color="rgba(90,90,90,0.5)"),
                                   hoverinfo="skip"), r, c)
        fig.add_trace(go.Scattergl(x=np.round(pts[:, 0], 3), y=np.round(pts[:, 1], 3), mode="markers",
                                   marker=dict(size=3, color=colour, colorscale="HSV"), hoverinfo="skip"), r, c)
    fig.update_layout(height=200 * rows + 20, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      uirevision="lab")
    fig.update_annotations(font_size=11)
    fig.update_xaxes(range=RANGE, showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(range=RANGE, showticklabels=False, showgrid=False, zeroline=False)
    return fig


def critic_figure(family, data: torch.Tensor, grid: Grid, n: int = 300) -> go.Figure:
    """D(x) over the plane (dark: fake, bright: real), real points (green), generated ones
    (magenta) with arrows along the generator's gradient (GAN Lab's view).

    >>> from genlab.lab.families import Options, make_family
    >>> from genlab.lab.targets import get_target
    >>> moons = get_target("moons")
    >>> gan = make_family("gan", moons, Options(hidden=8), lr=1e-3)
    >>> fig = critic_figure(gan, moons.sample(100), Grid(32), n=50)
    >>> [t.type for t in fig.data], (fig.data[0].zmin, fig.data[0].zmax)
    (['heatmap', 'scattergl', 'scattergl', 'scattergl'], (0, 1))
    >>> fig.show()  # doctest: +SKIP
    """
    d = family.critic(grid.points()).numpy()
    fake, pull = family.generator_pull(n)
    norm = pull.norm(dim=1, keepdim=True).clamp_min(1e-12)
    tips = fake + 0.35 * pull / norm.max()  # the longest arrow 0.35 long
    xs, ys = [], []
    for a, b in zip(np.round(fake.numpy(), 3), np.round(tips.numpy(), 3)):
        xs += [a[0], b[0], None]
        ys += [a[1], b[1], None]
    fig = go.Figure(_heat(d, grid, "RdBu", zmin=0, zmax=1))
    fig.add_trace(_points(data[:n], "limegreen"))
    fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(width=1, color="black"), hoverinfo="skip"))
    fig.add_trace(_points(fake, "magenta"))
    return _square(fig, title=dict(text="D(x) (blue: real) · G's samples and gradient", font=dict(size=13)))


def _ellipse(mean: np.ndarray, cov: np.ndarray, k: float = 2.0, pts: int = 40) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * np.pi, pts)
    circle = np.stack([np.cos(t), np.sin(t)], 1) * (k * np.sqrt(np.maximum(vals, 0)))
    return mean + circle @ vecs.T


def latent_figure(family, data: torch.Tensor, picked: np.ndarray | None = None) -> go.Figure:
    """Left, data space: the data, the decoder's mean curve (1-D latent: z from -3 to 3; 2-D:
    a square grid of z) and the picked points. Right, latent space: the aggregate posterior
    (one z ~ q(z|x) per data point) against the prior N(0, I), and q(z|x) of the picked points.

    >>> from genlab.lab.families import Options, make_family
    >>> from genlab.lab.targets import get_target
    >>> moons = get_target("moons")
    >>> vae = make_family("vae", moons, Options(hidden=8, latent=2), lr=1e-3)
    >>> fig = latent_figure(vae, moons.sample(600), picked=np.array([[0.0, 0.5]]))
    >>> len(fig.data), fig.data[-1].xaxis  # data, decoder, codes, 2 prior rings, pick, its q(z|x)
    (7, 'x2')
    >>> fig.show()  # doctest: +SKIP
    """
    d = family.opts.latent
    fig = make_subplots(1, 2, subplot_titles=["data: decoder mean of z (lines), picked x (stars)",
                                              "latent: aggregate q(z) (dots), prior, q(z|x) of picks"])
    fig.add_trace(_points(data[:600], "steelblue", customdata=np.arange(600)), 1, 1)
    lines = _grid_lines(2.5, 7) if d == 2 else [torch.linspace(-3, 3, 120)[:, None]]
    dec = [family.decoder_mean_logvar(line)[0].numpy() for line in lines]
    xs, ys = _segments(dec)
    fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color="darkorange", width=1.5)), 1, 1)
    mu, logvar = family.posterior(data[:600])
    z = (mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))).numpy()
    if d == 2:
        fig.add_trace(_points(z, "steelblue"), 1, 2)
        for r in (1, 2):
            ring = _ellipse(np.zeros(2), np.eye(2), r)
            fig.add_trace(go.Scatter(x=ring[:, 0], y=ring[:, 1], mode="lines", line=dict(color="gray", dash="dot")), 1, 2)
    else:
        fig.add_trace(go.Histogram(x=z[:, 0], histnorm="probability density", nbinsx=40,
                                   marker_color="steelblue", opacity=0.6), 1, 2)
        t = np.linspace(-4, 4, 100)
        fig.add_trace(go.Scatter(x=t, y=np.exp(-t ** 2 / 2) / math.sqrt(2 * math.pi), mode="lines",
                                 line=dict(color="gray", dash="dot")), 1, 2)
    if picked is not None and len(picked):
        px = torch.as_tensor(np.asarray(picked, dtype=np.float32))
        fig.add_trace(go.Scatter(x=px[:, 0], y=px[:, 1], mode="markers",
                                 marker=dict(symbol="star", size=12, color="crimson")), 1, 1)
        pm, plv = (a.numpy() for a in family.posterior(px))
        for m, lv in zip(pm, plv):
            if d == 2:
                e = _ellipse(m, np.diag(np.exp(lv)))
                fig.add_trace(go.Scatter(x=e[:, 0], y=e[:, 1], mode="lines", line=dict(color="crimson")), 1, 2)
            else:
                t = np.linspace(-4, 4, 200)
                s = math.exp(0.5 * lv[0])
                fig.add_trace(go.Scatter(x=t, y=np.exp(-0.5 * ((t - m[0]) / s) ** 2) / (s * math.sqrt(2 * math.pi)),
                                         mode="lines", line=dict(color="crimson")), 1, 2)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), showlegend=False, uirevision="lab",
                      clickmode="event+select")
    fig.update_annotations(font_size=11)
    fig.update_xaxes(range=RANGE, row=1, col=1)
    fig.update_yaxes(range=RANGE, scaleanchor="x", row=1, col=1)
    fig.update_xaxes(range=[-4, 4], row=1, col=2)
    if d == 2:
        fig.update_yaxes(range=[-4, 4], scaleanchor="x2", row=1, col=2)
    return fig


def ellipses_figure(family, steps: int = 10) -> go.Figure:
    """The EM data and each component's 2-sigma ellipse at the last ``steps`` EM steps (the
    older, the fainter), the means' paths, and the current ellipses in red.

    >>> from genlab.lab.families import Options, make_family
    >>> from genlab.lab.targets import get_target
    >>> gmm = make_family("gmm", get_target("8gaussians"), Options(components=3), lr=0.0)
    >>> for _ in range(3):
    ...     _ = gmm.step(batch=0)  # one EM iteration each
    >>> fig = ellipses_figure(gmm)
    >>> len(fig.data), fig.layout.title.text  # points, 3 steps' ellipses, the means' paths
    (5, '2σ ellipses, last 3 EM steps (red: now)')
    >>> fig.show()  # doctest: +SKIP
    """
    fig = go.Figure(_points(family.points[:1500], "steelblue", 3))
    hist = family.history[-steps:]
    for j, mix in enumerate(hist):
        last = j == len(hist) - 1
        alpha = 1.0 if last else 0.15 + 0.5 * j / max(1, len(hist))
        segs = [_ellipse(m, c) for m, c in zip(mix.means, mix.covariances)]
        xs, ys = _segments(segs)
        colour = "crimson" if last else f"rgba(80,80,80,{alpha:.2f})"
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=2 if last else 1),
                                 hoverinfo="skip"))
    if hist:
        paths = np.stack([m.means for m in family.history], 1)  # (K, T, 2)
        xs, ys = _segments(list(paths))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", marker=dict(size=3, color="black"),
                                 line=dict(color="black", width=1), hoverinfo="skip"))
    return _square(fig, title=dict(text=f"2σ ellipses, last {len(hist)} EM steps (red: now)", font=dict(size=13)))


def curves_figure(history: list[dict], key: str, exact: list[dict] | None = None, *, label: str = "") -> go.Figure:
    """The loss part ``key`` at every step (thinned to 400 points) and, on the right axis,
    the exact KL(target || model) at the steps it was computed.

    >>> history = [{"step": s, "nll": 3.0 / s} for s in range(1, 101)]
    >>> fig = curves_figure(history, "nll", [{"step": 50, "kl": 0.4}, {"step": 100, "kl": 0.2}])
    >>> [t.name for t in fig.data], fig.layout.yaxis2.title.text
    (['nll', 'exact KL(p‖q)'], 'KL (nats)')
    >>> fig.show()  # doctest: +SKIP
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    rows = history[:: max(1, len(history) // 400)]
    fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[key] for r in rows], mode="lines",
                             name=key, line=dict(width=1)), secondary_y=False)
    if exact:
        e = exact[:: max(1, len(exact) // 400)]
        fig.add_trace(go.Scatter(x=[r["step"] for r in e], y=[r["kl"] for r in e], mode="lines",
                                 name="exact KL(p‖q)", line=dict(width=2)), secondary_y=True)
    fig.update_layout(height=200, margin=dict(l=10, r=10, t=30, b=10), uirevision="lab",
                      title=dict(text=label, font=dict(size=12)), legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title_text=key, secondary_y=False)
    fig.update_yaxes(title_text="KL (nats)", secondary_y=True, rangemode="tozero")
    return fig


def view_figure(experiment, data: torch.Tensor, picked: np.ndarray | None = None) -> go.Figure | None:
    """The family's own view, by what it declares (``family.view``); None for a mixture
    before its first EM step (nothing to draw yet).

    >>> from genlab.lab.families import Options
    >>> from genlab.lab.targets import get_target
    >>> from genlab.lab.train import Experiment
    >>> ex = Experiment.start(get_target("moons"), "realnvp", Options(couplings=2, hidden=8), lr=1e-3)
    >>> view_figure(ex, ex.family.data(100)).layout.annotations[0].text  # layers_figure
    'base N(0, I)'
    >>> gmm = Experiment.start(get_target("moons"), "gmm", Options(components=3), lr=0.0)
    >>> view_figure(gmm, gmm.family.data(100)) is None
    True
    """
    fam = experiment.family
    if fam.view == "layers":
        return layers_figure(fam)
    if fam.view == "critic":
        return critic_figure(fam, data, experiment.grid)
    if fam.view == "latent":
        return latent_figure(fam, data, picked)
    if fam.view == "ellipses":
        return ellipses_figure(fam) if fam.history else None
    return None


def model_density_figure(experiment, log_q: np.ndarray | None) -> go.Figure:
    """The model's density on the grid (the GAN, which has none: a histogram of its samples),
    its samples over it.

    >>> from genlab.lab.families import Options
    >>> from genlab.lab.targets import get_target
    >>> from genlab.lab.train import Experiment
    >>> ex = Experiment.start(get_target("moons"), "realnvp", Options(couplings=2, hidden=8),
    ...                       lr=1e-3, grid=Grid(32))
    >>> fig = model_density_figure(ex, ex.log_q())
    >>> fig.layout.title.text, fig.data[0].z.shape
    ('RealNVP: model density', (32, 32))
    >>> gan = Experiment.start(get_target("moons"), "gan", Options(hidden=8), lr=1e-3, grid=Grid(32))
    >>> model_density_figure(gan, None).layout.title.text
    'GAN: histogram of 20,000 samples'
    >>> fig.show()  # doctest: +SKIP
    """
    fam, grid = experiment.family, experiment.grid
    samples = fam.sample(SAMPLES)
    if log_q is None:
        x = fam.sample(20_000).numpy()
        h, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=grid.n, range=[RANGE, RANGE])
        values, title = h.reshape(-1) / max(1, h.sum()) / grid.cell_area, "histogram of 20,000 samples"
    else:
        values = np.exp(log_q)
        title = "model density" + (" (IWAE estimate)" if fam.density == "estimate" else "")
    return density_figure(values, grid, f"{fam.label}: {title}", samples)
