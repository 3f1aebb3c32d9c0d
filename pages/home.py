"""Home: what genlab is, every run in the run folders as a table and a compact gallery
(ordered by dataset and family, each with its headline figure), the problems in one line
each, and one run's full card (curves, metrics, links into the pages) on demand."""
from __future__ import annotations

import streamlit as st

from genlab.figures.tables import (FID_NOTE, OVERVIEW_FORMATS, headline, overview_rows,
                                   sample_caption)
from genlab.runs.status import RunSummary, budget_phrase, order_key, run_dirs, runs_roots
from pages import PAGES, via_router
from pages.ui import cache
from pages.ui.widgets import STATE_ICON, Card, draw, table

via_router()

TRAIN_CMD = "python -m genlab train --model vae --dataset mnist --epochs 20"
TILES = 6  # gallery tiles a row
DETAILS = "home-details"
PROBLEMS = ("failed", "broken", "interrupted")


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


def filter_ui(summaries: list[RunSummary]) -> list[RunSummary]:
    if len(summaries) < 2:
        return summaries
    f1, f2, f3 = st.columns(3)
    facets = [(f1, "model", lambda s: str(s.model)), (f2, "dataset", lambda s: str(s.dataset)),
              (f3, "status", lambda s: s.state)]
    picks = [(get, col.multiselect(key, sorted({get(s) for s in summaries}), key=f"home-{key}"))
             for col, key, get in facets]
    return [s for s in summaries if all(not v or get(s) in v for get, v in picks)]


def table_ui(shown: list[RunSummary]) -> None:
    table(overview_rows(shown), OVERVIEW_FORMATS)
    st.caption("One unit a column: the latest validation loss and the test −log p(x) in nats per "
               "image on binarised pixels, bits/dim on 8-bit pixels (never compared with each "
               "other), a GAN's discriminator and generator losses apart. — : not measured or "
               "another unit's column. " + FID_NOTE)


def gallery_ui(shown: list[RunSummary]) -> None:
    """One small tile per run: its latest samples, name, state and headline figure."""
    for start in range(0, len(shown), TILES):
        for col, s in zip(st.columns(TILES), shown[start:start + TILES]):
            with col.container(border=True):
                image, err = cache.sample_png(str(s.path), s.sample)
                if image:
                    st.image(image, caption=f"T = {s.sample_temperature:g}", width="stretch")
                elif err:
                    st.caption(err)
                st.markdown(f"{STATE_ICON.get(s.state, '')} **{s.name}**")
                st.caption(" · ".join(filter(None, [f"{s.model} · {s.dataset}" if s.model else "",
                                                   headline(s) or s.state])))
                st.button("Details", key=f"details-{s.path}", icon=":material/expand_more:",
                          on_click=st.session_state.__setitem__, args=(DETAILS, str(s.path)))


def problems_ui(shown: list[RunSummary]) -> None:
    for s in (s for s in shown if s.state in PROBLEMS):
        st.error(f"**{s.name}** {s.state}: {s.message or 'no message recorded'}", icon=":material/error:")
    for s in (s for s in shown if s.bad_metric_lines):
        st.warning(f"**{s.name}**: {s.bad_metric_lines} unreadable line(s) in metrics.jsonl were skipped.")
    for s in (s for s in shown if s.eval_error):
        st.warning(f"**{s.name}**: {s.eval_error}", icon=":material/warning:")


def status_ui(s: RunSummary) -> None:
    if s.state in ("running", "starting"):
        st.progress(min(float(s.status.progress or 0.0), 1.0), text=s.message or s.state)
    elif s.state == "stopped":
        st.warning(s.message or f"stopped; continue with `python -m genlab resume {s.path}`",
                   icon=":material/pause_circle:")
    elif s.state in PROBLEMS:
        st.caption(f"{s.state}: see above")


def facts_ui(c: Card) -> None:
    s = c.summary
    if c.config:
        st.caption(c.config)
    if c.rows:
        table(c.rows, {k: ".3f" for k in c.rows[0] if k != "metric"})
        last = (s.last_train or {}).get("epoch", "?")
        st.caption(f"{c.units}; train and val after {budget_phrase(last, s.train)}".lstrip("; "))
    else:
        st.caption("No completed epoch yet." if c.figure else "No metrics yet.")
    if c.eval:
        st.markdown(f"**Eval** {c.eval}")
    elif s.eval_error:
        st.warning(f"{s.eval_error}; evaluate the run again to rewrite it: "
                   f"`python -m genlab eval {s.path}`", icon=":material/warning:")
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
                st.image(c.image, caption=sample_caption(s), width="stretch")
            else:
                st.caption(c.image_error or "No sample grid yet (written after each epoch).")
        with facts:
            facts_ui(c)
        with chart:
            if c.figure is not None:
                draw(c.figure, key=f"curves-{s.path}")
        links_ui(s)


def links_ui(s: RunSummary) -> None:
    """Buttons into the pages that work on one run (they read st.session_state["run"]),
    in one row under the card: each page only for a run it lists (PageSpec.can_show, the
    function its own run picker uses); none for a broken run."""
    if s.state == "broken":
        return
    row = st.container(horizontal=True, gap="small")
    for p in (p for p in PAGES if p.can_show(s.model_class, s.config)):
        if row.button(p.title, icon=p.icon, key=f"open-{p.url_path}-{s.path}"):
            st.session_state["run"] = str(s.path)
            st.switch_page(p.file)


def details_ui(shown: list[RunSummary]) -> None:
    """One run's full card, on demand: the run a tile's Details button chose (or picked
    here, or the run the other pages were on). A fresh visit shows none: the card's curves
    are the page's only chart, so a first visit loads no chart script (what one costs a
    fresh browser: genlab/figures/charts.py)."""
    st.header("Details", anchor=False)
    paths = [str(s.path) for s in shown]
    if st.session_state.get(DETAILS) not in paths:  # a fresh visit, or the run filtered out
        here = st.session_state.get("run")
        st.session_state[DETAILS] = here if here in paths else None
    names = {str(s.path): s.name for s in shown}
    path = st.selectbox("Run", paths, key=DETAILS, format_func=names.get, index=None,
                        placeholder="Pick a run")
    if path is None:
        st.caption("Pick a run here or with a tile's Details button: its training curves, "
                   "metrics, eval and the pages that open it.")
        return
    card_ui(cache.card(path))


intro_ui()
roots = st.session_state.get("runs_roots") or runs_roots()  # app.py sets it
summaries = sorted((cache.summary(p) for p in run_dirs(*roots)),  # damaged ones too: broken
                   key=lambda s: (s.state == "broken" and not s.model, *order_key(s.model, s.dataset, s.name)))
if not summaries:
    empty_ui(roots)
    st.stop()
head = st.empty()
shown = filter_ui(summaries)
head.header(f"Runs ({len(shown)} of {len(summaries)})" if len(shown) < len(summaries)
            else f"Runs ({len(summaries)})", anchor=False)
if not shown:
    st.info("No run matches these filters.", icon=":material/filter_alt_off:")
    st.stop()
table_ui(shown)
problems_ui(shown)
gallery_ui(shown)
if st.button("Refresh", icon=":material/refresh:"):
    st.rerun()
details_ui(shown)
