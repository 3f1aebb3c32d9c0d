"""Compare: 2 to 4 runs on the same dataset side by side: samples, eval tables that
never mix units, curves on shared axes, reconstructions, and the importance-weighted
bound as k grows. Models and numbers are cached per run and checkpoint mtime."""
from __future__ import annotations

import streamlit as st

from genlab import compare, jobs, runs
from genlab.data import DatasetError, data_root
from genlab.models import model_entry
from genlab.plots import (bound_figure, compare_tables, data_group, overlay_figure, read_image,
                          run_stamp, run_state, runs_roots)

N_RECON = 10
EVAL_K = (1, 10, 100, 1000)
NUMBER = st.column_config.NumberColumn(format="%.2f")


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


def pick_ui(by_ds: dict[str, list[dict]]) -> list[dict]:
    here = st.session_state.get("run")
    first = next((d for d, ss in by_ds.items() if any(str(s["path"]) == here for s in ss)), None)
    names = list(by_ds)
    ds = st.selectbox("Dataset", names, index=names.index(first) if first else 0, key="compare-dataset",
                      format_func=lambda d: f"{d} ({len(by_ds[d])} runs)")
    options = {str(s["path"]): s for s in by_ds[ds]}
    ready = [p for p, s in options.items() if s["ckpt"]] + [p for p, s in options.items() if not s["ckpt"]]
    default = ([here] if here in options else []) + [p for p in ready if p != here]
    picked = st.multiselect("Runs (2 to 4)", list(options), default=default[:2], max_selections=4,
                            key=f"compare-runs-{ds}", format_func=lambda p: (
                                f"{options[p]['name']} · {options[p]['model']} · {options[p]['state']}"))
    return [options[p] for p in picked]


def samples_ui(sel: list[dict]) -> None:
    for col, s in zip(st.columns(len(sel)), sel):
        col.markdown(f"**{s['name']}**  \n{s['model']} · {s['state']}")
        image, err = read_image(s.get("sample"))
        if image:
            col.image(image, caption=s["sample"].stem.replace("_", " "), width="stretch")
        else:
            col.caption(err or "No sample grid yet (written after each epoch).")


def eval_ui(sel: list[dict], missing: list[str]) -> None:
    todo = [s for s in sel if s["name"] in missing]
    job = {s["name"]: jobs.read_job(s["path"]) or {} for s in todo}
    evaluating = {n for n, j in job.items() if j.get("alive") and j.get("kind") == "eval"}
    training = {n for n, j in job.items() if j.get("alive") and j.get("kind") != "eval"} | {
        s["name"] for s in todo if s["state"] in ("running", "starting")}
    no_ckpt = [s["name"] for s in todo if not s["ckpt"] and s["name"] not in training]
    st.warning(f"No eval.json yet for {', '.join(missing)}." + "".join(
        f" {', '.join(names)}: {why}." for names, why in (
            (sorted(training), "still training, evaluate it when it is done"),
            (no_ckpt, "no checkpoint, nothing to evaluate")) if names),
        icon=":material/pending_actions:")
    can = [s for s in todo if s["ckpt"] and s["name"] not in evaluating | training]
    if can:
        c1, c2, c3 = st.columns([1, 1, 1], vertical_alignment="bottom")
        k = c1.selectbox("importance samples k", EVAL_K, index=2, key="eval-k",
                         help="for latent models' log p(x); flows are exact, GANs have none")
        limit = c2.selectbox("test images", (1000, 0), key="eval-limit",
                             format_func=lambda n: f"first {n:,}" if n else "all")
        if c3.button(f"Evaluate {len(can)} run(s)", icon=":material/calculate:", key="eval-go"):
            for s in can:
                try:
                    jobs.start_eval(s["path"], k=k, limit=limit or None)
                except (jobs.JobError, OSError) as e:
                    st.error(f"{s['name']}: {e}")
            st.rerun()
    shown = [s for s in todo if job[s["name"]].get("kind") == "eval"]
    if shown:
        st.fragment(run_every=1.0 if evaluating else None)(eval_progress_ui)(shown, bool(evaluating))


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


def metrics_ui(sel: list[dict]) -> None:
    groups, missing = compare_tables(sel)
    for g in groups:
        st.markdown(f"**{g['title']}**")
        st.dataframe(g["rows"], hide_index=True, column_config={
            k: NUMBER for k in g["rows"][0] if k not in ("run", "model", "data", "split", "epoch", "k",
                                                         "active units")})
    if groups:
        st.caption("From each run's eval.json. Nats on binarised pixels and bits/dim on 8-bit "
                   "pixels measure different things: they sit in separate tables.")
    if missing:
        eval_ui(sel, missing)


def curves_ui(sel: list[dict]) -> None:
    by_group: dict[str, list[dict]] = {}
    for s in sel:
        by_group.setdefault(data_group(s), []).append(s)
    for g, ss in by_group.items():
        st.markdown(f"**{g} data**" if g != "adversarial" else "**GAN losses**")
        st.plotly_chart(overlay_figure([(s["name"], s["metrics"]) for s in ss]), key=f"overlay-{g}")
    st.caption("Per epoch: validation solid, training dotted; x is the epoch so batch sizes do not matter.")


def recon_ui(sel: list[dict], dataset: str) -> None:
    latent = [s for s in sel if s["cls"] and s["cls"].has_latent]
    if not latent:
        st.caption("None of these runs reconstructs (GANs have no encoder).")
        return
    root = str(data_root().resolve())
    try:
        x = test_images(dataset, N_RECON, root).x
    except DatasetError as e:
        st.warning(str(e), icon=":material/folder_off:")
        return
    st.image(compare.image_row_png(x), caption=f"the first {N_RECON} {dataset} test images")
    for s in latent:
        net, err = model(str(s["path"]), s["ckpt"])
        if err:
            st.error(f"{s['name']}: {err}", icon=":material/error:")
            continue
        st.image(recon_png(str(s["path"]), s["ckpt"], dataset, root),
                 caption=f"{s['name']} ({s['model']}): decode(encode(x))")


def bound_ui(sel: list[dict], dataset: str) -> None:
    cands = [s for s in sel if s["cls"] and s["cls"].has_latent and s["cls"].has_likelihood
             and not compare.is_exact(s["cls"]) and s["ckpt"]]
    if not cands:
        st.caption("No run here has an importance-weighted bound (flows are exact, GANs have none).")
        return
    c1, c2 = st.columns(2)
    k = c1.select_slider("importance samples k", compare.K_CHOICES, value=10, key="bound-k",
                         help="log scale; k = 1 is the ELBO")
    n = c2.select_slider("test images", (100, 200, 500), value=200, key="bound-n")
    root = str(data_root().resolve())
    seen = st.session_state.setdefault("bound-points", {})
    by_group: dict[str, dict] = {}
    for s in cands:
        if model(str(s["path"]), s["ckpt"])[1]:
            continue
        key = (str(s["path"]), s["ckpt"], n)
        try:
            with st.spinner(f"L_{k} for {s['name']} on {n} test images..."):
                for kk in sorted({1, k}):
                    seen.setdefault(key, {})[kk] = bound(*key[:2], kk, n, dataset, root)["mean"]
        except DatasetError as e:
            st.warning(str(e), icon=":material/folder_off:")
            return
        by_group.setdefault(data_group(s), {})[s["name"]] = seen[key]
    rows = [{"run": name, "data": g, "L_1 = ELBO": pts[1],
             **({f"L_{k}": pts[k], "gain": pts[k] - pts[1]} if k > 1 else {})}
            for g, group in by_group.items() for name, pts in group.items()]
    st.dataframe(rows, hide_index=True,
                 column_config={c: NUMBER for c in ("L_1 = ELBO", f"L_{k}", "gain")})
    for g, group in by_group.items():
        st.plotly_chart(bound_figure(group), key=f"bound-{g}")
    st.caption(f"Mean over the first {n} test images, nats per image (binarised and 8-bit data apart). "
               "L_k = E log mean_i p(x, z_i)/q(z_i|x) rises from the ELBO (k = 1) toward log p(x) "
               "(Burda et al. 2016); each point is cached per run, k and checkpoint.")


st.title("Compare")
roots = st.session_state.get("runs_roots") or runs_roots()
by_ds = compare.comparable([load(p) for p in runs.find_runs(*roots)])
if not by_ds:
    st.info("No runs to compare yet: train two on the Train page (or `python -m genlab train ...`).",
            icon=":material/info:")
    st.stop()
sel = pick_ui(by_ds)
if len(sel) < 2:
    st.info("Pick at least two runs on the same dataset to compare them.", icon=":material/info:")
    if not sel:
        st.stop()
dataset = sel[0]["dataset"]
st.header("Samples", anchor=False)
samples_ui(sel)
st.header("Test metrics", anchor=False)
metrics_ui(sel)
st.header("Training curves", anchor=False)
curves_ui(sel)
st.header("Reconstructions", anchor=False)
recon_ui(sel, dataset)
st.header("Bound on log p(x) as k grows", anchor=False)
bound_ui(sel, dataset)
