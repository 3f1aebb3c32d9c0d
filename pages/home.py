"""Home: what genlab is, and a gallery of every run in the run folders."""
from __future__ import annotations

import streamlit as st

from genlab import runs
from genlab.status import RunSummary, runs_roots
from genlab.tables import FID_NOTE, overview_rows
from pages import PAGES, cache, via_router
from pages.widgets import STATE_ICON, Card

via_router()

TRAIN_CMD = "python -m genlab train --model vae --dataset mnist --epochs 20"
NUMBER = st.column_config.NumberColumn(format="%.3f")



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


def status_ui(s: RunSummary) -> None:
    state, msg = s.state, s.message
    if state in ("failed", "broken", "interrupted"):
        st.error(f"**{state}**: {msg or 'no message recorded'}", icon=":material/error:")
    elif state in ("running", "starting"):
        st.progress(min(float(s.status.get("progress") or 0.0), 1.0), text=msg or state)
    elif state == "stopped":
        st.warning(msg or f"stopped; continue with `python -m genlab resume {s.path}`",
                   icon=":material/pause_circle:")
    if s.bad_metric_lines:
        st.warning(f"{s.bad_metric_lines} unreadable line(s) in metrics.jsonl were skipped.")


def facts_ui(c: Card) -> None:
    s = c.summary
    if c.config:
        st.caption(c.config)
    if c.rows:
        cols = {k: NUMBER for k in c.rows[0] if k != "metric"}
        st.dataframe(c.rows, hide_index=True, column_config=cols)
        last = (s.last_train or {}).get("epoch", "?")
        st.caption(f"{c.units}; train and val after epoch {last} of {s.train.get('epochs', '?')}"
                   .lstrip("; "))
    else:
        st.caption("No completed epoch yet." if c.figure else "No metrics yet.")
    if c.eval:
        st.markdown(f"**Eval** {c.eval}")
    elif s.state != "broken" and s.model:
        st.caption(f"No eval.json yet: `python -m genlab eval {s.path}`")


def card_ui(c: Card) -> None:
    s = c.summary
    with st.container(border=True):
        st.subheader(f"{STATE_ICON.get(s.state, '')} {s.name}", anchor=False)
        what = f"{s.model} on {s.dataset or '?'} · " if s.model else ""
        st.caption(f"{what}{s.state} · `{s.path}`")
        status_ui(s)
        if s.state == "broken" and not c.rows:
            return
        img, facts, chart = st.columns([1, 1.8, 2.8], gap="small")
        with img:
            if c.image:
                st.image(c.image, caption=f"samples, {s.sample.stem.replace('_', ' ')}", width="stretch")
            else:
                st.caption(c.image_error or "No sample grid yet (written after each epoch).")
        with facts:
            facts_ui(c)
        with chart:
            if c.figure is not None:
                st.plotly_chart(c.figure, key=f"curves-{s.path}")
        links_ui(s)


def links_ui(s: RunSummary) -> None:
    """Buttons into the pages that work on one run (they read st.session_state["run"]),
    in one row under the card."""
    row = st.container(horizontal=True, gap="small")
    for p in (p for p in PAGES if p.takes_run and s.model):
        if row.button(p.title, icon=p.icon, key=f"open-{p.url_path}-{s.path}"):
            st.session_state["run"] = str(s.path)
            st.switch_page(p.file)


intro_ui()
roots = st.session_state.get("runs_roots") or runs_roots()  # app.py sets it
cards = [cache.card(p) for p in runs.find_runs(*roots)]
if not cards:
    empty_ui(roots)
    st.stop()
st.header(f"Runs ({len(cards)})", anchor=False)
if len(cards) > 3:
    f1, f2, f3 = st.columns(3)
    facets = [(f1, "model", lambda s: str(s.model)), (f2, "dataset", lambda s: str(s.dataset)),
              (f3, "status", lambda s: s.state)]
    picks = [(get, col.multiselect(key, sorted({get(c.summary) for c in cards}))) for col, key, get in facets]
    cards = [c for c in cards if all(not v or get(c.summary) in v for get, v in picks)]
st.dataframe(overview_rows([c.summary for c in cards]), hide_index=True,
             height="content" if len(cards) <= 25 else "auto",  # every run, up to a point
             column_config={"val loss": NUMBER, "test −log p(x)": NUMBER, "bits/dim": NUMBER,
                            "FID": st.column_config.NumberColumn(format="%.1f")})
st.caption("Test −log p(x): nats per image on binarised pixels; bits/dim: 8-bit pixels (never "
           "compared with each other). " + FID_NOTE)
if st.button("Refresh", icon=":material/refresh:"):
    st.rerun()
for c in cards:
    card_ui(c)
