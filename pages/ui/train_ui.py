"""The Train page's launch form (not a page itself): dataset and model pickers, one
widget per config field (genlab.runs.jobs.field_specs, its range in the help), the time an
epoch is expected to take, and the start button, which checks every value as the CLI
does (each bad value one line saying what is allowed, all at once), writes the run's
config.json and starts ``python -m genlab train --run-dir RUN`` in its own process.

The training fields start at the chosen model family's defaults (genlab.models.family_defaults,
the papers' settings, as the CLI fills the options it is not given), reset to the new
family's when the model changes, with the sources under the form."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from genlab.config import TrainConfig, format_value
from genlab.data import DATASETS, missing_message
from genlab.device import available_devices, pick_device
from genlab.figures.tables import datasets_status
from genlab.models import (FAMILIES, MODELS, conditional_variants, family_defaults, family_sources,
                           unconditional_family)
from genlab.runs import jobs, store
from genlab.runs.status import budget_phrase, budget_words, fmt_seconds
from genlab.training import throughput

FIRST_TRAIN = ("epochs", "batch_size", "lr", "limit")  # the rest go under "more options"
WATCH = "train-watch"  # the run shown at the top of the page (a selectbox key)
WATCH_NEXT = "train-watch-next"  # the run to watch after a Start or Resume (take_watch sets WATCH)
STARTED = "train-started"  # what the last Start or Resume did, said once after the rerun
DEFAULTS_OF = "train-defaults-of"  # the model whose family defaults the training fields hold
FAMILY_FIELDS = sorted({k for fam in FAMILIES.values() for k in fam.defaults})


def widget(spec: jobs.FieldSpec, key: str, choices: tuple | None = None):
    """One bounded widget for a config field: what it cannot express (a strict lower
    bound, a list of widths) check_train explains in one line before anything starts."""
    kw = dict(help=spec.help, key=key)
    preset = key in st.session_state  # set by family_defaults_ui: no second default here
    if spec.kind == "choice":
        opts = choices or spec.choices
        if not preset:
            kw["index"] = opts.index(spec.default) if spec.default in opts else 0
        return st.selectbox(spec.name, opts, **kw)
    if spec.kind == "bool":
        return st.checkbox(spec.name, **kw) if preset else st.checkbox(spec.name, value=spec.default, **kw)
    if spec.kind in ("int", "float"):
        # no min_value/max_value: the browser would refuse an out-of-range number with only
        # a red mark in the field and Start would do nothing; check_train says what is wrong
        # and what is allowed instead, as the CLI does (the help states the range too)
        cast = int if spec.kind == "int" else float
        if not preset:
            kw["value"] = cast(spec.default)
        return st.number_input(spec.name, step=1 if cast is int else jobs.field_step(spec),
                               format=None if cast is int else "%g", **kw)
    if not preset:
        kw["value"] = format_value(spec.default)
    return st.text_input(spec.name, **kw)


def widget_value(spec: jobs.FieldSpec):
    """A field's default as its widget holds it."""
    if spec.kind == "int":
        return int(spec.default)
    if spec.kind == "float":
        return float(spec.default)
    return format_value(spec.default) if spec.kind in ("ints", "text") else spec.default


def train_specs(model: str) -> list[jobs.FieldSpec]:
    """The training fields with ``model``'s family defaults (and that said in their help)."""
    fam = family_defaults(model)
    out = []
    for s in jobs.field_specs(TrainConfig, skip=("dataset", "data_root")):
        if s.name in fam:
            s = dataclasses.replace(s, default=fam[s.name], help=(
                f"{s.help} {model} starts at {format_value(fam[s.name])}, its family's "
                "default (sources under the form)."))
        out.append(s)
    return out


def family_defaults_ui(model: str, specs: list[jobs.FieldSpec]) -> None:
    """On the first run and when the model changes: every field a family sets back to this
    model's value (what ``python -m genlab train --model MODEL`` would use)."""
    if st.session_state.get(DEFAULTS_OF) == model:
        return
    for s in specs:
        if s.name in FAMILY_FIELDS:
            st.session_state[f"t-{s.name}"] = widget_value(s)
    st.session_state[DEFAULTS_OF] = model


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
    note = conditional_note(model, dataset)
    if note:
        c2.caption(note)
    return dataset, model


def conditional_note(model: str, dataset: str | None) -> str | None:
    """What the Model picker says of a family's class-conditional variants (issue 28),
    None for a family without any."""
    base = unconditional_family(model)
    if base is not None:
        k = len(DATASETS[dataset].classes) if dataset in DATASETS else None
        return (f"**Class-conditional** variant of {base}: trained on the images with their "
                f"labels, on {base}'s options and training recipe; its number of classes comes "
                f"from the dataset{f' ({k})' if k else ''}.")
    variants = conditional_variants(model)
    return f"Its class-conditional variant: {', '.join(variants)}." if variants else None


def eta_text(dataset: str, model: str, model_values: dict, train_values: dict, roots: list) -> str | None:
    """What an epoch of these options should take here: from the logged steps of runs of
    this very configuration on this device (the one going included), else a short timed
    probe of it (genlab.training.throughput.expected_throughput). None while the probe is timing."""
    try:
        model_cfg, train_cfg = jobs.check_train(model, dataset, model_values, train_values, build=False)
    except ValueError:
        return "The time an epoch takes is estimated once the values below are valid."
    device = pick_device(train_cfg.device).type
    try:
        got = throughput.expected_throughput(model, model_cfg, train_cfg, roots)
    except jobs.JobError as e:
        return f"Could not time {model} on {device} here ({e}): the first epoch's progress will tell."
    if got is None:
        return None
    rate, source = got
    n, epochs = jobs.train_size(dataset, train_cfg.limit or None), train_cfg.epochs
    return (f"**Expected: about {fmt_seconds(n / rate)} per epoch** of {n:,} images, "
            f"{fmt_seconds(epochs * n / rate)} for {epochs} epoch{'s' * (epochs != 1)} "
            f"({rate:,.0f} images/s, {source}).")


def eta_ui(*args) -> None:
    """The expected time per epoch (:func:`eta_text`); while it is being timed, a fragment
    that says so and redraws the page once the figure is there."""
    text = eta_text(*args)
    if text is None:
        st.fragment(run_every=1.0)(_eta_wait)(*args)
    else:
        st.caption(text)


def _eta_wait(*args) -> None:
    if eta_text(*args) is not None:
        st.rerun()
    st.caption("Timing a few training steps of these options here, in a process of its own...")


def speed_ui(info: jobs.RunInfo) -> None:
    """A run at work: the images/s its own logged steps show, the estimate corrected."""
    got, train = throughput.run_throughput(info.path), info.train
    if not got or train.get("dataset") not in DATASETS:
        return
    rate, k = got
    n = jobs.train_size(train["dataset"], train.get("limit") or None)
    st.caption(f"Measured: {rate:,.0f} images/s over {k} logged step record{'s' * (k != 1)} so far, "
               f"about {fmt_seconds(n / rate)} per epoch of {n:,} images.")


def form_ui(dataset: str, model: str, roots: list) -> None:
    cfg_cls = MODELS[model][1]
    eta = st.container()  # filled once the form holds the values it is for
    with st.form("train-form", border=True):
        st.markdown(f"**{model} options** (hover **?** for what each does and its range)")
        model_values = grid(jobs.field_specs(cfg_cls), f"m-{model}")
        st.markdown("**Training**")
        specs = train_specs(model)
        family_defaults_ui(model, specs)
        train_values = grid([s for s in specs if s.name in FIRST_TRAIN], "t")
        with st.expander("More training options"):
            train_values |= grid([s for s in specs if s.name not in FIRST_TRAIN], "t",
                                 choices={"device": available_devices()})
            st.caption(f"**{model}'s training defaults come from:** "
                       + " ".join(family_sources(model)))
        c1, c2 = st.columns(2)
        name = c1.text_input("Run name", key="train-name", placeholder="automatic: model-dataset-time",
                             help="letters, digits, '.', '_' and '-'; a name already taken gets -1, -2, ...")
        where = c2.selectbox("Save under", [str(r) for r in roots], key="train-root")
        gpus = jobs.max_processes()  # one training process per visible GPU, through torchrun
        procs = st.number_input("Processes (GPUs)", value=1, step=1, key="train-procs", help=(
            f"{gpus} GPUs here: train on 1 to {gpus} of them through torchrun "
            "(DistributedDataParallel); the batch size is the global batch, shared by the "
            "processes")) if gpus > 1 else 1
        b1, b2 = st.columns([1, 3])
        go = b1.form_submit_button("Start training", icon=":material/play_arrow:", type="primary")
        b2.form_submit_button("Estimate the time", icon=":material/timer:", help=(
            "take the values above without starting: the expected time per epoch above the form "
            "follows them"))
    with eta:
        eta_ui(dataset, model, model_values, train_values, roots)
    if go:
        launch(dataset, model, model_values, train_values, name.strip(), where, int(procs))


def launch(dataset: str, model: str, model_values: dict, train_values: dict, name: str, where: str,
           processes: int = 1) -> None:
    try:
        model_cfg, train_cfg = jobs.check_train(model, dataset, model_values, train_values)
        run_dir = jobs.start_train(where, name or store.default_run_name(model, dataset), model,
                                   model_cfg, train_cfg, processes=processes)
    except (ValueError, jobs.JobError, store.RunError, OSError) as e:
        st.error(not_started(str(e)), icon=":material/error:")
        return
    watch(run_dir, f"Started `{run_dir}`: it is shown at the top of the page.")


def not_started(error: str) -> str:
    """What Start says when the checks refuse: their one line, or one line per bad value."""
    lines = [line for line in error.strip().splitlines() if line.strip()] or ["unknown error"]
    if len(lines) == 1:
        return f"Not started: {lines[0]}"
    return f"Not started: {len(lines)} values are wrong:\n" + "\n".join(f"- {line}" for line in lines)


def watch(run_dir, message: str) -> None:
    """Show ``run_dir`` at the top of the page (and in the URL) and say ``message`` once,
    from a rerun on. The Watch selectbox is drawn by the time Start or Resume is handled,
    and a drawn widget's key cannot be set in the same run
    (StreamlitWidgetAlreadyInstantiatedError): the rerun sets it before drawing it
    (:func:`take_watch`)."""
    st.session_state[WATCH_NEXT] = str(run_dir)
    st.query_params["watch"] = Path(run_dir).name
    st.session_state[STARTED] = message
    st.rerun()


def take_watch(paths) -> None:
    """Before the Watch selectbox is drawn: watch the run the last Start or Resume asked
    for (:func:`watch`), once it is listed."""
    run = st.session_state.pop(WATCH_NEXT, None)
    if run in paths:
        st.session_state[WATCH] = run


EPOCHS_MAX = next(s.hi for s in jobs.field_specs(TrainConfig) if s.name == "epochs")
MORE_EPOCHS = 5  # what "more epochs" offers first when a budget-limited run is continued


def resume_ui(info: jobs.RunInfo, cols) -> dict:
    """What Resume (or Continue in a copy) asks for, as jobs.start_resume's keywords, from
    widgets in the two columns ``cols``. A run its time budget ends (the shipped ones: their
    100000 epochs are only a cap) continues for another budget or a few more epochs; any
    other run trains until the epoch asked."""
    path, train = info.path, info.train
    total = int(info.status.total_epochs or train.get("epochs") or 1)
    done = int(info.status.epoch or 0)
    if not budget_words(train):
        return {"epochs": int(cols[0].number_input(
            "Train until epoch", min_value=max(done + 1, 1), max_value=EPOCHS_MAX,
            value=min(max(total, done + 1), EPOCHS_MAX), key=f"until-{path}"))}
    unit = "CPU minutes" if train.get("budget_clock") == "cpu" else "minutes"
    how = cols[0].radio("Continue for", ("a time budget", "more epochs"), key=f"how-{path}",
                        horizontal=True, help=f"{path.name} trained {budget_phrase(done, train)}: "
                        "train it for another budget, or for a number of epochs with no time limit")
    if how == "more epochs":
        more = cols[1].number_input("More epochs", min_value=1, max_value=max(EPOCHS_MAX - done, 1),
                                    value=MORE_EPOCHS, key=f"more-{path}")
        return {"epochs": done + int(more), "max_minutes": 0.0}
    minutes = cols[1].number_input(f"Budget ({unit})", min_value=0.1, value=float(train["max_minutes"]),
                                   step=1.0, format="%g", key=f"budget-{path}")
    return {"epochs": None if total > done else EPOCHS_MAX, "max_minutes": float(minutes)}


def progress(info: jobs.RunInfo) -> tuple[float, str]:
    """(fraction done, what the bar says) of a run at work. A budget-limited run reads as
    one: its epoch in the budget and the time left, the bar the time used of elapsed + left
    (its epochs, only a cap, would read 0 %)."""
    status, train = info.status, info.train
    fraction, text = float(status.progress or 0.0), info.message or info.state
    if info.state == "running" and budget_words(train) and status.epoch:
        eta, used = status.eta_s, float(status.updated or 0) - float(status.started or 0)
        text = f"epoch {status.epoch} in {budget_words(train)}" + (
            f", about {fmt_seconds(eta)} left" if eta is not None else "")
        fraction = used / (used + eta) if eta is not None and used + eta > 0 else 0.0
    return min(max(fraction, 0.0), 1.0), text
