"""What the app shows about runs, as plain data and plotly figures (no streamlit here).

Every function takes run-directory contents (``genlab.runs.summarize`` dicts, metrics
records) and returns strings, rows or ``plotly.graph_objects.Figure``: pages only lay
them out, and tests check them without a browser.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import runs
from .data import DATASETS, data_root, dataset_present
from .metrics import data_kind

BOOKKEEPING = frozenset({"event", "split", "epoch", "step", "seconds", "images_per_s"})
"""Keys of a metrics record that are not model metrics."""
EVAL_META = frozenset({"n_images", "epoch", "k", "seconds", "nll_seconds", "latent_dim"})
TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"
MAX_POINTS = 2000  # per trace; longer series are strided so charts stay light
STATE_ICON = {"done": ":green[:material/check_circle:]", "running": ":blue[:material/pending:]",
              "starting": ":blue[:material/pending:]", "stopped": ":orange[:material/pause_circle:]",
              "failed": ":red[:material/error:]", "interrupted": ":orange[:material/warning:]",
              "broken": ":red[:material/report:]", "unknown": ":gray[:material/help:]"}
"""Markdown badges (Streamlit's bundled Material icons: no emoji font needed)."""


# -- where things are -------------------------------------------------------------
def runs_roots(text: str | None = None) -> list[Path]:
    """Run folders from ``text`` (comma- or os.pathsep-separated), else $GENLAB_RUNS,
    else ``runs`` and ``checkpoints``; duplicates dropped, order kept."""
    text = text if text is not None else os.environ.get("GENLAB_RUNS") or "runs,checkpoints"
    parts = [p.strip() for chunk in text.split(",") for p in chunk.split(os.pathsep)]
    return list(dict.fromkeys(Path(p).expanduser() for p in parts if p))


def datasets_status(root: str | os.PathLike | None = None) -> list[dict]:
    """One row per dataset: present under the data root or not, and where it would go."""
    base = data_root(root)
    return [{"dataset": name, "present": dataset_present(name, base),
             "folder": str(base / info.folder), "files": ", ".join(info.files),
             "where": ", ".join(f if info.folder == "." else f"{info.folder}/{f}" for f in info.files),
             "shape": "x".join(map(str, info.shape))} for name, info in DATASETS.items()]


def run_stamp(run_dir: str | os.PathLike) -> tuple:
    """Modification times and sizes of everything a gallery card reads: a cache key that
    changes whenever the run does."""
    run_dir = Path(run_dir)
    files = [run_dir / n for n in (runs.CONFIG, runs.STATUS, runs.METRICS, runs.EVAL)]
    sample = runs.latest_sample(run_dir)
    stamp = []
    for f in files + ([sample] if sample else []):
        try:
            st = f.stat()
            stamp.append((f.name, st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append((f.name, None, None))
    return tuple(stamp)


# -- a run in words -----------------------------------------------------------------
def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def run_state(summary: dict) -> tuple[str, str]:
    """(state, one-line message) for a run: done / running / stopped / failed, plus
    "broken" (unreadable config) and "interrupted" (says running, process gone)."""
    if summary.get("error"):
        return "broken", summary["error"]
    status = summary.get("status") or {}
    state = status.get("state") or ("unknown" if not summary.get("metrics") else "stopped")
    msg = status.get("message") or ""
    if state in ("running", "starting") and status.get("pid") and not _pid_alive(status["pid"]):
        state = "interrupted"
        msg = (f"the training process (pid {status['pid']}) is gone; continue with "
               f"`python -m genlab resume {summary['path']}`")
    if state == "running" and status.get("total_steps"):
        eta = status.get("eta_s")
        msg = (f"epoch {status.get('epoch')}/{status.get('total_epochs', '?')}, "
               f"{100 * float(status.get('progress') or 0):.0f}%"
               + (f", about {fmt_seconds(eta)} left" if eta is not None else ""))
    return state, msg


def fmt_seconds(s: float) -> str:
    s = int(round(float(s)))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else (
        f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s")


def fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "-".join(map(str, v))
    return str(v)


def key_config(summary: dict) -> str:
    """The model's options (all but the image shape) and the main training ones."""
    cfg = {k: v for k, v in (summary.get("config") or {}).items() if k != "image_shape"}
    train = summary.get("train") or {}
    cfg.update({k: train[k] for k in ("epochs", "batch_size", "lr") if k in train})
    if train.get("limit"):
        cfg["limit"] = train["limit"]
    return " · ".join(f"{k}={fmt_value(v)}" for k, v in cfg.items())


def metric_names(records: list[dict]) -> list[str]:
    """Numeric model metrics in the records, "loss" first, in order of appearance."""
    names: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in BOOKKEEPING and isinstance(v, (int, float)) and not isinstance(v, bool):
                names[k] = None
    return sorted(names, key=lambda n: n != "loss")


def metrics_rows(summary: dict) -> list[dict]:
    """One row per metric (loss, then its parts) with a column per source: "train" and
    "val" from the latest epoch, and the evaluated split from eval.json (nats per image)."""
    cols: dict[str, dict] = {}
    for label, rec in (("train", summary.get("last_train")), ("val", summary.get("last_val"))):
        if rec:
            cols[label] = {k: rec[k] for k in metric_names([rec])}
    ev = summary.get("eval")
    if ev:
        split = ev.get("split", "test")
        parts = {k[len(split) + 1:] if k.startswith(f"{split}_") else k: v for k, v in ev.items()
                 if k not in EVAL_META and isinstance(v, (int, float)) and not isinstance(v, bool)}
        shown = {k for c in cols.values() for k in c} or set(parts)
        cols[split] = {k: v for k, v in parts.items() if k in shown}
    names = list(dict.fromkeys(k for c in cols.values() for k in c))
    return [{"metric": n, **{label: c.get(n) for label, c in cols.items()}} for n in names]


def eval_line(ev: dict | None) -> str:
    """eval.json in one line, with units: nats per image, bits/dim for 8-bit data."""
    if not ev:
        return ""
    split, k = ev.get("split", "test"), ev.get("k", 1)
    parts = []
    if "elbo" in ev:
        parts.append(f"ELBO {ev['elbo']:.2f} nats")
    if "nll_nats" in ev:
        sem = f" ± {ev['nll_sem']:.2f}" if "nll_sem" in ev else ""
        method = ev.get("nll_method") or ""
        how = f"k={k}" if not method or "importance" in method.lower() else method
        parts.append(f"−log p(x) {ev['nll_nats']:.2f}{sem} nats ({how})")
    if "bpd" in ev:
        parts.append(f"{ev['bpd']:.3f} bits/dim")
    if "active_units" in ev:
        parts.append(f"{ev['active_units']}/{ev.get('latent_dim', '?')} active latent units")
    if isinstance(ev.get("fid"), (int, float)):
        parts.append(f"FID {ev['fid']:.1f} ({FID_NOTE_SHORT})")
    if not parts:
        parts = [f"{k2} {v:.4g}" for k2, v in ev.items()
                 if k2 not in EVAL_META and isinstance(v, float)][:4]
    data = f", {ev['data']} data" if ev.get("data") else ""
    return f"{split} ({ev.get('n_images', '?')} images{data}): " + " · ".join(parts)


FID_NOTE_SHORT = "genlab features, not Inception"
FID_NOTE = ("FID here is the Fréchet distance in the features of genlab's own small CNN "
            "classifier for the dataset (Inception weights cannot be downloaded), so it is "
            "**not comparable with the Inception FID of papers**: it ranks genlab models on "
            "the same dataset against each other. Lower is better; real test images against "
            "themselves give the floor.")


def fid_rows(summaries: list[dict]) -> list[dict]:
    """FID from eval.json for every run that has one, any family: the one number here that
    compares GANs, VAEs and flows (same dataset and feature network)."""
    rows = []
    for s in summaries:
        ev = s.get("eval") or {}
        if isinstance(ev.get("fid"), (int, float)):
            rows.append({"run": s["name"], "model": s.get("model"), "FID": ev["fid"],
                         "samples": ev.get("fid_n"),
                         "against": f"{ev.get('split', 'test')} ({ev.get('fid_n') or '?'} images)"})
    return rows


def fid_caption(dataset: str) -> str:
    """FID_NOTE with the feature network's test accuracy, when it can be read."""
    from .fid import FeatureNetError, net_info

    try:
        acc = net_info(dataset).get("test_accuracy")
    except (FeatureNetError, ValueError):
        acc = None
    net = f" Its {dataset} classifier's test accuracy: {acc:.2%}." if acc else ""
    return FID_NOTE + net


def units_note(summary: dict) -> str:
    """What the numbers in a run's table are: nats per image for likelihood models (on
    binarised or 8-bit data, never to be compared across the two)."""
    try:
        from .models import model_entry
        likelihood = model_entry(summary.get("model") or "")[0].has_likelihood
    except ValueError:
        return ""
    data = data_kind((summary.get("config") or {}).get("preprocess", "dynamic"))
    return f"nats per image on {data} data" if likelihood else "training losses"


def overview_rows(summaries: list[dict]) -> list[dict]:
    """One row per run for the gallery's table (eval columns only when some run has them).
    The test likelihood in the unit that means something for the data: nats per image on
    binarised pixels, bits/dim on 8-bit pixels (whose nats are a density on [0, 1]^D,
    negative and not comparable with the former), never both in one column."""
    rows = []
    for s in summaries:
        state, _ = run_state(s)
        val, ev = s.get("last_val") or {}, s.get("eval") or {}
        eight_bit = ev.get("data") == "8-bit" or "bpd" in ev
        rows.append({"run": s["name"], "model": s.get("model"), "dataset": s.get("dataset"),
                     "status": state,
                     "epoch": (s.get("last_train") or {}).get("epoch"),
                     "val loss": val.get("loss"),
                     "test −log p(x)": None if eight_bit else ev.get("nll_nats"),
                     "bits/dim": ev.get("bpd"),
                     "FID": ev.get("fid") if isinstance(ev.get("fid"), (int, float)) else None,
                     "folder": str(Path(s["path"]).parent)})
    empty = [k for k in ("test −log p(x)", "bits/dim", "FID") if all(r[k] is None for r in rows)]
    return [{k: v for k, v in r.items() if k not in empty} for r in rows]


# -- images -------------------------------------------------------------------------
def read_image(path: str | os.PathLike | None) -> tuple[bytes | None, str | None]:
    """PNG bytes of an image file checked by Pillow, or (None, why it cannot be shown)."""
    if path is None:
        return None, None
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except UnidentifiedImageError:
        return None, f"{Path(path).name}: not a readable image"
    except (OSError, ValueError) as e:
        return None, f"{Path(path).name}: unreadable image ({str(e).splitlines()[0][:120]})"
    return data, None


# -- figures ------------------------------------------------------------------------
def _series(records: list[dict], name: str, event: str, split: str) -> tuple[list, list, list]:
    pts = [(r["step"], r[name], r.get("epoch")) for r in records
           if r.get("event") == event and r.get("split") == split
           and isinstance(r.get(name), (int, float)) and isinstance(r.get("step"), (int, float))]
    stride = max(1, math.ceil(len(pts) / MAX_POINTS))
    pts = pts[::stride]
    return [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]


def curves_figure(records: list[dict], *, names: list[str] | None = None, height: int = 260,
                  max_cols: int = 3) -> go.Figure:
    """Training curves, one panel per metric ("loss" then the parts, e.g. recon and kl):
    training records per logged step as a line, validation per epoch as markers, both
    against the optimisation step."""
    names = names or metric_names(records) or ["loss"]
    names = [n for n in names if n != "elbo" or "loss" not in names]  # elbo = -loss: redundant
    cols = min(len(names), max_cols)
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names,
                        horizontal_spacing=0.08, vertical_spacing=0.18)
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
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
        fig.update_xaxes(title_text="step" if r == rows else None, row=r, col=c)
    fig.update_xaxes(nticks=4, tickangle=0, tickformat="~s")  # 2k, 4k: level in narrow panels
    fig.update_layout(height=height * rows + 30, margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", yref="container", yanchor="top", y=1.0,
                                  x=0),
                      hovermode="x unified")
    return fig


def run_card(run_dir: str | os.PathLike) -> dict:
    """Everything a gallery card shows for one run; never raises on a broken run."""
    try:
        s = runs.summarize(run_dir)
    except Exception as e:  # an unreadable folder: show the line, never a traceback
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        s = {"path": Path(run_dir), "name": Path(run_dir).name, "error": f"{run_dir}: {first}",
             "model": None, "dataset": None, "config": {}, "train": {}, "status": {},
             "metrics": [], "bad_metric_lines": 0, "last_train": None, "last_val": None,
             "eval": None, "sample": None}
    state, message = run_state(s)
    image, image_error = read_image(s.get("sample"))
    records = s.get("metrics") or []
    return {"summary": s, "state": state, "message": message, "config": key_config(s),
            "rows": metrics_rows(s), "eval": eval_line(s.get("eval")), "units": units_note(s),
            "figure": curves_figure(records) if records else None,
            "image": image, "image_error": image_error,
            "sample_name": Path(s["sample"]).stem if s.get("sample") else None}


# -- latent spaces (Latent explorer, Clusters) -------------------------------------------
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
HIGHLIGHT_COLOR = "#d62728"


def _class_traces(xy, labels, class_names, *, size: int = 5, opacity: float = 0.75) -> list:
    """One scatter trace per class; customdata holds each point's index into xy, so a
    selection maps back to the codes whatever the trace."""
    import numpy as np

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
    """Codes (N, 2) coloured by class, box selection as the default drag; ``equal`` keeps
    one unit the same length on both axes (a latent space, not a projection)."""
    fig = go.Figure(_class_traces(xy, labels, class_names))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), dragmode="select",
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
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(itemsizing="constant"), xaxis_title=axes[0], yaxis_title=axes[1])
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def weights_figure(weights, *, highlight: int | None = None, height: int = 260) -> go.Figure:
    """Mixture weights as bars, component k at x = k; ``highlight`` in red."""
    colors = [HIGHLIGHT_COLOR if k == highlight else TRAIN_COLOR for k in range(len(weights))]
    fig = go.Figure(go.Bar(x=list(range(len(weights))), y=list(map(float, weights)),
                           marker_color=colors, hovertemplate="component %{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="component", yaxis_title="weight", bargap=0.15)
    return fig


# -- Train and Compare pages ----------------------------------------------------------
RUN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
PANELS = (("D and G losses", ("d_loss", "g_loss"), False),
          ("D outputs: mean D(x), mean D(G(z))", ("d_real", "d_fake"), False),
          ("encoder gradient variance", ("grad_var", "grad_var_nobaseline"), True))
"""Metrics drawn together in one panel (title, names, log y); the others get one each."""
PART_COLORS = {"d_loss": "#1f77b4", "g_loss": "#ff7f0e", "d_real": "#2ca02c", "d_fake": "#d62728",
               "grad_var": "#2ca02c", "grad_var_nobaseline": "#d62728"}


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
    cols = min(len(panels), max_cols)
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0] for p in panels],
                        horizontal_spacing=0.08, vertical_spacing=0.2)
    for i, (_, names, log) in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
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
        fig.update_xaxes(title_text="step" if r == rows else None, row=r, col=c)
    fig.update_layout(height=height * rows + 40, margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", yref="container", yanchor="top", y=1.0, x=0))
    return fig


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
    names = [n for n in names if n != "elbo" or "loss" not in names]
    cols = min(len(names), max_cols)
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.08,
                        vertical_spacing=0.2)
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
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
        fig.update_xaxes(title_text="epoch" if r == rows else None, row=r, col=c)
    last = max((rec.get("epoch") or 1 for _, recs in series for rec in recs), default=1)
    fig.update_xaxes(tick0=1, dtick=max(1, math.ceil(last / 8)))  # whole epochs
    fig.update_layout(height=height * rows + 40, margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", yref="container", yanchor="top", y=1.0, x=0))
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
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(type="log", title="importance samples k", range=[-0.1, 3.1],
                                 tickvals=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]),
                      yaxis_title="bound on log p(x) (nats per image)",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def data_group(summary: dict) -> str:
    """The table a run's eval numbers belong in: its data kind for likelihood models,
    "adversarial" for models without one (their losses are not likelihoods)."""
    try:
        from .models import model_entry
        likelihood = model_entry(summary.get("model") or "")[0].has_likelihood
    except ValueError:
        likelihood = True
    if not likelihood:
        return "adversarial"
    ev = summary.get("eval") or {}
    return ev.get("data") or data_kind((summary.get("config") or {}).get("preprocess", "dynamic"))


GROUP_TITLES = {"binarised": "Binarised pixels: nats per image",
                "8-bit": "8-bit pixels: bits/dim (nats of a density on [0,1]-scaled pixels)",
                "adversarial": "No likelihood (GANs): discriminator and generator losses"}


def _eval_cells(group: str, ev: dict) -> dict:
    def get(key, sign=1.0):
        v = ev.get(key)
        return sign * v if isinstance(v, (int, float)) else None
    if group == "adversarial":
        return {"D loss": get("d_loss"), "G loss": get("g_loss"), "mean D(x)": get("d_real"),
                "mean D(G(z))": get("d_fake")}
    cells = {"−ELBO (nats)": get("elbo", -1.0), "−log p(x) (nats)": get("nll_nats"),
             "± s.e.": get("nll_sem")}
    if group == "8-bit":
        cells["bits/dim"] = get("bpd")
    cells["active units"] = (f"{ev['active_units']}/{ev.get('latent_dim', '?')}"
                             if "active_units" in ev else None)
    return cells


def _exact(summary: dict) -> bool:
    from .compare import is_exact
    from .models import model_entry

    try:
        return is_exact(model_entry(summary.get("model") or "")[0])
    except ValueError:
        return False


def compare_tables(summaries: list[dict]) -> tuple[list[dict], list[str]]:
    """eval.json of several runs as tables that never mix units: one per data kind
    (nats on binarised pixels, bits/dim on 8-bit pixels) and one for GANs. Returns
    ([{"group", "title", "rows"}], names of the runs with no eval.json yet)."""
    groups: dict[str, list[dict]] = {}
    missing = []
    for s in summaries:
        ev = s.get("eval")
        if not ev:
            missing.append(s["name"])
            continue
        g = data_group(s)
        how = ev.get("nll_method") or ""
        groups.setdefault(g, []).append({
            "run": s["name"], "model": s.get("model"), "data": g, "epoch": ev.get("epoch"),
            "split": f"{ev.get('split', 'test')} ({ev.get('n_images', '?')})",
            "k": None if g == "adversarial" or "exact" in how or _exact(s) else ev.get("k"),
            **_eval_cells(g, ev)})
    out = []
    for g in (g for g in GROUP_TITLES if g in groups):
        rows = groups[g]
        keep = [k for k in rows[0] if any(r[k] is not None for r in rows)]  # no empty columns
        out.append({"group": g, "title": GROUP_TITLES[g], "rows": [{k: r[k] for k in keep} for r in rows]})
    return out, missing
