"""The Train page's launch form (not a page itself): dataset and model pickers, one
bounded widget per config field (genlab.jobs.field_specs), and the start button, which
checks every value as the CLI does, writes the run's config.json and starts
``python -m genlab train --run-dir RUN`` on it in its own process."""
from __future__ import annotations

import streamlit as st

from genlab import jobs, runs
from genlab.config import TrainConfig, format_value
from genlab.data import DATASETS, missing_message
from genlab.device import available_devices
from genlab.models import MODELS
from genlab.tables import datasets_status

FIRST_TRAIN = ("epochs", "batch_size", "lr", "limit")  # the rest go under "more options"
WATCH = "train-watch"  # the run shown below the runs table (a selectbox key)


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
                               step=1 if cast is int else jobs.field_step(spec),
                               format=None if cast is int else "%g", **kw)
    return st.text_input(spec.name, value=format_value(spec.default), **kw)


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
    for r in missing:
        c1.caption(missing_message(r["dataset"]) + ".")
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
                                 choices={"device": available_devices()})
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
