"""The Compare page's eval section (not a page itself): the button that starts
``python -m genlab eval`` for runs that have no eval.json, and that job's progress. What
the page caches (summaries, models, test images, reconstructions, bound points) is in
pages/ui/cache.py."""
from __future__ import annotations

import streamlit as st

from genlab.evaluation import compare
from genlab.runs import jobs, store, status
from genlab.runs.status import RunSummary

N_RECON = 10
EVAL_K = (1, 10, 100, 1000)


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
