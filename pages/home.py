"""Home: what genlab is, and a gallery of every run in the run folders."""
from __future__ import annotations

import streamlit as st

from genlab import runs
from genlab.plots import FID_NOTE, STATE_ICON, overview_rows, run_card, run_stamp, run_state, runs_roots
from pages import PAGES, via_router

via_router()

TRAIN_CMD = "python -m genlab train --model vae --dataset mnist --epochs 20"
NUMBER = st.column_config.NumberColumn(format="%.3f")


@st.cache_data(show_spinner=False, max_entries=512)
def card(path: str, stamp: tuple) -> dict:
    """A run's card, cached until one of its files changes (``stamp``: mtimes and sizes)."""
    return run_card(path)


def load(path) -> dict:
    """The cached card, with its state checked afresh (a training process may have died
    without touching its files)."""
    c = dict(card(str(path), run_stamp(path)))
    c["state"], c["message"] = run_state(c["summary"])
    return c


def intro_ui() -> None:
    st.title("genlab")
    st.markdown(
        "Deep generative models of small images (MNIST, Fashion-MNIST, SVHN): variational "
        "autoencoders, normalizing flows and GANs, each trained by one loop into a run folder "
        "(config, metrics, checkpoint, sample grids). This page lists those runs; training "
        f"happens in its own process (`{TRAIN_CMD}`), so runs from a terminal show up here too.")


def empty_ui(roots: list) -> None:
    where = ", ".join(f"`{r}`" for r in roots) or "(no folder set)"
    st.info(f"**No runs yet** in {where}. Train one from a terminal in this folder:\n\n"
            f"```\n{TRAIN_CMD}\n```\n\nIt shows up here as it trains (refresh the page). "
            "To look elsewhere, change *Run folders* in the sidebar or set GENLAB_RUNS.",
            icon=":material/info:")


def status_ui(c: dict) -> None:
    state, msg, status = c["state"], c["message"], c["summary"].get("status") or {}
    if state in ("failed", "broken", "interrupted"):
        st.error(f"**{state}**: {msg or 'no message recorded'}", icon=":material/error:")
    elif state in ("running", "starting"):
        st.progress(min(float(status.get("progress") or 0.0), 1.0), text=msg or state)
    elif state == "stopped":
        st.warning(msg or f"stopped; continue with `python -m genlab resume "
                          f"{c['summary']['path']}`", icon=":material/pause_circle:")
    bad = c["summary"].get("bad_metric_lines")
    if bad:
        st.warning(f"{bad} unreadable line(s) in metrics.jsonl were skipped.")


def facts_ui(c: dict) -> None:
    if c["config"]:
        st.caption(c["config"])
    if c["rows"]:
        cols = {k: NUMBER for k in c["rows"][0] if k != "metric"}
        st.dataframe(c["rows"], hide_index=True, column_config=cols)
        last = c["summary"].get("last_train") or {}
        total = (c["summary"].get("train") or {}).get("epochs", "?")
        st.caption(f"{c['units']}; train and val after epoch {last.get('epoch', '?')} of {total}"
                   .lstrip("; "))
    else:
        st.caption("No completed epoch yet." if c["figure"] else "No metrics yet.")
    if c["eval"]:
        st.markdown(f"**Eval** {c['eval']}")
    elif c["state"] not in ("broken",) and c["summary"].get("model"):
        st.caption(f"No eval.json yet: `python -m genlab eval {c['summary']['path']}`")


def card_ui(c: dict) -> None:
    s = c["summary"]
    with st.container(border=True):
        st.subheader(f"{STATE_ICON.get(c['state'], '')} {s['name']}", anchor=False)
        what = f"{s['model']} on {s.get('dataset') or '?'} · " if s.get("model") else ""
        st.caption(f"{what}{c['state']} · `{s['path']}`")
        status_ui(c)
        if c["state"] == "broken" and not c["rows"]:
            return
        img, facts, chart = st.columns([1, 1.8, 2.8], gap="small")
        with img:
            if c["image"]:
                st.image(c["image"], caption=f"samples, {c['sample_name'].replace('_', ' ')}",
                         width="stretch")
            else:
                st.caption(c["image_error"] or "No sample grid yet (written after each epoch).")
        with facts:
            facts_ui(c)
        with chart:
            if c["figure"] is not None:
                st.plotly_chart(c["figure"], key=f"curves-{s['path']}")
        links_ui(s)


def links_ui(s: dict) -> None:
    """Buttons into the pages that work on one run (they read st.session_state["run"]),
    in one row under the card."""
    row = st.container(horizontal=True, gap="small")
    for p in (p for p in PAGES if p.takes_run and s.get("model")):
        if row.button(p.title, icon=p.icon, key=f"open-{p.url_path}-{s['path']}"):
            st.session_state["run"] = str(s["path"])
            st.switch_page(p.file)


intro_ui()
roots = st.session_state.get("runs_roots") or runs_roots()  # app.py sets it
cards = [load(p) for p in runs.find_runs(*roots)]
if not cards:
    empty_ui(roots)
    st.stop()
st.header(f"Runs ({len(cards)})", anchor=False)
if len(cards) > 3:
    f1, f2, f3 = st.columns(3)
    pick = {key: col.multiselect(key, sorted({str(c["summary"].get(key)) for c in cards}))
            for key, col in (("model", f1), ("dataset", f2))}
    states = f3.multiselect("status", sorted({c["state"] for c in cards}))
    cards = [c for c in cards if all(not v or str(c["summary"].get(k)) in v for k, v in pick.items())
             and (not states or c["state"] in states)]
st.dataframe(overview_rows([c["summary"] for c in cards]), hide_index=True,
             height="content" if len(cards) <= 25 else "auto",  # every run, up to a point
             column_config={"val loss": NUMBER, "test −log p(x)": NUMBER, "bits/dim": NUMBER,
                            "FID": st.column_config.NumberColumn(format="%.1f")})
st.caption("Test −log p(x): nats per image on binarised pixels; bits/dim: 8-bit pixels (never "
           "compared with each other). " + FID_NOTE)
if st.button("Refresh", icon=":material/refresh:"):
    st.rerun()
for c in cards:
    card_ui(c)
