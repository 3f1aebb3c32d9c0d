"""Train: the run being watched at the top (its progress, curves and samples), then the
form for a new one (dataset, model, options: train_ui.py) and every run in a table. A run
trains in its own process (genlab.runs.jobs) and this page polls its run directory, so it
stays usable, several runs go at once, and a browser refresh loses nothing. Shipped runs
are read-only: continuing one trains a copy under runs/."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from genlab.data import data_root
from genlab.figures.curves import live_figure
from genlab.figures.tables import metrics_rows, units_note
from genlab.runs import jobs, store
from genlab.runs.status import (ACTIVE, budget_phrase, budget_words, continue_root, log_tail,
                                read_only, runs_roots, summarize)
from pages import via_router
from pages.ui import train_ui as ui
from pages.ui.widgets import STATE_ICON, code, draw, plain, read_image, table

via_router()

POLL_S = 2.0
URL_PROBLEM = "train-url-problem"  # (the URL's ?watch=, what is wrong with it, the run shown instead)


def table_ui(infos: list[jobs.RunInfo]) -> None:
    rows = [{"run": i.name, "model": i.model, "dataset": i.dataset, "state": i.state,
             "progress": float(i.status.progress or (1.0 if i.state == "done" else 0.0)),
             "epoch": epochs_cell(i),
             "note": i.message} for i in infos]
    if not any(r["note"] for r in rows):
        rows = [{k: v for k, v in r.items() if k != "note"} for r in rows]
    table(rows, {"progress": "{:.0%}"})


def epochs_cell(info: jobs.RunInfo) -> str:
    epoch = info.status.epoch or 0
    if budget_words(info.train):  # its epochs only a cap: "67 epochs in an 8-CPU-minute budget"
        return budget_phrase(epoch, info.train)
    return f"{epoch}/{info.status.total_epochs or '?'}"


def controls_ui(info: jobs.RunInfo) -> None:
    path, state = info.path, info.state
    if state in ACTIVE:
        if st.button("Stop", icon=":material/stop_circle:", key=f"stop-{path}",
                     help="SIGTERM: the trainer finishes its step, saves a checkpoint and stops"):
            st.toast("Stopping..." if jobs.stop(path) else "No process to stop.")
        return
    if state == "broken" or not (path / store.CHECKPOINT).exists():
        return
    shipped = read_only(path)
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    asked = ui.resume_ui(info, (c1, c2))
    label = "Continue training in a copy" if shipped else "Resume"
    if c3.button(label, icon=":material/play_circle:", key=f"resume-{path}"):
        try:
            job = jobs.start_resume(path, **asked)
        except (jobs.JobError, store.RunError, OSError) as e:
            st.error(str(e))
            return
        ui.watch(job.run_dir, f"Continuing `{path.name}` in a copy, `{job.run_dir}` (shipped runs "
                 "are read-only)." if shipped else f"Resumed `{path.name}`.")
    if shipped:
        st.caption(f"{path.name} is a shipped run: read-only. Continuing it copies it into "
                   f"`{continue_root(path)}` first and trains the copy.")


def monitor_ui(info: jobs.RunInfo) -> None:
    path, state = info.path, info.state
    st.subheader(f"{STATE_ICON.get(state, '')} {info.name}", anchor=False)
    how_far = f" · {epochs_cell(info)}" if budget_words(info.train) and state not in ACTIVE else ""
    st.caption(f"{info.model or '?'} on {info.dataset or '?'} · {state}{how_far} · `{path}`")
    if state in ACTIVE:
        st.progress(*ui.progress(info))
        ui.speed_ui(info)
    elif state in ("failed", "interrupted", "broken"):
        st.error(f"**{state}**: {info.message or 'no message recorded'}", icon=":material/error:")
        with st.expander("Log tail", expanded=state == "failed"):
            st.code(log_tail(path, lines=20) or "(no log: started outside the app)", language=None)
    elif state == "stopped":
        st.warning(info.message or "stopped", icon=":material/pause_circle:")
    controls_ui(info)
    summary = summarize(path) if (path / store.CONFIG).exists() else None
    if summary and summary.bad_metric_lines:
        st.warning(f"{summary.bad_metric_lines} unreadable line(s) in metrics.jsonl were skipped "
                   "(a torn last line from a killed process); resume drops them.", icon=":material/warning:")
    if not summary or not summary.metrics:
        st.caption("No metrics yet: the first ones come after a few steps.")
        return
    chart, side = st.columns([3, 1])
    draw(live_figure(summary.metrics), key=f"live-{path}", where=chart)
    image, err = read_image(summary.sample)
    if image:
        side.image(image, caption=f"samples after {summary.sample.stem.replace('_', ' ')}", width="stretch")
    else:
        side.caption(err or "The first sample grid comes after epoch 1.")
    rows = metrics_rows(summary)
    if rows:
        table(rows, {k: ".4g" for k in rows[0] if k != "metric"}, where=side)
        side.caption(units_note(summary))


def remember_watch() -> None:
    """Put the watched run in the URL, so a refresh comes back to it."""
    st.query_params["watch"] = Path(st.session_state[ui.WATCH]).name


def watch_from_url(infos: list[jobs.RunInfo], roots: list) -> None:
    """Watch the run the URL's ``?watch=NAME`` names (first visit, refresh, or the watched
    run gone). A NAME that is not a run name (jobs.NAME_RE: no path, no control character,
    at most 100 characters) or names no listed run is kept with what is wrong and the run
    watched instead (URL_PROBLEM), which the URL then names."""
    named = st.query_params.get("watch")
    wrong = None if named is None or named in {i.name for i in infos} else (
        f"names no run in the run folders ({', '.join(map(str, roots))})" if jobs.NAME_RE.fullmatch(named)
        else "is not a run name (letters, digits, '.', '_' and '-', at most 100 characters, "
             "not starting with '.' or '-')")
    watched = jobs.default_watch(infos, None if wrong else named, st.session_state.get("run"))
    st.session_state[ui.WATCH] = watched
    if wrong:
        st.session_state[URL_PROBLEM] = (named, wrong, watched)
        st.query_params["watch"] = Path(watched).name


def runs_section(roots: list, was_active: bool) -> None:
    """The watched run at the top, every run in a table under it."""
    infos = [jobs.run_info(p) for p in jobs.job_dirs(*roots)]
    if not infos:
        st.info("No runs yet in these folders: start one below.", icon=":material/info:")
        return
    active = any(i.state in ACTIVE for i in infos)
    by_path = {str(i.path): i for i in infos}
    ui.take_watch(by_path)
    if st.session_state.get(ui.WATCH) not in by_path:  # first visit, refresh, or a run removed
        watch_from_url(infos, roots)
    named, wrong, instead = st.session_state.get(URL_PROBLEM) or (None, None, None)
    if wrong and st.session_state[ui.WATCH] == instead:  # said while that run is watched
        st.warning(f"URL parameter watch={code(named, 40)} {plain(wrong)}: watching "
                   f"{code(Path(instead).name)} instead.", icon=":material/link_off:")
    pick = st.selectbox("Watch", list(by_path), format_func=lambda p: by_path[p].name, key=ui.WATCH,
                        on_change=remember_watch)
    monitor_ui(by_path[pick])
    with st.expander(f"All runs ({len(infos)})", expanded=False):
        table_ui(infos)
    if was_active and not active:
        st.rerun()  # the last run finished: stop polling


st.title("Train")
roots = st.session_state.get("runs_roots") or runs_roots()
st.caption(f"Training runs in its own process (`python -m genlab train --run-dir RUN --quiet`) on the data "
           f"under `{data_root()}`; this page reads the run folder every {POLL_S:g} s "
           "while something trains. Leave or refresh the page: the runs go on.")
if said := st.session_state.pop(ui.STARTED, None):
    st.success(said, icon=":material/rocket_launch:")
busy = any(jobs.run_info(p).state in ACTIVE for p in jobs.job_dirs(*roots))
st.fragment(run_every=POLL_S if busy else None)(runs_section)(roots, busy)
if not busy:
    st.button("Refresh", icon=":material/refresh:", key="train-refresh")
with st.expander("Start a new run", expanded=not busy, icon=":material/add_circle:"):
    dataset, model = ui.pick_ui()
    if dataset is None:
        st.warning("No dataset under the data root, so nothing can be trained yet (see the sidebar).")
    else:
        ui.form_ui(dataset, model, roots)
