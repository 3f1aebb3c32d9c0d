"""The Compare page's sections that are more than a table (not a page itself): the eval
button that starts ``python -m genlab eval`` for runs that have no eval.json, and that
job's progress; a class-conditional run beside its unconditional family (issue 28). What
the page caches (summaries, models, test images, reconstructions, bound points) is in
pages/ui/cache.py, the conditional section's likelihoods here (:func:`likelihoods`)."""
from __future__ import annotations

import math

import streamlit as st

from genlab.data import DATASETS, DatasetError, data_root
from genlab.evaluation import compare, explore
from genlab.figures.likelihood_figures import given_scatter_figure, ood_histogram_figure
from genlab.figures.tables import sample_caption
from genlab.runs import jobs, store, status
from genlab.runs.status import RunSummary
from pages.ui import cache
from pages.ui.widgets import draw, table

N_RECON = 10
EVAL_K = (1, 10, 100, 1000)
COND_N = (100, 200, 500)  # test images of the conditional against unconditional section


def eval_ui(sel: list[RunSummary], missing: list[str]) -> None:
    broken = [s.name for s in sel if s.name in missing and s.state == "broken"]
    if broken:
        st.warning(f"No eval.json for {', '.join(broken)}: its checkpoint cannot be read (see above), "
                   "so it cannot be evaluated or resumed; train it again.", icon=":material/report:")
    todo = [s for s in sel if s.name in missing and s.state != "broken"]
    if not todo:
        return
    unreadable = {s.name: s.eval_error for s in todo if s.eval_error}  # there, but not readable
    for name, why in unreadable.items():
        st.warning(f"**{name}**: {why}; evaluating it again rewrites it.", icon=":material/warning:")
    plan = compare.eval_plan(todo, {s.name: status.read_job(s.path) for s in todo})
    none_yet = [n for n in missing if n not in unreadable]
    text = (f"No eval.json yet for {', '.join(none_yet)}." if none_yet else "") + "".join(
        f" {', '.join(names)}: {why}." for names, why in (
            (plan["training"], "still training, evaluate it when it is done"),
            (plan["no_ckpt"], "no checkpoint, nothing to evaluate")) if names)
    if text:
        st.warning(text.strip(), icon=":material/pending_actions:")
    if plan["can"]:
        c1, c2, c3 = st.columns([1, 1, 1], vertical_alignment="bottom")
        k = c1.selectbox("importance samples k", EVAL_K, index=2, key="eval-k",
                         help="for latent models' log p(x); flows are exact, GANs have none")
        limit = c2.selectbox("test images", (1000, 0), key="eval-limit",
                             format_func=lambda n: f"first {n:,}" if n else "all")
        if c3.button(f"Evaluate {len(plan['can'])} run(s)", icon=":material/calculate:", key="eval-go"):
            for s in plan["can"]:
                try:
                    jobs.start_eval(s.path, k=k, limit=limit or None)
                except (jobs.JobError, OSError) as e:
                    st.error(f"{s.name}: {e}")
            st.rerun()
    if plan["show"]:
        st.fragment(run_every=1.0 if plan["evaluating"] else None)(eval_progress_ui)(
            plan["show"], bool(plan["evaluating"]))


def eval_progress_ui(todo: list[RunSummary], was_busy: bool) -> None:
    alive = False
    for s in todo:
        job = status.read_job(s.path)
        if not job or job.kind != "eval":
            continue
        if job.alive:
            alive = True
            frac, what = jobs.eval_progress(s.path)
            st.progress(frac or 0.0, text=f"{s.name}: {what}")
        elif not (s.path / store.EVAL).exists():
            st.error(f"{s.name}: eval failed: {status.log_tail(s.path, status.EVAL_LOG, 1)}")
    if was_busy and not alive:
        st.rerun()


# -- a class-conditional run beside its unconditional family (issue 28) -------------------
@st.cache_data(show_spinner=False, max_entries=32)
def likelihoods(path: str, stamp: int | None, n: int, dataset: str, root: str) -> compare.Likelihoods:
    """compare.likelihoods of the first n test images, once per run, checkpoint stamp, n,
    dataset and data root (the caller has loaded the run without error)."""
    model = cache.load(path, stamp)[0].model
    return compare.likelihoods(model, cache.test_images(dataset, n, root))


def conditional_ui(sel: list[RunSummary], runs: list[RunSummary], dataset: str) -> None:
    """Each class-conditional run picked beside the picked runs of its unconditional family
    (its samples, a table of likelihoods and two figures), or one line naming the runs of
    that family there are (``runs``: all of the dataset's) when none is picked."""
    everywhere = {p.conditional.path: p for p in compare.conditional_pairs(runs)}
    pairs = compare.conditional_pairs(sel)
    for p in pairs:
        if not p.unconditional:
            st.caption(family_note(everywhere.get(p.conditional.path, p)))
    pairs = [p for p in pairs if p.unconditional]
    if not pairs:
        return
    n = st.select_slider("test images", COND_N, value=200, key="cond-n",
                         help="the first n of the test split, the same images and noise for every run")
    root = str(data_root().resolve())
    for i, p in enumerate(pairs):
        try:
            pair_ui(p, n, dataset, root, key=f"cond-{i}")
        except DatasetError as e:
            st.warning(str(e), icon=":material/folder_off:")
            return


def family_note(p: compare.ConditionalPair) -> str:
    """One line: the runs of a conditional run's unconditional family that exist, or none."""
    what = f"**{p.conditional.name}** ({p.conditional.model}) is the class-conditional variant of {p.family}"
    if not p.unconditional:
        return f"{what}; there is no {p.family} run on {p.conditional.dataset} to set beside it."
    names = ", ".join(s.name for s in p.unconditional)
    return f"{what}: pick one of its runs to set beside it ({names})."


def pair_ui(p: compare.ConditionalPair, n: int, dataset: str, root: str, *, key: str) -> None:
    runs = [p.conditional, *p.unconditional]
    st.subheader(f"{p.conditional.name} against {p.family}", anchor=False)
    pair_samples_ui(runs, dataset)
    got = {s.path: run_likelihoods(s, n, dataset, root) for s in runs}
    table([compare.pair_row(s, got[s.path]) for s in runs], compare.PAIR_FORMATS)
    cond = got[p.conditional.path]
    if isinstance(cond, str):
        st.caption(f"{p.conditional.name}: {cond}; its samples are what compares.")
        return
    c1, c2 = st.columns(2)
    with c1:
        draw(given_scatter_figure(cond.nll.numpy(), cond.nll_given.numpy(), cond.unit), key=f"{key}-scatter")
    same = [(f"{s.name}: −log p(x)", got[s.path].nll.numpy()) for s in p.unconditional
            if not isinstance(got[s.path], str) and got[s.path].unit == cond.unit]
    if same:
        with c2:
            draw(ood_histogram_figure([(f"{p.conditional.name}: −log p(x)", cond.nll.numpy()), *same],
                                      cond.unit), key=f"{key}-hist")
    st.caption(pair_caption(p, cond, n, dataset, histogram=bool(same)))


def pair_caption(p: compare.ConditionalPair, cond: compare.Likelihoods, n: int, dataset: str, *,
                 histogram: bool) -> str:
    K = cond.num_classes
    how = "exact" if cond.k is None else f"{cond.k} importance samples per class"
    held = f"both hold on all {n} images" if cond.bounds_hold(1e-6) else "they fail on some image"
    return (f"The first {n} {dataset} test images, the same inputs for every run; −log p in each "
            "run's unit (nats per image on binarised pixels, bits/dim on 8-bit ones). "
            f"{p.conditional.name}'s log p(x) is computed here, logsumexp_y [log p(x|y) + log p(y)] "
            f"over its {K} per-class likelihoods of each image ({how}); eval.json's is eval's, on "
            "its own images. By Bayes' rule log p(x|y) − log p(x) = log p(y|x) − log p(y), at most "
            f"−log p(y) (log {K} = {math.log(K):.2f} nats for {K} equal classes), so "
            f"log p(x|y) + log p(y) ≤ log p(x) ≤ max_y log p(x|y): {held}. Its classifier, "
            f"argmax_y log p(x|y) + log p(y), labels {cond.accuracy:.0%} of them right. Below the "
            "scatter's line: an image whose label its classifier finds likelier than the prior does"
            + ("; beside it, −log p(x) of each run on the same images." if histogram else "."))


def run_likelihoods(s: RunSummary, n: int, dataset: str, root: str) -> compare.Likelihoods | str:
    """A run's :class:`compare.Likelihoods` (cached), or why it has none, in a few words."""
    if not (s.model_class and s.model_class.caps.likelihood):
        return "no likelihood"
    _, err = cache.load(str(s.path), s.ckpt)
    if err:
        return f"cannot be loaded: {err}"
    with st.spinner(f"log p(x) of {n} test images under {s.name} (once per run and checkpoint) ..."):
        return likelihoods(str(s.path), s.ckpt, n, dataset, root)


def pair_samples_ui(runs: list[RunSummary], dataset: str) -> None:
    """The runs' last stored grids side by side; a conditional run's has a row per class."""
    for col, s in zip(st.columns(len(runs)), runs):
        col.markdown(f"**{s.name}**  \n{s.model}")
        image, err = cache.sample_png(str(s.path), s.sample)
        if not image:
            col.caption(err or "No sample grid yet (written after each epoch).")
            continue
        caption = sample_caption(s)
        conditional = bool(s.model_class and s.model_class.caps.conditional)
        loaded = cache.load(str(s.path), s.ckpt)[0] if conditional else None
        if loaded is not None:
            names = explore.class_names(loaded.model, DATASETS[dataset].classes)
            caption += f"; one row per class, top to bottom: {', '.join(names)}"
        col.image(image, caption=caption, width="stretch")
