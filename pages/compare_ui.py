"""What the Compare page caches and its eval section (not a page itself): run summaries,
models, test images, reconstructions and bound points, each cached per run and
checkpoint modification time; the button that starts ``python -m genlab eval`` for
runs that have no eval.json, and that job's progress."""
from __future__ import annotations

import streamlit as st

from genlab import compare, jobs, runs
from genlab.models import model_entry
from genlab.plots import run_stamp, run_state

N_RECON = 10
EVAL_K = (1, 10, 100, 1000)


@st.cache_data(show_spinner=False, max_entries=256)
def summary(path: str, stamp: tuple) -> dict:
    return runs.summarize(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def model(path: str, ckpt_mtime: int | None):
    """(model, None) or (None, what is wrong and what to do): a corrupt checkpoint is a message."""
    try:
        return runs.load_model(path)[0], None
    except runs.RunError as e:
        return None, f"{e} Retrain it, or resume it from the Train page if it has a checkpoint."


@st.cache_data(show_spinner=False, max_entries=16)
def test_images(dataset: str, n: int, root: str):
    return compare.test_images(dataset, n, root)


@st.cache_data(show_spinner=False, max_entries=64)
def recon_png(path: str, ckpt_mtime: int | None, dataset: str, root: str) -> bytes:
    net, _ = model(path, ckpt_mtime)
    return compare.image_row_png(compare.reconstruct(net, test_images(dataset, N_RECON, root).x))


@st.cache_data(show_spinner=False, max_entries=512)
def bound(path: str, ckpt_mtime: int | None, k: int, n: int, dataset: str, root: str) -> dict:
    net, _ = model(path, ckpt_mtime)
    return compare.bound_at_k(net, test_images(dataset, n, root), k)


def load(path) -> dict:
    s = dict(summary(str(path), run_stamp(path)))
    s["state"] = run_state(s)[0]
    s["ckpt"] = compare.checkpoint_stamp(path)
    s["cls"] = model_entry(s["model"])[0] if s.get("model") else None
    return s


def eval_ui(sel: list[dict], missing: list[str]) -> None:
    todo = [s for s in sel if s["name"] in missing]
    plan = compare.eval_plan(todo, {s["name"]: jobs.read_job(s["path"]) or {} for s in todo})
    st.warning(f"No eval.json yet for {', '.join(missing)}." + "".join(
        f" {', '.join(names)}: {why}." for names, why in (
            (plan["training"], "still training, evaluate it when it is done"),
            (plan["no_ckpt"], "no checkpoint, nothing to evaluate")) if names),
        icon=":material/pending_actions:")
    if plan["can"]:
        c1, c2, c3 = st.columns([1, 1, 1], vertical_alignment="bottom")
        k = c1.selectbox("importance samples k", EVAL_K, index=2, key="eval-k",
                         help="for latent models' log p(x); flows are exact, GANs have none")
        limit = c2.selectbox("test images", (1000, 0), key="eval-limit",
                             format_func=lambda n: f"first {n:,}" if n else "all")
        if c3.button(f"Evaluate {len(plan['can'])} run(s)", icon=":material/calculate:", key="eval-go"):
            for s in plan["can"]:
                try:
                    jobs.start_eval(s["path"], k=k, limit=limit or None)
                except (jobs.JobError, OSError) as e:
                    st.error(f"{s['name']}: {e}")
            st.rerun()
    if plan["show"]:
        st.fragment(run_every=1.0 if plan["evaluating"] else None)(eval_progress_ui)(
            plan["show"], bool(plan["evaluating"]))


def eval_progress_ui(todo: list[dict], was_busy: bool) -> None:
    alive = False
    for s in todo:
        job = jobs.read_job(s["path"]) or {}
        if job.get("kind") != "eval":
            continue
        if job["alive"]:
            alive = True
            frac, what = jobs.eval_progress(s["path"])
            st.progress(frac or 0.0, text=f"{s['name']}: {what}")
        elif not (s["path"] / runs.EVAL).exists():
            st.error(f"{s['name']}: eval failed: {jobs.log_tail(s['path'], jobs.EVAL_LOG, 1)}")
    if was_busy and not alive:
        st.rerun()
