"""Runs as rows and lines of text, with their units: what the app's tables and captions
show and what benchmarks/zoo.py writes (the FID note, the unit of each data kind).

Every function takes :class:`genlab.runs.status.RunSummary` values (or metrics records) and
returns strings or rows; pages only lay them out, and tests check them without a browser.
"""
from __future__ import annotations

import os

from ..data import DATASETS, data_root, dataset_present
from ..evaluation.compare import is_exact
from ..evaluation.fid import FeatureNetError, is_inception, net_info
from ..evaluation.metrics import data_kind
from ..runs.status import RunSummary, default_temperature

BOOKKEEPING = frozenset({"event", "split", "epoch", "step", "seconds", "cpu_seconds", "images_per_s"})
"""Keys of a metrics record that are not model metrics."""
EVAL_META = frozenset({"n_images", "epoch", "k", "seconds", "nll_seconds", "latent_dim"})

FID_NOTE_SHORT = "genlab features, not Inception"
FID_NOTE_INCEPTION = "Inception-v3, torchvision weights: ≈ papers' FID"
FID_NOTE = ("FID here is the Fréchet distance in the features of genlab's own small CNN "
            "classifier for the dataset (Inception weights cannot be downloaded), so it is "
            "**not comparable with the Inception FID of papers**: it ranks genlab models on "
            "the same dataset against each other. Lower is better; real test images against "
            "themselves give the floor.")
GROUP_TITLES = {"binarised": "Binarised pixels: nats per image",
                "8-bit": "8-bit pixels: bits/dim (nats of a density on [0,1]-scaled pixels)",
                "adversarial": "No likelihood (GANs): discriminator and generator losses"}
"""The table each kind of number belongs in: nats on binarised pixels and bits/dim on
8-bit pixels measure different things and never share one."""


def fid_label(ev: dict) -> str:
    """What made an eval.json's FID, in a few words: genlab's feature net or Inception-v3."""
    return FID_NOTE_INCEPTION if is_inception(ev.get("fid_features")) else FID_NOTE_SHORT


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt_value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "-".join(map(str, v))
    return str(v)


def datasets_status(root: str | os.PathLike | None = None) -> list[dict]:
    """One row per dataset: present under the data root or not, and where it would go."""
    base = data_root(root)
    return [{"dataset": name, "present": dataset_present(name, base),
             "folder": str(base / info.folder), "files": ", ".join(info.files),
             "where": ", ".join(f if info.folder == "." else f"{info.folder}/{f}" for f in info.files),
             "shape": "x".join(map(str, info.shape))} for name, info in DATASETS.items()]


# -- one run ------------------------------------------------------------------------
def key_config(s: RunSummary) -> str:
    """The model's options (all but the image shape) and the main training ones."""
    cfg = {k: v for k, v in s.config.items() if k != "image_shape"}
    cfg.update({k: s.train[k] for k in ("epochs", "batch_size", "lr") if k in s.train})
    if s.train.get("limit"):
        cfg["limit"] = s.train["limit"]
    return " · ".join(f"{k}={fmt_value(v)}" for k, v in cfg.items())


def metric_names(records: list[dict]) -> list[str]:
    """Numeric model metrics in the records, "loss" first, in order of appearance."""
    names: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in BOOKKEEPING and _number(v):
                names[k] = None
    return sorted(names, key=lambda n: n != "loss")


def metrics_rows(s: RunSummary) -> list[dict]:
    """One row per metric (loss, then its parts) with a column per source: "train" and
    "val" from the latest epoch, and the evaluated split from eval.json (nats per image)."""
    cols: dict[str, dict] = {}
    for label, rec in (("train", s.last_train), ("val", s.last_val)):
        if rec:
            cols[label] = {k: rec[k] for k in metric_names([rec])}
    if s.eval:
        split = s.eval.get("split", "test")
        parts = {k[len(split) + 1:] if k.startswith(f"{split}_") else k: v
                 for k, v in s.eval.items() if k not in EVAL_META and _number(v)}
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
    if _number(ev.get("fid")):
        parts.append(f"FID {ev['fid']:.1f} ({fid_label(ev)})")
    if not parts:
        parts = [f"{k2} {v:.4g}" for k2, v in ev.items()
                 if k2 not in EVAL_META and isinstance(v, float)][:4]
    data = f", {ev['data']} data" if ev.get("data") else ""
    return f"{split} ({ev.get('n_images', '?')} images{data}): " + " · ".join(parts)


def headline(s: RunSummary) -> str:
    """A run's headline figure from eval.json, with its unit: bits/dim on 8-bit pixels,
    -log p(x) in nats per image on binarised pixels, FID for models without a likelihood;
    "" before eval."""
    ev = s.eval or {}
    if _number(ev.get("bpd")):
        return f"{ev['bpd']:.3f} bits/dim"
    if _number(ev.get("nll_nats")):
        return f"{ev['nll_nats']:.1f} nats"
    if _number(ev.get("fid")):
        return f"{'Inception ' if is_inception(ev.get('fid_features')) else ''}FID {ev['fid']:.1f}"
    return ""


def _likelihood(s: RunSummary) -> bool | None:
    cls = s.model_class
    return None if cls is None else cls.caps.likelihood is not None


def units_note(s: RunSummary) -> str:
    """What the numbers in a run's table are: nats per image for likelihood models (on
    binarised or 8-bit data, never to be compared across the two)."""
    likelihood = _likelihood(s)
    if likelihood is None:
        return ""
    data = data_kind(s.config.get("preprocess", "dynamic"))
    return f"nats per image on {data} data" if likelihood else "training losses"


def data_group(s: RunSummary) -> str:
    """The table a run's eval numbers belong in (a key of GROUP_TITLES): its data kind for
    likelihood models, "adversarial" for models without one (their losses are not
    likelihoods)."""
    if _likelihood(s) is False:
        return "adversarial"
    return (s.eval or {}).get("data") or data_kind(s.config.get("preprocess", "dynamic"))


# -- several runs -------------------------------------------------------------------------
OVERVIEW_UNITS = {"val loss (nats)": "binarised", "val bits/dim": "8-bit",
                  "val D loss": "adversarial", "val G loss": "adversarial"}
"""Home's validation columns and the data group (:func:`data_group`) each one holds."""


def overview_rows(summaries: list[RunSummary]) -> list[dict]:
    """One row per run for Home's table, one unit per column as in the eval tables
    (:func:`compare_tables`): the latest validation loss in nats per image for likelihood
    models on binarised pixels, in bits/dim on 8-bit pixels (whose nats are a density on
    [0, 1]^D, negative and not comparable with the former), the GANs' discriminator and
    generator losses apart; eval.json's test figures likewise (nats per image, bits/dim,
    FID). Columns that no run fills are left out."""
    rows = []
    for s in summaries:
        val, ev = s.last_val or {}, s.eval or {}
        group = data_group(s) if s.model else None
        eight_bit = ev.get("data") == "8-bit" or "bpd" in ev
        kept = {"val loss (nats)": val.get("loss"), "val bits/dim": val.get("bpd"),
                "val D loss": val.get("d_loss"), "val G loss": val.get("g_loss")}
        rows.append({"run": s.name, "model": s.model, "dataset": s.dataset, "status": s.state,
                     "epoch": (s.last_train or {}).get("epoch"),
                     **{k: v if OVERVIEW_UNITS[k] == group and _number(v) else None
                        for k, v in kept.items()},
                     "test −log p(x) (nats)": None if eight_bit else ev.get("nll_nats"),
                     "test bits/dim": ev.get("bpd"),
                     "FID": ev.get("fid") if _number(ev.get("fid")) else None,
                     "folder": str(s.path.parent)})
    optional = [*OVERVIEW_UNITS, "test −log p(x) (nats)", "test bits/dim", "FID"]
    empty = [k for k in optional if all(r[k] is None for r in rows)]
    return [{k: v for k, v in r.items() if k not in empty} for r in rows]


OVERVIEW_FORMATS = {"val loss (nats)": ".2f", "val bits/dim": ".3f", "val D loss": ".3f",
                    "val G loss": ".3f", "test −log p(x) (nats)": ".2f", "test bits/dim": ".3f",
                    "FID": ".1f"}
"""How :func:`overview_rows`' figures are shown."""


def sample_caption(s: RunSummary) -> str:
    """What a run's shown sample grid is: after which epoch, at which temperature, and
    whether that is the model's default ("samples after epoch 12, T = 0.7 (realnvp's
    default)")."""
    stem = s.sample.stem if s.sample else ""
    epoch = stem.removeprefix("epoch_").lstrip("0") or "0"
    when = f"samples after epoch {epoch}" if stem.startswith("epoch_") else f"samples, {stem}"
    t, default = s.sample_temperature, default_temperature(s.model_class)
    if s.model_class is None:
        return f"{when}, T = {t:g}"
    if t == default:
        return f"{when}, T = {t:g} ({s.model}'s default)"
    return f"{when}, T = {t:g} (no grid at {s.model}'s default T = {default:g})"


def fid_rows(summaries: list[RunSummary]) -> list[dict]:
    """FID from eval.json for every run that has one, any family: the one number here that
    compares GANs, VAEs and flows (same dataset and feature network)."""
    rows = []
    for s in summaries:
        ev = s.eval or {}
        if _number(ev.get("fid")):
            rows.append({"run": s.name, "model": s.model, "FID": ev["fid"], "features": fid_label(ev),
                         "samples": ev.get("fid_n"),
                         "against": f"{ev.get('split', 'test')} ({ev.get('fid_n') or '?'} images)"})
    return rows


def fid_caption(dataset: str) -> str:
    """FID_NOTE with the feature network's test accuracy, when it can be read."""
    try:
        acc = net_info(dataset).get("test_accuracy")
    except (FeatureNetError, ValueError):
        acc = None
    net = f" Its {dataset} classifier's test accuracy: {acc:.2%}." if acc else ""
    return FID_NOTE + net


def _eval_cells(group: str, ev: dict) -> dict:
    def get(key, sign=1.0):
        v = ev.get(key)
        return sign * v if _number(v) else None
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


def compare_tables(summaries: list[RunSummary]) -> tuple[list[dict], list[str]]:
    """eval.json of several runs as tables that never mix units: one per data kind
    (nats on binarised pixels, bits/dim on 8-bit pixels) and one for GANs. Returns
    ([{"group", "title", "rows"}], names of the runs with no eval.json yet)."""
    groups: dict[str, list[dict]] = {}
    missing = []
    for s in summaries:
        ev = s.eval
        if not ev:
            missing.append(s.name)
            continue
        g = data_group(s)
        how = ev.get("nll_method") or ""
        exact = "exact" in how or (s.model_class is not None and is_exact(s.model_class))
        groups.setdefault(g, []).append({
            "run": s.name, "model": s.model, "data": g, "epoch": ev.get("epoch"),
            "split": f"{ev.get('split', 'test')} ({ev.get('n_images', '?')})",
            "k": None if g == "adversarial" or exact else ev.get("k"),
            **_eval_cells(g, ev)})
    out = []
    for g in (g for g in GROUP_TITLES if g in groups):
        rows = groups[g]
        keep = [k for k in rows[0] if any(r[k] is not None for r in rows)]  # no empty columns
        out.append({"group": g, "title": GROUP_TITLES[g], "rows": [{k: r[k] for k in keep} for r in rows]})
    return out, missing


def l1_meaning(s: RunSummary) -> str:
    """What the importance-weighted bound at k = 1 is for this run: the ELBO when the model
    trains on one (it logs "elbo"), else a one-sample importance estimate of log p(x) (the
    autoencoder + GMM: a deterministic encoder has no ELBO; its proposal is a mixture)."""
    if "elbo" in metric_names([r for r in s.metrics if r.get("event") == "epoch"]):
        return "ELBO"
    return "1-sample importance estimate (no ELBO: deterministic encoder)"


def bound_rows(points: dict[str, dict[str, dict[int, float]]], k: int,
               meaning: dict[str, str]) -> list[dict]:
    """Rows from {data group: {run: {k: L_k}}}: L_1 and what it is (``meaning`` by run),
    L_k and the gain from k = 1 to k."""
    return [{"run": name, "data": g, "L_1": pts[1], "L_1 is": meaning.get(name, ""),
             **({f"L_{k}": pts[k], "gain": pts[k] - pts[1]} if k > 1 else {})}
            for g, group in points.items() for name, pts in group.items()]
