"""Compare: 2 to 4 runs on the same dataset side by side: samples, eval tables that
never mix units, curves on shared axes, reconstructions, the importance-weighted bound as
k grows, and a class-conditional run beside its unconditional family. Models and numbers
are cached per run and checkpoint (pages/ui/cache.py); the eval button and the
conditional section are in compare_ui.py."""
from __future__ import annotations

import streamlit as st

from genlab.data import DatasetError, data_root
from genlab.evaluation import compare
from genlab.figures.curves import bound_figure, overlay_figure
from genlab.figures.tables import (bound_rows, compare_tables, data_group, fid_caption, fid_rows,
                                   l1_meaning, sample_caption)
from genlab.runs import store
from genlab.runs.status import RunSummary, runs_roots
from pages import via_router
from pages.ui import cache, compare_ui as ui
from pages.ui.widgets import TEMPERATURE_HELP, draw, read_image, table, temperature_note

via_router()

TEXT = ("run", "model", "data", "split", "epoch", "k", "active units")  # the rest: 2 decimals


def pick_ui(by_ds: dict[str, list[RunSummary]]) -> list[RunSummary]:
    here = st.session_state.get("run")
    first = next((d for d, ss in by_ds.items() if any(str(s.path) == here for s in ss)), None)
    names = list(by_ds)
    ds = st.selectbox("Dataset", names, index=names.index(first) if first else 0, key="compare-dataset",
                      format_func=lambda d: f"{d} ({len(by_ds[d])} runs)")
    options = {str(s.path): s for s in by_ds[ds]}
    healthy = [p for p, s in options.items() if s.ckpt and s.state != "broken"]  # never a damaged run
    family = [str(u.path) for pair in compare.conditional_pairs(list(options.values()))
              if str(pair.conditional.path) == here for u in pair.unconditional]
    healthy.sort(key=lambda p: p not in family)  # a conditional run's own family first
    default = ([here] if here in healthy else []) + [p for p in healthy if p != here]
    picked = st.multiselect("Runs (2 to 4)", list(options), default=default[:2], max_selections=4,
                            key=f"compare-runs-{ds}", format_func=lambda p: (
                                f"{options[p].name} · {options[p].model} · {options[p].state}"))
    return [options[p] for p in picked]


def samples_ui(sel: list[RunSummary]) -> None:
    """Each run's last stored grid, or samples drawn now at one temperature for all."""
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    mode = c1.segmented_control("Samples", ["stored", "drawn at T"], default="stored",
                                key="compare-samples", help="stored: the last grid written during "
                                "training, at the model's default temperature (its caption says which); drawn at T: "
                                "64 samples from each checkpoint now") or "stored"
    asked = c2.slider("Temperature T", 0.05, 1.5, 1.0, step=0.05, key="compare-temp",
                      help=TEMPERATURE_HELP, disabled=mode != "drawn at T")
    for col, s in zip(st.columns(len(sel)), sel):
        col.markdown(f"**{s.name}**  \n{s.model} · {s.state}")
        if mode == "drawn at T":
            drawn_ui(col, s, asked)
            continue
        image, err = read_image(s.sample)
        if image:
            col.image(image, caption=sample_caption(s), width="stretch")
        else:
            col.caption(err or "No sample grid yet (written after each epoch).")


def drawn_ui(col, s: RunSummary, asked: float) -> None:
    loaded, err = cache.load(str(s.path), s.ckpt)
    if err:
        col.caption(f"cannot be loaded: {err}")
        return
    t, note = temperature_note(loaded.model, asked)
    col.image(cache.sample_grid(str(s.path), s.ckpt, 64, t, 0, 8), width="stretch",
              caption=f"64 samples at T = {t:.2f}{note}")


def metrics_ui(sel: list[RunSummary]) -> None:
    groups, missing = compare_tables(sel)
    for g in groups:
        st.markdown(f"**{g['title']}**")
        table(g["rows"], {k: ".2f" for k in g["rows"][0] if k not in TEXT})
    if groups:
        st.caption("From each run's eval.json. Nats on binarised pixels and bits/dim on 8-bit "
                   "pixels measure different things: they sit in separate tables.")
    fids = fid_rows(sel)
    if fids:
        st.markdown("**Sample quality: FID (every family, lower is better)**")
        table(fids, {"FID": ".2f"})
        st.caption(fid_caption(sel[0].dataset or ""))
    if missing:
        ui.eval_ui(sel, missing)


def curves_ui(sel: list[RunSummary]) -> None:
    by_group: dict[str, list[RunSummary]] = {}
    for s in sel:
        by_group.setdefault(data_group(s), []).append(s)
    for g, ss in by_group.items():
        st.markdown(f"**{g} data**" if g != "adversarial" else "**GAN losses**")
        draw(overlay_figure([(s.name, s.metrics) for s in ss]), key=f"overlay-{g}")
    st.caption("Per epoch: validation solid, training dotted; x is the epoch so batch sizes do not matter.")


def recon_ui(sel: list[RunSummary], dataset: str) -> None:
    latent = [s for s in sel if s.model_class and s.model_class.caps.encode]
    if not latent:
        st.caption("None of these runs reconstructs (GANs have no encoder).")
        return
    root = str(data_root().resolve())
    try:
        x = cache.test_images(dataset, ui.N_RECON, root).x
    except DatasetError as e:
        st.warning(str(e), icon=":material/folder_off:")
        return
    st.image(compare.image_row_png(x), caption=f"the first {ui.N_RECON} {dataset} test images")
    for s in latent:
        _, err = cache.load(str(s.path), s.ckpt)
        if err:
            cache.load_error(s.name, err)
            continue
        st.image(cache.recon_png(str(s.path), s.ckpt, dataset, ui.N_RECON, root),
                 caption=f"{s.name} ({s.model}): decode(encode(x))")


def bound_ui(sel: list[RunSummary], dataset: str) -> None:
    cands = [s for s in compare.bound_candidates(sel) if s.state != "broken"]
    if not cands:
        st.caption("No run here has an importance-weighted bound (flows are exact, GANs have none).")
        return
    c1, c2 = st.columns(2)
    k = c1.select_slider("importance samples k", compare.K_CHOICES, value=10, key="bound-k",
                         help="log scale; k = 1 is the ELBO for a VAE")
    n = c2.select_slider("test images", (100, 200, 500), value=200, key="bound-n")
    root = str(data_root().resolve())
    todo = [(s, kk) for s in cands if not cache.load(str(s.path), s.ckpt)[1] for kk in sorted({1, k})]
    bar = st.progress(0.0, text="importance-weighted bounds") if todo else None
    seen = st.session_state.setdefault("bound-points", {})  # every k drawn so far, per run and n
    by_group: dict[str, dict] = {}
    for i, (s, kk) in enumerate(todo):
        def step(done: int, i=i, s=s, kk=kk, count=[0]) -> None:
            count[0] += done
            bar.progress(min((i + count[0] / n) / len(todo), 1.0), text=f"L_{kk} of {s.name}: "
                         f"{count[0]}/{n} test images (task {i + 1} of {len(todo)})")
        try:
            value = cache.bound(str(s.path), s.ckpt, kk, n, dataset, root, _progress=step)["mean"]
        except DatasetError as e:
            st.warning(str(e), icon=":material/folder_off:")
            return
        points = seen.setdefault((str(s.path), s.ckpt, n), {})
        points[kk] = value
        by_group.setdefault(data_group(s), {})[s.name] = points
    if bar is not None:
        bar.empty()
    meaning = {s.name: l1_meaning(s) for s in cands}
    table(bound_rows(by_group, k, meaning), {c: ".2f" for c in ("L_1", f"L_{k}", "gain")})
    for g, group in by_group.items():
        draw(bound_figure(group), key=f"bound-{g}")
    st.caption(f"Mean over the first {n} test images, nats per image (binarised and 8-bit data apart). "
               "L_k = E log mean_i p(x, z_i)/q(z_i|x) rises from k = 1 toward log p(x) (Burda et al. "
               "2016): at k = 1 it is the ELBO for a VAE, and for the autoencoder + GMM (no ELBO) a "
               "one-sample importance estimate. Each value is computed once per run, checkpoint, k "
               "and number of images, then kept for every session.")


st.title("Compare")
roots = st.session_state.get("runs_roots") or runs_roots()
by_ds = compare.comparable([cache.summary(p) for p in store.find_runs(*roots)])
if not by_ds:
    st.info("No runs to compare yet: train two on the Train page (or `python -m genlab train ...`).",
            icon=":material/info:")
    st.stop()
sel = pick_ui(by_ds)
if len(sel) < 2:
    st.info("Pick at least two runs on the same dataset to compare them.", icon=":material/info:")
    if not sel:
        st.stop()
dataset = sel[0].dataset
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
if compare.conditional_pairs(sel):
    st.header("Conditional against unconditional", anchor=False)
    ui.conditional_ui(sel, by_ds[dataset], dataset)
