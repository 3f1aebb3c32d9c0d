"""Out-of-distribution: what does a likelihood model think is likely? Per-image -log p(x)
(nats for binarised models, bits/dim for 8-bit ones) on its own test set and on another
dataset's, the AUROC of -log p(x) as a detector of the other set, and the most and least
likely images of each (genlab.evaluation.ood; Nalisnick et al., ICLR 2019); a
class-conditional model also by its best class's likelihood, max_y log p(x|y)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from genlab.data import data_root
from genlab.evaluation import ood as O
from genlab.figures.likelihood_figures import ood_histogram_figure
from genlab.runs import views
from pages import via_router
from pages.ui import cache, likelihood_ui as lui
from pages.ui.widgets import draw, table

via_router()

SIZES = (200, 500, 1000, 2000, 5000, 10000)
KS = (1, 10, 100, 1000)
TRAIN_CMD = "python -m genlab train --model nice --dataset fashion-mnist --epochs 3"


def pick_runs() -> list:
    paths, labels = lui.candidates(views.likelihood)
    if not paths:
        lui.no_runs("a model with a likelihood (a flow or a VAE)", TRAIN_CMD)
    if "ood_runs" not in st.session_state:
        first = st.session_state.get("run")
        st.session_state["ood_runs"] = [first] if first in paths else paths[:1]
    st.session_state["ood_runs"] = [p for p in st.session_state["ood_runs"] if p in paths]
    chosen = st.multiselect("Likelihood models", paths, key="ood_runs", format_func=labels.get,
                            max_selections=6)
    return [r for r in (lui.open_run(p) for p in chosen) if r is not None]


def one_pair(run, other: str, n: int, k: int) -> dict:
    with st.spinner(f"Scoring {n} + {n} images with {run.model_name} (once per run) ..."):
        res = cache.ood(run.path, run.stamp, run.dataset, other, str(data_root()), n, k)
    s = res["summary"]
    c1, c2 = st.columns([2, 1])
    with c1:
        hist = ood_histogram_figure([(f"{s['in']} (own test set)", res["score_in"]),
                                     (f"{s['out']} test set", res["score_out"])], s["unit"])
        draw(hist, key=f"ood-{run.key}-{other}-{n}-{k}")
    with c2:
        st.metric(f"AUROC, {s['out']} vs {s['in']}", f"{s['auroc']:.3f}",
                  help="of -log p(x) as a detector of the other set: 1 = every other image less "
                       "likely, 0.5 = no separation, below 0.5 = the model prefers the other set")
        st.markdown(f"median -log p(x): **{s['median_in']:.2f}** {s['unit']} on {s['in']}, "
                    f"**{s['median_out']:.2f}** on {s['out']}")
        if "auroc_best" in s:  # a class-conditional model: also by its best class
            st.metric(f"Best-class AUROC, {s['out']} vs {s['in']}", f"{s['auroc_best']:.3f}",
                      help="of -max_y log p(x | y), the likelihood under the image's most likely "
                           "class, as a detector of the other set (the AUROC above is of the "
                           "marginal log p(x) = log sum_y p(x | y) p(y), from the same per-class "
                           "likelihoods)")
            st.markdown(f"median -max_y log p(x | y): **{s['median_best_in']:.2f}** {s['unit']} "
                        f"on {s['in']}, **{s['median_best_out']:.2f}** on {s['out']}")
        if s["note"]:
            st.caption(f"The {s['out']} images were {s['note']} to match the model.")
    for name, key in ((s["in"], "in"), (s["out"], "out")):
        a, b = st.columns(2)
        with a:
            lui.image_row(res[f"most_{key}"], f"{name}: the 8 most likely images")
        with b:
            lui.image_row(res[f"least_{key}"], f"{name}: the 8 least likely images")
    return s


st.title("Out-of-distribution")
st.caption("Does a model of one dataset give another dataset a lower likelihood? Nalisnick et al. "
           "(ICLR 2019) found flows and VAEs trained on Fashion-MNIST give MNIST a *higher* one. "
           "What genlab's models do is computed below.")
chosen = pick_runs()
c1, c2 = st.columns(2)
n = c1.select_slider("Test images per set", SIZES, value=500, key="ood-n",
                     help="the first N of each test split; more is slower (a few seconds at 500)")
k = c2.select_slider("Importance samples k (VAEs; flows are exact)", KS, value=10, key="ood-k")
summary = st.container()  # the table across runs, above the runs' own sections
verdicts, rows = [], []
for run in chosen:
    name = Path(run.path).name
    st.header(f"{name}: {run.model_name} on {run.dataset}", anchor=False)
    st.caption(run.path)
    partners = O.ood_partners(run.dataset, data_root())
    absent = [p for p, present in partners if not present]
    for other, present in partners:
        if present:
            st.subheader(f"{name}: {run.dataset} vs {other}", anchor=False)
            s = one_pair(run, other, n, k)
            verdicts.append(O.verdict(f"{name} ({run.model_name} on {run.dataset})", s))
            rows.append(O.table_row(name, run.model_name, s, exact=run.model.caps.likelihood == "exact"))
    if absent:
        st.caption(f"Not compared: {', '.join(absent)} (not in the data root).")
if rows:
    summary.header("AUROC across the chosen runs", anchor=False)
    table(*O.table_rows(rows), where=summary)
    summary.caption(f"One row per run and other set, on the first {n:,} images of each test split. "
                    "AUROC of -log p(x) as a detector of the other set (1: every other image less "
                    "likely, 0.5: no separation, below 0.5: the model prefers the other set); the "
                    "medians in the row's unit, nats per image for binarised models and bits/dim "
                    "for 8-bit ones, so compare medians within a unit only."
                    + (f" {O.BEST_AUROC}: a class-conditional model's AUROC of -max_y log p(x | y), "
                       "the likelihood under the image's most likely class."
                       if any(O.BEST_AUROC in r for r in rows) else ""))
st.session_state["ood_verdicts"] = verdicts
st.session_state["ood_rows"] = rows
if verdicts:
    st.header("What the models do", anchor=False)
    st.markdown("\n".join(f"- {v}" for v in verdicts))
