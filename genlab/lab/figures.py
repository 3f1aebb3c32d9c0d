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

They are redrawn live, several times a second, and Streamlit hands plotly every changed
figure as a new chart, which plotly draws from nothing: so the points are pictures
(:func:`dots_image`) rather than a node a point, nothing is WebGL, the axes' margins are
fixed (no second drawing pass to fit tick labels), and the samples come from fixed random
numbers, so an unchanged model gives an unchanged figure, which costs the browser nothing.
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
# Streamlit's plotly theme turns on every axis's automargin; a newly drawn chart whose tick
# labels then widen its margins is drawn a second time (half a redraw's time in Chromium),
# and Streamlit draws every chart of a lab tick anew. So the lab's axes fit their labels in
# fixed margins instead.
FIXED = dict(automargin=False)
SQUARE = dict(range=RANGE, constrain="domain", showgrid=False, zeroline=False, **FIXED)
SQUARE_MARGIN = dict(l=36, r=10, t=36, b=34)  # room for the tick labels of [-4, 4] (and the theme's pad)
# the colours of points drawn as pictures (dots_image): (r, g, b, alpha) in [0, 1]
SAMPLE_COLOUR = (1.0, 1.0, 1.0, 0.6)  # samples over a density: white
STEEL_RGBA, GREEN, MAGENTA = (0.27, 0.51, 0.71, 0.6), (0.2, 0.8, 0.2, 0.6), (1.0, 0.0, 1.0, 0.6)
STEEL = "rgba(70,130,180,0.6)"  # the VAE's points, SVG markers (a click picks one)


def _round(v, decimals: int = 3) -> np.ndarray:
    """Coordinates for the browser: float32 rounded (plotly sends them as typed arrays)."""
    return np.round(np.asarray(v, dtype=np.float32), decimals)


def _square(fig: go.Figure, height: int = 320, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=SQUARE_MARGIN, showlegend=False,
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
    return go.Heatmap(x=c, y=c, z=z.astype(np.float32), colorscale=colorscale, showscale=False,
                      hoverinfo="skip", **kw)


def _points(x, color: str = STEEL, size: int = 3, name: str = "", **kw) -> go.Scatter:
    """Points as SVG markers, where a click must find them (the VAE's view); every other
    view draws its points as a picture (:func:`dots_image`). Not WebGL (Scattergl): plotly
    makes a WebGL context for it whenever the chart is drawn afresh, which Streamlit does at
    every redraw of the live lab, and that took most of a redraw in Chromium without a GPU.
    ``color`` carries the opacity (rgba): a marker opacity apart is one more style plotly
    sets on every point."""
    x = np.asarray(x)
    return go.Scatter(x=_round(x[:, 0]), y=_round(x[:, 1]), mode="markers", name=name,
                      marker=dict(size=size, color=color, line_width=0), hoverinfo="skip", **kw)


def dots_image(points, colours, *, px: int = 400, radius: float = 2.5) -> str:
    """Points (n, 2) on the box [-BOX, BOX]^2 drawn as round dots on a transparent px x px
    picture, a PNG data URI for a layout image over the box: ``colours`` is one (r, g, b,
    alpha) in [0, 1] for all the points, or one a point (n, 4). Overlapping dots compose
    as semi-transparent markers do: alpha 1 - prod(1 - a_i), the colour their
    alpha-weighted mean.

    The lab's live pictures draw their points this way, not as an SVG node a point: at
    every redraw Streamlit hands plotly a new chart, whose points plotly then styles one by
    one (a WebGL trace instead makes a WebGL context each time), which was most of the
    browser's time while the lab played (issue 29).

    >>> uri = dots_image(np.array([[0.0, 0.0], [1.0, 1.0]]), (1.0, 1.0, 1.0, 0.6), px=40)
    >>> uri.startswith("data:image/png;base64,")
    True
    """
    import base64
    import io

    from PIL import Image

    x = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    col = np.broadcast_to(np.asarray(colours, dtype=np.float32), (len(x), 4))
    u = (x[:, 0] + BOX) / (2 * BOX) * px  # pixel column, from the left
    v = (BOX - x[:, 1]) / (2 * BOX) * px  # pixel row, from the top
    r = int(math.ceil(radius + 0.5))
    d = np.arange(-r, r + 1)
    iu = np.floor(u)[:, None, None] + d[None, None, :]  # (n, 1, k)
    iv = np.floor(v)[:, None, None] + d[None, :, None]  # (n, k, 1)
    dist = np.hypot(iu + 0.5 - u[:, None, None], iv + 0.5 - v[:, None, None])  # (n, k, k)
    a = np.clip(radius + 0.5 - dist, 0, 1) * col[:, 3, None, None]  # coverage times alpha
    iu, iv = np.broadcast_to(iu, a.shape), np.broadcast_to(iv, a.shape)
    keep = (a > 0) & (iu >= 0) & (iu < px) & (iv >= 0) & (iv < px)
    at = (iv[keep] * px + iu[keep]).astype(np.int64)  # each touch's pixel: sums by bincount
    a, rgb = a[keep], np.broadcast_to(col[:, None, None, :3], (*keep.shape, 3))[keep]
    w = np.bincount(at, a, minlength=px * px)  # (np.unique, a sort of the touches, was a quarter of the time)
    pixels = np.flatnonzero(w)  # the touched pixels
    w = w[pixels]
    rgba = np.empty((len(pixels), 4))
    for c in range(3):
        rgba[:, c] = np.bincount(at, a * rgb[:, c], minlength=px * px)[pixels] / w
    rgba[:, 3] = -np.expm1(np.bincount(at, np.log1p(-np.minimum(a, 0.999)), minlength=px * px)[pixels])  # 1 - prod(1 - a)
    img = np.zeros((px * px, 4), dtype=np.uint8)
    img[pixels] = np.round(rgba * 255)
    buf = io.BytesIO()
    Image.fromarray(img.reshape(px, px, 4), "RGBA").save(buf, "PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _dots_over(source: str, xref: str = "x", yref: str = "y", layer: str = "above") -> dict:
    """A layout image laid over the box of axes (xref, yref), above the traces (a heatmap)
    or below them (lines drawn over the points)."""
    return dict(source=source, xref=xref, yref=yref, x=-BOX, y=BOX, sizex=2 * BOX, sizey=2 * BOX,
                sizing="stretch", layer=layer)


def _draws(seed: int = 0) -> torch.Generator:
    """The random numbers a picture draws its samples with: the same each time, so a model
    that has not changed gives the same figure (which Streamlit then leaves as it is drawn)
    and a training model's points move rather than flicker; never the family's own
    generator, which draws its training batches."""
    return torch.Generator().manual_seed(seed)


def density_figure(values: np.ndarray, grid: Grid, title: str, samples=None, *,
                   height: int = 320) -> go.Figure:
    """A density (n*n,) on the grid as a heatmap, with optional samples (B, 2) over it
    (white dots, a picture laid over the box: :func:`dots_image`).

    >>> grid = Grid(32)
    >>> p = grid.points().numpy()
    >>> fig = density_figure(np.exp(-0.5 * (p ** 2).sum(1)) / (2 * np.pi), grid, "N(0, I)", p[:5])
    >>> len(fig.data), fig.data[0].z.shape, fig.layout.title.text, len(fig.layout.images)
    (1, (32, 32), 'N(0, I)', 1)
    >>> fig.show()  # doctest: +SKIP
    """
    images = [] if samples is None else [_dots_over(dots_image(samples, SAMPLE_COLOUR))]
    return _square(go.Figure(_heat(values, grid)), height, title=dict(text=title, font=dict(size=13)),
                   images=images)


def _grid_lines(lim: float = 3.0, lines: int = 9, pts: int = 30) -> list[torch.Tensor]:
    """A square grid in the base space: each line as (pts, 2)."""
    t = torch.linspace(-lim, lim, pts)
    out = []
    for v in torch.linspace(-lim, lim, lines):
        out.append(torch.stack([t, torch.full_like(t, float(v))], 1))
        out.append(torch.stack([torch.full_like(t, float(v)), t], 1))
    return out


def _segments(lines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Polylines (each (k, 2)) as one line trace's x and y, NaN between them (a gap: plotly
    breaks a line at a value that is not a number); float32 arrays, so the browser gets
    them as typed arrays, not as lists of numbers and nulls."""
    if not len(lines):
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    gap = np.full((1, 2), np.nan, dtype=np.float32)
    xy = np.concatenate([part for line in lines for part in (np.asarray(line, dtype=np.float32), gap)])
    return _round(xy[:, 0]), _round(xy[:, 1])


def _layer_picks(n_layers: int, panels: int) -> list[int]:
    """Which of the states 0..n_layers to show: base, data and evenly between."""
    if n_layers + 1 <= panels:
        return list(range(n_layers + 1))
    return sorted({round(i * n_layers / (panels - 1)) for i in range(panels)})


def _panels(titles: list[str], cols: int, hspace: float = 0.03, vspace: float = 0.08) -> tuple[dict, list[tuple[str, str]]]:
    """A grid of square panels of the box, row by row from the top, as layout properties
    (axes on their domains, each title an annotation above its panel, as make_subplots
    places them) and each panel's (xaxis, yaxis) trace references. make_subplots and the
    update_* calls after it validated the whole layout again at every call, a third of the
    layer view's time on the server."""
    rows = math.ceil(len(titles) / cols)
    w, h = (1 - (cols - 1) * hspace) / cols, (1 - (rows - 1) * vspace) / rows
    axis = dict(range=RANGE, showticklabels=False, showgrid=False, zeroline=False, constrain="domain", **FIXED)
    layout: dict = {"annotations": []}
    refs = []
    for j, title in enumerate(titles):
        r, c, k = j // cols, j % cols, "" if j == 0 else str(j + 1)
        x0, y1 = c * (w + hspace), 1 - r * (h + vspace)
        layout[f"xaxis{k}"] = dict(axis, domain=[max(0.0, x0), min(1.0, x0 + w)], anchor=f"y{k}")
        layout[f"yaxis{k}"] = dict(axis, domain=[max(0.0, y1 - h), min(1.0, y1)], anchor=f"x{k}", scaleanchor=f"x{k}")
        layout["annotations"].append(dict(text=title, x=x0 + w / 2, y=y1, xref="paper", yref="paper",
                                          xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=11)))
        refs.append((f"x{k}", f"y{k}"))
    return layout, refs


def _hue(angle: np.ndarray) -> np.ndarray:
    """Colours (n, 4) around the hue circle for angles in [-pi, pi] (plotly's "HSV" scale)."""
    h = (np.asarray(angle, dtype=np.float32) + np.pi) / (2 * np.pi)  # [0, 1]
    rgb = np.stack([np.abs(6 * h - 3) - 1, 2 - np.abs(6 * h - 2), 2 - np.abs(6 * h - 4)], 1)
    return np.concatenate([np.clip(rgb, 0, 1), np.ones((len(h), 1), np.float32)], 1)


def layers_figure(family, n: int = 300, panels: int = 6, seed: int = 0) -> go.Figure:
    """Base samples and a square grid carried through each layer in turn (evenly chosen
    layers when there are more than ``panels``), the points coloured by their base angle
    (a picture of dots over each panel: :func:`dots_image`), the grid as lines.

    >>> from genlab.lab.families import Options, make_family
    >>> from genlab.lab.targets import get_target
    >>> flow = make_family("realnvp", get_target("moons"), Options(couplings=2, hidden=8), lr=1e-3)
    >>> fig = layers_figure(flow, n=50)
    >>> [a.text for a in fig.layout.annotations], [(t.mode, t.xaxis) for t in fig.data]
    (['base N(0, I)', '1: AffineCoupling', '2: AffineCoupling'], [('lines', 'x'), ('lines', 'x2'), ('lines', 'x3')])
    >>> [(im.xref, im.yref) for im in fig.layout.images]  # each panel's points
    [('x', 'y'), ('x2', 'y2'), ('x3', 'y3')]
    """
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    lines = _grid_lines()
    states = family.trace(torch.cat([z, *lines]))
    names = family.layer_names()
    picks = _layer_picks(len(states) - 1, panels)
    cols = min(3, len(picks))
    layout, refs = _panels([f"{i}: {names[i]}" if i else "base N(0, I)" for i in picks], cols)
    colour = _hue(np.arctan2(z[:, 1].numpy(), z[:, 0].numpy()))
    traces, images = [], []
    for i, (xref, yref) in zip(picks, refs):
        s = states[i].numpy()
        pts, rest = s[:n], s[n:]
        xs, ys = _segments(np.split(rest, len(lines)))
        traces.append(go.Scatter(x=xs, y=ys, mode="lines", line=dict(width=1, color="rgba(90,90,90,0.5)"),
                                 hoverinfo="skip", xaxis=xref, yaxis=yref))
        images.append(_dots_over(dots_image(pts, colour, px=300, radius=2.8), xref, yref))
    rows = math.ceil(len(picks) / cols)
    return go.Figure(traces, dict(layout, images=images, height=200 * rows + 20, margin=dict(l=10, r=10, t=30, b=10),
                                  showlegend=False, uirevision="lab"))


def critic_figure(family, data: torch.Tensor, grid: Grid, n: int = 300) -> go.Figure:
    """D(x) over the plane (dark: fake, bright: real), real points (green), generated ones
    (magenta) with arrows along the generator's gradient (GAN Lab's view).

    >>> from genlab.lab.families import Options, make_family
    >>> from genlab.lab.targets import get_target
    >>> moons = get_target("moons")
    >>> gan = make_family("gan", moons, Options(hidden=8), lr=1e-3)
    >>> fig = critic_figure(gan, moons.sample(100), Grid(32), n=50)
    >>> [t.type for t in fig.data], (fig.data[0].zmin, fig.data[0].zmax), len(fig.layout.images)
    (['heatmap', 'scatter'], (0, 1), 1)
    >>> fig.show()  # doctest: +SKIP
    """
    d = family.critic(grid.points()).numpy()
    fake, pull = family.generator_pull(n, _draws())
    norm = pull.norm(dim=1, keepdim=True).clamp_min(1e-12)
    tips = fake + 0.35 * pull / norm.max()  # the longest arrow 0.35 long
    xs, ys = _segments(list(torch.stack([fake, tips], 1).numpy()))  # one segment an arrow
    real = np.asarray(data[:n], dtype=np.float32)
    colours = np.array([GREEN] * len(real) + [MAGENTA] * len(fake), dtype=np.float32)
    fig = go.Figure([_heat(d, grid, "RdBu", zmin=0, zmax=1),
                     go.Scatter(x=xs, y=ys, mode="lines", line=dict(width=1, color="black"), hoverinfo="skip")])
    return _square(fig, title=dict(text="D(x) (blue: real) · G's samples and gradient", font=dict(size=13)),
                   images=[_dots_over(dots_image(np.concatenate([real, fake.numpy()]), colours))])


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
    fig.add_trace(_points(data[:600], STEEL, customdata=np.arange(600)), 1, 1)
    lines = _grid_lines(2.5, 7) if d == 2 else [torch.linspace(-3, 3, 120)[:, None]]
    dec = [family.decoder_mean_logvar(line)[0].numpy() for line in lines]
    xs, ys = _segments(dec)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="darkorange", width=1.5)), 1, 1)
    mu, logvar = family.posterior(data[:600])
    z = (mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))).numpy()
    if d == 2:
        fig.add_trace(_points(z, STEEL), 1, 2)
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
        px = np.asarray(picked, dtype=np.float32)
        fig.add_trace(go.Scatter(x=px[:, 0], y=px[:, 1], mode="markers",
                                 marker=dict(symbol="star", size=12, color="crimson")), 1, 1)
        pm, plv = (a.numpy() for a in family.posterior(torch.as_tensor(px)))
        for m, lv in zip(pm, plv):
            if d == 2:
                e = _ellipse(m, np.diag(np.exp(lv)))
                fig.add_trace(go.Scatter(x=e[:, 0], y=e[:, 1], mode="lines", line=dict(color="crimson")), 1, 2)
            else:
                t = np.linspace(-4, 4, 200)
                s = math.exp(0.5 * lv[0])
                fig.add_trace(go.Scatter(x=t, y=np.exp(-0.5 * ((t - m[0]) / s) ** 2) / (s * math.sqrt(2 * math.pi)),
                                         mode="lines", line=dict(color="crimson")), 1, 2)
    fig.update_layout(height=320, margin=dict(SQUARE_MARGIN, t=30), showlegend=False, uirevision="lab",
                      clickmode="event+select")
    fig.update_annotations(font_size=11)
    fig.update_xaxes(**FIXED)
    fig.update_yaxes(**FIXED)
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
    >>> len(fig.data), len(fig.layout.images), fig.layout.title.text  # 3 steps' ellipses, the means' paths; the points
    (4, 1, '2σ ellipses, last 3 EM steps (red: now)')
    >>> fig.show()  # doctest: +SKIP
    """
    fig = go.Figure()
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
    return _square(fig, title=dict(text=f"2σ ellipses, last {len(hist)} EM steps (red: now)", font=dict(size=13)),
                   images=[_dots_over(dots_image(family.points[:1500], STEEL_RGBA), layer="below")])


def curves_figure(history: list[dict], key: str, exact: list[dict] | None = None, *, label: str = "") -> go.Figure:
    """The loss part ``key`` at every step (thinned to 400 points) and, on the right axis,
    the exact KL(target || model) at the steps it was computed.

    >>> history = [{"step": s, "nll": 3.0 / s} for s in range(1, 101)]
    >>> fig = curves_figure(history, "nll", [{"step": 50, "kl": 0.4}, {"step": 100, "kl": 0.2}])
    >>> [t.name for t in fig.data], fig.layout.yaxis2.title.text
    (['nll', 'exact KL(p‖q)'], 'KL (nats)')
    >>> fig.show()  # doctest: +SKIP
    """
    rows = history[:: max(1, len(history) // 400)]
    traces = [go.Scatter(x=[r["step"] for r in rows], y=[r[key] for r in rows], mode="lines",
                         name=key, line=dict(width=1))]
    if exact:
        e = exact[:: max(1, len(exact) // 400)]
        traces.append(go.Scatter(x=[r["step"] for r in e], y=[r["kl"] for r in e], mode="lines",
                                 name="exact KL(p‖q)", line=dict(width=2), yaxis="y2"))
    return go.Figure(traces, dict(  # a right-hand axis (make_subplots' secondary_y, without its cost)
        height=200, margin=dict(l=60, r=60, t=30, b=50), uirevision="lab",
        title=dict(text=label, font=dict(size=12)), legend=dict(orientation="h", y=-0.25),
        xaxis=dict(anchor="y", **FIXED), yaxis=dict(title_text=key, anchor="x", **FIXED),
        yaxis2=dict(title_text="KL (nats)", anchor="x", overlaying="y", side="right", rangemode="tozero", **FIXED)))


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
    samples = fam.sample(SAMPLES, _draws())
    if log_q is None:
        x = fam.sample(20_000, _draws(1)).numpy()
        h, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=grid.n, range=[RANGE, RANGE])
        values, title = h.reshape(-1) / max(1, h.sum()) / grid.cell_area, "histogram of 20,000 samples"
    else:
        values = np.exp(log_q)
        title = "model density" + (" (IWAE estimate)" if fam.density == "estimate" else "")
    return density_figure(values, grid, f"{fam.label}: {title}", samples)
