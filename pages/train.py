"""Train: pick a dataset, a model and its options; the run trains in its own process
(genlab.jobs) and this page polls its run directory, so it stays usable, several runs
go at once, and a browser refresh loses nothing."""
from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from genlab import jobs, runs
from genlab.data import DATASETS, data_root
from genlab.models import MODELS
from genlab.plots import (STATE_ICON, datasets_status, live_figure, metrics_rows,
                          read_image, run_state, runs_roots, units_note)
from genlab.train import TrainConfig

POLL_S = 2.0
ACTIVE = ("starting", "running")
FIRST_TRAIN = ("epochs", "batch_size", "lr", "limit")  # the rest go under "more options"
WATCH = "train-watch"  # the run shown below the table (a selectbox key)
NUMBER = st.column_config.NumberColumn(format="%.4g")


# -- the launch form ----------------------------------------------------------------
def _step(spec: jobs.FieldSpec) -> float:
    d = abs(float(spec.default))
    return 10.0 ** math.floor(math.log10(d)) / 10 if d else (0.01 if (spec.hi or 2) <= 1 else 0.5)


def widget(spec: jobs.FieldSpec, key: str, choices: tuple | None = None):
    """One bounded widget for a config field: what it cannot express (a strict lower
    bound, a list of widths) check_train explains in one line before anything starts."""
    kw = dict(help=spec.help, key=key)
    if spec.kind == "choice":
        opts = choices or spec.choices
        return st.selectbox(spec.name, opts, index=opts.index(spec.default) if spec.default in opts else 0, **kw)
    if spec.kind == "bool":
        return st.checkbox(spec.name, value=spec.default, **kw)
    if spec.kind in ("int", "float"):
        cast = int if spec.kind == "int" else float
        lo = None if spec.lo is None else cast(spec.lo)
        hi = None if spec.hi is None else cast(spec.hi)
        return st.number_input(spec.name, min_value=lo, max_value=hi, value=cast(spec.default),
                               step=1 if cast is int else _step(spec),
                               format=None if cast is int else "%g", **kw)
    return st.text_input(spec.name, value=jobs.format_value(spec.default), **kw)


def grid(specs: list[jobs.FieldSpec], prefix: str, ncols: int = 4, choices: dict | None = None) -> dict:
    cols, values = st.columns(ncols), {}
    for i, s in enumerate(specs):
        with cols[i % ncols]:
            values[s.name] = widget(s, f"{prefix}-{s.name}", (choices or {}).get(s.name))
    return values


def pick_ui() -> tuple[str | None, str]:
    present = [r["dataset"] for r in datasets_status() if r["present"]]
    missing = [r for r in datasets_status() if not r["present"]]
    c1, c2 = st.columns(2)
    dataset = c1.selectbox("Dataset", present, key="train-dataset", format_func=lambda d: (
        f"{d} ({'x'.join(map(str, DATASETS[d].shape))})"), placeholder="no dataset found")
    model = c2.selectbox("Model", list(MODELS), key="train-model")
    if missing:
        c1.caption("Not found under the data root: " + "; ".join(
            f"{r['dataset']} (needs {r['where']})" for r in missing) + ". Online, train it once "
            "from a terminal and torchvision downloads it; offline, copy the files there.")
    doc = (MODELS[model][0].__doc__ or "").strip().split("\n\n")[0]
    c2.caption(" ".join(doc.split()))
    return dataset, model


def form_ui(dataset: str, model: str, roots: list) -> None:
    cfg_cls = MODELS[model][1]
    with st.form("train-form", border=True):
        st.markdown(f"**{model} options** (hover **?** for what each does and its range)")
        model_values = grid(jobs.field_specs(cfg_cls), f"m-{model}")
        st.markdown("**Training**")
        specs = jobs.field_specs(TrainConfig, skip=("dataset", "data_root"))
        train_values = grid([s for s in specs if s.name in FIRST_TRAIN], "t")
        with st.expander("More training options"):
            train_values |= grid([s for s in specs if s.name not in FIRST_TRAIN], "t",
                                 choices={"device": jobs.available_devices()})
        c1, c2 = st.columns(2)
        name = c1.text_input("Run name", key="train-name", placeholder="automatic: model-dataset-time",
                             help="letters, digits, '.', '_' and '-'; a name already taken gets -1, -2, ...")
        where = c2.selectbox("Save under", [str(r) for r in roots], key="train-root")
        go = st.form_submit_button("Start training", icon=":material/play_arrow:", type="primary")
    if go:
        launch(dataset, model, model_values, train_values, name.strip(), where)


def launch(dataset: str, model: str, model_values: dict, train_values: dict, name: str, where: str) -> None:
    try:
        model_cfg, train_cfg = jobs.check_train(model, dataset, model_values, train_values)
        run_dir = jobs.start_train(where, name or runs.default_run_name(model, dataset), model,
                                   model_cfg, train_cfg)
    except (ValueError, jobs.JobError, runs.RunError, OSError) as e:
        st.error(f"Not started: {str(e).splitlines()[0]}", icon=":material/error:")
        return
    st.session_state[WATCH] = str(run_dir)
    st.query_params["watch"] = run_dir.name
    st.success(f"Started `{run_dir}`; it appears below as soon as the process is up.",
               icon=":material/rocket_launch:")


# -- runs and the live view -----------------------------------------------------------
def describe(path) -> dict:
    """State of a run directory from its files (status.json, job.json), cheap enough to
    poll: a job that died before writing config.json shows its log's last line."""
    cfg = runs.read_json(path / runs.CONFIG) or {}
    status = runs.read_json(path / runs.STATUS) or {}
    job = jobs.read_job(path)
    s = {"path": path, "error": None, "status": status, "metrics": [None] if status else []}
    state, msg = run_state(s) if status else ("unknown", "")
    if job and job["alive"] and state not in ACTIVE:
        state, msg = "starting", f"{job['kind']} process {job['pid']} is starting"
    elif job and not job["alive"] and not status:
        state, msg = "failed", jobs.log_tail(path, lines=1) or "the process exited before training"
    return {"path": path, "name": path.name, "model": cfg.get("model"),
            "dataset": (cfg.get("train") or {}).get("dataset"), "state": state, "message": msg,
            "status": status, "job": job}


def table_ui(infos: list[dict]) -> None:
    rows = [{"run": i["name"], "model": i["model"], "dataset": i["dataset"], "state": i["state"],
             "progress": float(i["status"].get("progress") or (1.0 if i["state"] == "done" else 0.0)),
             "epoch": f"{i['status'].get('epoch', 0)}/{i['status'].get('total_epochs', '?')}",
             "note": i["message"]} for i in infos]
    st.dataframe(rows, hide_index=True, column_config={
        "progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent")})


def controls_ui(info: dict) -> None:
    path, state = info["path"], info["state"]
    if state in ACTIVE:
        if st.button("Stop", icon=":material/stop_circle:", key=f"stop-{path}",
                     help="SIGTERM: the trainer finishes its step, saves a checkpoint and stops"):
            st.toast("Stopping..." if jobs.stop(path) else "No process to stop.")
        return
    if not (path / runs.CHECKPOINT).exists():
        return
    total = int(info["status"].get("total_epochs") or 1)
    done = int(info["status"].get("epoch") or 0)
    c1, c2 = st.columns([1, 1], vertical_alignment="bottom")
    epochs = c1.number_input("Train until epoch", min_value=max(done + 1, 1), max_value=100000,
                             value=max(total, done + 1), key=f"until-{path}")
    if c2.button("Resume", icon=":material/play_circle:", key=f"resume-{path}"):
        try:
            jobs.start_resume(path, epochs=int(epochs))
        except (jobs.JobError, OSError) as e:
            st.error(str(e))
            return
        st.rerun()


def monitor_ui(info: dict) -> None:
    path, state, status = info["path"], info["state"], info["status"]
    st.subheader(f"{STATE_ICON.get(state, '')} {info['name']}", anchor=False)
    st.caption(f"{info['model'] or '?'} on {info['dataset'] or '?'} · {state} · `{path}`")
    if state in ACTIVE:
        st.progress(min(float(status.get("progress") or 0.0), 1.0), text=info["message"] or state)
    elif state in ("failed", "interrupted", "broken"):
        st.error(f"**{state}**: {info['message'] or 'no message recorded'}", icon=":material/error:")
        with st.expander("Log tail", expanded=state == "failed"):
            st.code(jobs.log_tail(path, lines=20) or "(no log: started outside the app)", language=None)
    elif state == "stopped":
        st.warning(info["message"] or "stopped", icon=":material/pause_circle:")
    controls_ui(info)
    summary = runs.summarize(path) if (path / runs.CONFIG).exists() else None
    if not summary or not summary["metrics"]:
        st.caption("No metrics yet: the first ones come after a few steps.")
        return
    chart, side = st.columns([3, 1])
    chart.plotly_chart(live_figure(summary["metrics"]), key=f"live-{path}")
    image, err = read_image(summary.get("sample"))
    if image:
        side.image(image, caption=f"samples after {summary['sample'].stem.replace('_', ' ')}", width="stretch")
    else:
        side.caption(err or "The first sample grid comes after epoch 1.")
    rows = metrics_rows(summary)
    if rows:
        side.dataframe(rows, hide_index=True, column_config={k: NUMBER for k in rows[0] if k != "metric"})
        side.caption(units_note(summary))


def default_watch(infos: list[dict]) -> str:
    """The run named in the URL (?watch=), else the one opened from Home, else the newest
    one training, else the newest with a readable config."""
    paths = {str(i["path"]): i for i in infos}
    named = [p for p, i in paths.items() if i["name"] == st.query_params.get("watch")]
    here = st.session_state.get("run")
    return next(iter(named), None) or (here if here in paths else None) or next(
        (p for p, i in paths.items() if i["state"] in ACTIVE), None) or next(
        (p for p, i in paths.items() if i["model"]), str(infos[0]["path"]))


def remember_watch() -> None:
    """Put the watched run in the URL, so a refresh comes back to it."""
    st.query_params["watch"] = Path(st.session_state[WATCH]).name


def runs_section(roots: list, was_active: bool) -> None:
    infos = [describe(p) for p in jobs.job_dirs(*roots)]
    if not infos:
        st.info("No runs yet in these folders: start one above.", icon=":material/info:")
        return
    active = any(i["state"] in ACTIVE for i in infos)
    table_ui(infos)
    by_path = {str(i["path"]): i for i in infos}
    if st.session_state.get(WATCH) not in by_path:  # first visit, refresh, or a run removed
        st.session_state[WATCH] = default_watch(infos)
    pick = st.selectbox("Watch", list(by_path), format_func=lambda p: by_path[p]["name"], key=WATCH,
                        on_change=remember_watch)
    monitor_ui(by_path[pick])
    if was_active and not active:
        st.rerun()  # the last run finished: stop polling


st.title("Train")
roots = st.session_state.get("runs_roots") or runs_roots()
st.caption(f"Training runs in its own process (`python -m genlab train ... --quiet`) on the data "
           f"under `{data_root().resolve()}`; this page reads the run folder every {POLL_S:g} s "
           "while something trains. Leave or refresh the page: the runs go on.")
dataset, model = pick_ui()
if dataset is None:
    st.warning("No dataset under the data root, so nothing can be trained yet (see the sidebar).")
else:
    form_ui(dataset, model, roots)
st.header("Runs", anchor=False)
busy = any(describe(p)["state"] in ACTIVE for p in jobs.job_dirs(*roots))
st.fragment(run_every=POLL_S if busy else None)(runs_section)(roots, busy)
if not busy:
    st.button("Refresh", icon=":material/refresh:", key="train-refresh")
