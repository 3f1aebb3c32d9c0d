"""The 2-D lab page's Streamlit helpers (pages/lab.py draws with them): the URL state read
once a session and written back, the controls, the session's experiments and the live
fragment that advances them and redraws.

Where training runs: in this session's script thread, inside the fragment. Each tick of
``st.fragment(run_every=TICK_S)`` steps every experiment for its share of the tick's
stepping time (what the last drawing left of the tick, at most STEP_BUDGET_S:
genlab.lab.train.step_budget), then redraws; the page stays responsive because a tick ends,
and a click waits at most one tick.

What a redraw costs the browser: Streamlit 1.67 names a chart by a hash of its figure, so a
changed figure is a new chart, which plotly draws from nothing (it never updates one in
place: a fixed key does not change that); an unchanged figure keeps its chart and costs
nothing. So the figures of an unchanged model are the same (genlab.lab.figures draws from
fixed random numbers), the target's sits outside the fragment, and each figure is cheap to
draw anew (points as one picture, no WebGL context to make; fixed margins, no second pass).

Two browser tabs are two sessions, each with its own experiments and its own fragment
thread; they share the CPU, so each steps fewer times a second, while each keeps redrawing
at the tick's rate (the budget is time, not steps)."""
from __future__ import annotations

import hashlib
import time
from dataclasses import replace

import numpy as np
import streamlit as st

from genlab.lab import figures
from genlab.lab.families import FAMILIES
from genlab.lab.quadrature import entropy
from genlab.lab.state import BATCHES, LRS, MAX_FAMILIES, LabState, from_query, to_query
from genlab.lab.targets import ENERGIES, LABELS, MAX_UPLOAD_MB, TARGETS, clean_text, get_target
from genlab.lab.train import Experiment, step_budget
from pages.ui.widgets import plain

TICK_S, SLOW_TICK_S = 0.2, 1.0  # redraw interval while playing; in slow motion (one step a tick).
# The browser asks every TICK_S, so it never sees more than 1 / TICK_S redraws a second:
# 0.25 s made the goal of 4 a second the most there could be, missed whenever a tick ran late
STEP_BUDGET_S, MIN_STEP_S = 0.12, 0.04  # stepping time a tick, shared by the experiments:
# at most STEP_BUDGET_S, less when drawing needs the rest of the tick (step_budget), at least MIN_STEP_S
STATE, EXPS, PLAY, DRAW = "lab_state", "lab_experiments", "lab_play", "lab_draw_s"


def url_state() -> LabState:
    """The state the URL gave this session (read on its first run), each bad parameter
    shown as one warning line."""
    if STATE not in st.session_state:
        state, problems = from_query(st.query_params.to_dict())
        st.session_state[STATE] = state
        st.session_state["lab_problems"] = problems
        st.session_state[PLAY] = state.play
    for line in st.session_state.get("lab_problems", []):
        st.warning(plain(line), icon=":material/link_off:")  # a link's text is not markdown
    return st.session_state[STATE]


def _seed_widgets(state: LabState) -> None:
    defaults = {"lab-target": state.target, "lab-text": state.text, "lab-families": list(state.families),
                "lab-lr": min(LRS, key=lambda v: abs(v - state.lr)), "lab-batch": min(BATCHES, key=lambda v: abs(v - state.batch)),
                "lab-couplings": state.couplings, "lab-k": state.k, "lab-hidden": state.hidden,
                "lab-latent": state.latent, "lab-components": state.components, "lab-anneal": state.anneal,
                "lab-seed": state.seed, "lab-slow": state.slow}
    for k, v in defaults.items():
        st.session_state.setdefault(k, v)


def controls(state: LabState) -> tuple[LabState, bytes | None]:
    """The target, the families and their knobs, lr and batch; the new state and an
    uploaded picture's bytes (the image target)."""
    _seed_widgets(state)
    ss = st.session_state
    c1, c2, c3, c4 = st.columns([2, 3, 2, 2])
    target = c1.selectbox("Target", TARGETS, key="lab-target", format_func=LABELS.get)
    image = None
    text = state.text
    if target == "text":
        typed = c1.text_input("Text (1-12 characters)", key="lab-text", max_chars=12)
        try:
            text = clean_text(typed)
        except ValueError as e:  # emoji, a pasted tab, only spaces: the last good word stays
            c1.warning(plain(f"Text refused: {e}. Still showing {state.text!r}."), icon=":material/text_fields:")
    elif target == "image":
        up = c1.file_uploader(f"A small picture (dark = mass; PNG or JPEG, at most {MAX_UPLOAD_MB} MB)",
                              type=["png", "jpg", "jpeg"], key="lab-upload", max_upload_size=MAX_UPLOAD_MB)
        image = up.getvalue() if up is not None else None
    c2.multiselect("Families, side by side", list(FAMILIES), key="lab-families",
                   format_func=lambda n: FAMILIES[n].label, max_selections=MAX_FAMILIES)
    c3.select_slider("Learning rate", LRS, key="lab-lr", format_func=lambda v: f"{v:g}")
    c4.select_slider("Batch size", BATCHES, key="lab-batch")
    with st.expander("Model sizes and seed (a change starts afresh)"):
        k1, k2, k3, k4, k5, k6, k7 = st.columns(7)
        k1.number_input("Couplings", 1, 16, key="lab-couplings", help="RealNVP, NICE, Glow-style")
        k2.selectbox("Planar/radial K", (1, 2, 4, 8, 16, 32, 64), key="lab-k")
        k3.number_input("MLP width", 8, 256, key="lab-hidden", step=8)
        k4.selectbox("VAE latent", (1, 2), key="lab-latent")
        k5.number_input("Mixture components", 1, 32, key="lab-components")
        k6.number_input("Anneal steps", 0, 100_000, key="lab-anneal", step=500,
                        help="reverse KL: beta rises from 0.01 to 1 over these steps (0: off)")
        k7.number_input("Seed", 0, 2 ** 31 - 1, key="lab-seed")
    fams = tuple(ss["lab-families"]) or state.families
    new = replace(state, target=target, text=text, families=fams,
                  lr=float(ss["lab-lr"]), batch=int(ss["lab-batch"]), couplings=int(ss["lab-couplings"]),
                  k=int(ss["lab-k"]), hidden=int(ss["lab-hidden"]), latent=int(ss["lab-latent"]),
                  components=int(ss["lab-components"]), anneal=int(ss["lab-anneal"]),
                  seed=int(ss["lab-seed"]), slow=bool(ss.get("lab-slow", False)), play=bool(ss[PLAY]))
    return new, image


def save(state: LabState) -> None:
    """The state into the session and the URL (the image target travels as its name only)."""
    st.session_state[STATE] = state
    query = to_query(state if state.target != "image" else replace(state, target=LabState.target))
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)


def experiments(state: LabState, image: bytes | None) -> list[Experiment] | None:
    """This session's experiments for the state, started afresh when what defines them
    changed (or on reset); None (with a line saying why) when the target cannot be built."""
    key = (state.experiment_key(), hashlib.sha1(image).hexdigest() if image else None)
    held = st.session_state.get(EXPS)
    if held is None or held[0] != key:
        try:
            target = get_target(state.target, text=state.text, image=image)
        except ValueError as e:  # no picture yet (a hint), or one refused (what was wrong)
            if image is None:
                st.info(str(e), icon=":material/image:")
            else:
                st.error(plain(f"Picture refused: {e}."), icon=":material/broken_image:")
            return None
        exps = [Experiment.start(target, name, state.options(), lr=state.lr, seed=state.seed)
                for name in state.families]
        st.session_state[EXPS] = held = (key, exps, target.sample(2000))
    return held[1]


def reset() -> None:
    st.session_state.pop(EXPS, None)


def step_once() -> None:
    state: LabState = st.session_state[STATE]
    held = st.session_state.get(EXPS)
    st.session_state[PLAY] = False
    if held:
        for ex in held[1]:
            ex.advance(1, batch=state.batch, lr=state.lr)


def buttons() -> None:
    b1, b2, b3, b4, _ = st.columns([1, 1, 1, 2, 4])
    playing = st.session_state[PLAY]
    b1.button("Pause" if playing else "Play", key="lab-play", type="primary",
              icon=":material/pause:" if playing else ":material/play_arrow:",
              on_click=lambda: st.session_state.update({PLAY: not playing}))
    b2.button("Step", key="lab-step", icon=":material/skip_next:", on_click=step_once)
    b3.button("Reset", key="lab-reset", icon=":material/restart_alt:", on_click=reset)
    b4.toggle("Slow motion (one step a second)", key="lab-slow")


def target_row(exp: Experiment) -> None:
    t = exp.target
    left, right = st.columns([1, 2])
    with left:
        st.plotly_chart(figures.density_figure(exp.target_density(), exp.grid, f"Target: {t.label}",
                                               st.session_state[EXPS][2][:figures.SAMPLES]),
                        key="lab-target-fig", config={"displayModeBar": False})
    with right:
        h = entropy(exp.target_density(), exp.grid)
        energy = " Fitted by the reverse-KL flows through its density." if t.name in ENERGIES else ""
        st.markdown(f"**{t.label}** on [-4, 4]², a {exp.grid.n}×{exp.grid.n} grid. Entropy "
                    f"H(p) = **{h:.3f} nats** (quadrature).{energy}")
        st.caption("KL(p‖q) = E_p[−log q] − H(p) is exact on the grid for every model with a "
                   "density; the VAE's is an upper bound from its importance-weighted estimate of "
                   "log q. The GAN has no density: its panel shows a histogram of its samples.")


def _metrics_line(exp: Experiment, figs) -> str:
    fam, last = exp.family, (exp.history[-1] if exp.history else {})
    parts = [f"step **{exp.steps}**"]
    if figs is not None:
        approx = "≤ " if fam.density == "estimate" else ""
        parts += [f"KL(p‖q) {approx}**{figs.kl:.3f}**", f"NLL {approx}{figs.nll:.3f}"]
    parts += [f"{k} {v:.3f}" for k, v in last.items() if k not in ("step", "loss")]
    return " · ".join(parts)


def experiment_column(exp: Experiment, i: int, data) -> None:
    fam = exp.family
    st.markdown(f"#### {fam.label}")
    st.caption(f"{fam.objective}" + ("" if fam.uses_lr else " · the learning rate does not apply"))
    log_q = exp.log_q()
    figs = exp.figures(log_q)
    st.markdown(_metrics_line(exp, figs))
    st.plotly_chart(figures.model_density_figure(exp, log_q), key=f"lab-model-{i}",
                    config={"displayModeBar": False})
    pick_key = f"lab-view-{i}"
    picked = _picked(pick_key)
    view = figures.view_figure(exp, data, picked)
    if view is not None:
        if fam.view == "latent":
            st.plotly_chart(view, key=pick_key, on_select="rerun", selection_mode="points",
                            config={"displayModeBar": False})
            st.caption("Click data points (left) to see their q(z|x) (right).")
        else:
            st.plotly_chart(view, key=pick_key, config={"displayModeBar": False})
    if exp.history:
        st.plotly_chart(figures.curves_figure(exp.history, fam.headline, exp.exact), key=f"lab-curve-{i}",
                        config={"displayModeBar": False})


def _picked(key: str) -> np.ndarray | None:
    event = st.session_state.get(key)
    pts = getattr(getattr(event, "selection", None), "points", None) if event is not None else None
    if not pts:
        return None
    return np.array([[p["x"], p["y"]] for p in pts if p.get("curve_number", 0) == 0][:5], dtype=np.float32) if pts else None


def live() -> None:
    """One tick: advance every experiment (playing: its share of the budget; slow motion:
    one step), then draw the columns."""
    state: LabState = st.session_state[STATE]
    held = st.session_state.get(EXPS)
    if not held:
        return
    _, exps, data = held
    if st.session_state[PLAY]:
        budget = step_budget(TICK_S, st.session_state.get(DRAW, 0.0), most=STEP_BUDGET_S, least=MIN_STEP_S)
        for ex in exps:
            if state.slow:
                ex.advance(1, batch=state.batch, lr=state.lr)
            else:
                ex.run_for(budget / len(exps), batch=state.batch, lr=state.lr)
    t0 = time.perf_counter()
    for i, (col, ex) in enumerate(zip(st.columns(len(exps)), exps)):
        with col:
            experiment_column(ex, i, data)
    st.session_state[DRAW] = time.perf_counter() - t0


def run_live(state: LabState) -> None:
    every = (SLOW_TICK_S if state.slow else TICK_S) if st.session_state[PLAY] else None
    st.fragment(run_every=every)(live)()
