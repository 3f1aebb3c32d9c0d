"""The figure builders and helpers behind the Train and Compare pages, without streamlit:
grouped live panels, overlays on shared axes, eval tables that never mix units, and
reconstructions (exact for a flow)."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from genlab.data import preprocess
from genlab.evaluation import compare
from genlab.figures import curves, tables
from genlab.models import build_model
from genlab.models.vae import VAEConfig
from genlab.runs import store, status
from runs_fixture import REPO
from genlab.runs.status import RunSummary
from genlab.training.train import TrainConfig


def _gan_records() -> list[dict]:
    recs = []
    for step in range(1, 7):
        parts = {"d_loss": 1.0 + step, "g_loss": 2.0 + step, "d_real": 0.6, "d_fake": 0.4}
        recs.append({"event": "step", "split": "train", "epoch": 1 + (step > 3), "step": step,
                     "loss": parts["d_loss"] + parts["g_loss"], **parts})
        if step % 3 == 0:
            recs.append({"event": "epoch", "split": "val", "epoch": step // 3, "step": step,
                         "loss": 9.0, **parts})
    return recs


def test_live_panels_group_adversarial_and_gradient_metrics():
    assert curves.live_panels(["loss", "d_loss", "g_loss", "d_real", "d_fake"]) == [
        ("D and G losses", ["d_loss", "g_loss"], False),
        ("D outputs: mean D(x), mean D(G(z))", ["d_real", "d_fake"], False)]
    panels = curves.live_panels(["loss", "elbo", "recon", "kl", "grad_var", "grad_var_nobaseline"])
    assert [p[0] for p in panels] == ["loss", "encoder gradient variance", "recon", "kl"]
    assert panels[1] == ("encoder gradient variance", ["grad_var", "grad_var_nobaseline"], True)
    assert curves.live_panels(["loss", "bpd"]) == [("loss", ["loss"], False), ("bpd", ["bpd"], False)]


def _by_name(fig) -> dict[str, list]:
    by_name: dict[str, list] = {}
    for t in fig.data:
        by_name.setdefault(t.name, []).append(t)
    return by_name


def _legend(fig) -> list[str]:
    """The names the legend lists: each trace it shows, in order."""
    return [t.name for t in fig.data if t.showlegend is not False]


def _panels(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def test_live_figure_draws_each_metric_train_per_step_and_val_per_epoch():
    fig = curves.live_figure(_gan_records())
    assert _panels(fig) == ["D and G losses", "D outputs: mean D(x), mean D(G(z))"]
    by_name = _by_name(fig)
    d_train = by_name["d_loss"][0]
    assert list(d_train.x) == [1, 2, 3, 4, 5, 6] and list(d_train.y) == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert d_train.xaxis == "x" and by_name["d_real"][0].xaxis == "x2"
    assert d_train.line.color != by_name["g_loss"][0].line.color  # parts apart in one panel
    vals = by_name["validation (per epoch)"]
    assert len(vals) == 4 and all(v.mode == "markers" for v in vals)  # markers only
    assert (list(vals[0].x), list(vals[0].y), list(vals[0].customdata)) == ([3, 6], [4.0, 7.0], [1, 2])
    assert vals[0].marker.color == d_train.line.color  # a part's validation in the part's colour
    assert _legend(fig) == ["d_loss", "validation (per epoch)", "g_loss", "d_real", "d_fake"]
    assert fig.layout.yaxis.type is None and fig.layout.yaxis2.type is None  # linear
    assert fig.layout.uirevision == curves.LIVE  # a zoom survives the 2-second redraws
    bvae = [{"event": "step", "split": "train", "step": s, "loss": 1.0, "grad_var": 10.0 ** s,
             "grad_var_nobaseline": 10.0 ** (s + 2)} for s in (1, 2)]
    fig = curves.live_figure(bvae)
    assert (fig.layout.yaxis.type, fig.layout.yaxis2.type) == (None, "log")  # the gradient-variance panel
    assert {t.yaxis for t in _by_name(fig)["grad_var"]} == {"y2"}
    assert _legend(fig) == ["train (per step)", "validation (per epoch)", "grad_var",
                            "grad_var_nobaseline"]


def test_overlay_shares_axes_by_epoch_and_keeps_common_metrics():
    a = [{"event": "epoch", "split": s, "epoch": e, "step": 100 * e, "loss": 10.0 - e, "kl": 1.0}
         for e in (1, 2, 3) for s in ("train", "val")]
    b = [{"event": "epoch", "split": s, "epoch": e, "step": 7 * e, "loss": 9.0 - e}
         for e in (1, 2) for s in ("train", "val")]
    fig = curves.overlay_figure([("a", a), ("b", b)])
    assert _panels(fig) == ["loss"]  # kl is not in run b
    series = fig.data
    assert [s.name for s in series] == ["a · val", "a · train", "b · val", "b · train"]
    assert _legend(fig) == [s.name for s in series]
    assert list(series[0].x) == [1, 2, 3] and list(series[2].x) == [1, 2]  # epochs, not steps
    assert {s.xaxis for s in series} == {"x"} and {s.yaxis for s in series} == {"y"}  # one shared pair
    assert series[0].line.color != series[2].line.color and series[0].line.color == series[1].line.color
    assert [s.line.dash for s in series] == ["solid", "dot", "solid", "dot"]
    x = fig.layout.xaxis
    assert x.title.text == "epoch" and (x.tick0, x.dtick) == (1, 1) and x.range[0] < 1 < 3 < x.range[1]
    two = curves.overlay_figure([("a", a), ("b", b)], names=["loss", "kl"])
    assert two.layout.xaxis2.matches == "x"  # panels share the epoch axis


def _summary(name, model, preprocess, ev):
    return RunSummary(Path("/r") / name, name, model=model, config={"preprocess": preprocess}, eval=ev)


def test_compare_tables_never_mix_nats_on_binarised_with_bits_per_dim():
    vae = _summary("v", "vae", "dynamic", {"data": "binarised", "k": 50, "elbo": -90.0,
                                           "nll_nats": 85.0, "nll_sem": 0.5, "epoch": 3,
                                           "nll_method": "importance sampling", "active_units": 7,
                                           "latent_dim": 20, "n_images": 100})
    flow = _summary("f", "realnvp", "dequantize", {"data": "8-bit", "k": 1, "nll_nats": -2500.0,
                                                    "bpd": 1.2, "nll_method": "exact change of variables"})
    gan = _summary("g", "gan", "dequantize", {"d_loss": 1.3, "g_loss": 0.8, "d_real": 0.6, "d_fake": 0.4})
    groups, missing = tables.compare_tables([vae, flow, gan, _summary("n", "vae", "dynamic", None)])
    assert missing == ["n"]
    assert [g["group"] for g in groups] == ["binarised", "8-bit", "adversarial"]
    rows = {g["group"]: g["rows"] for g in groups}
    assert [r["run"] for r in rows["binarised"]] == ["v"] and "bits/dim" not in rows["binarised"][0]
    assert rows["binarised"][0]["−ELBO (nats)"] == 90.0 and rows["binarised"][0]["k"] == 50
    assert rows["binarised"][0]["active units"] == "7/20"
    assert rows["8-bit"][0]["bits/dim"] == 1.2 and "k" not in rows["8-bit"][0]  # exact: no k
    assert "−ELBO (nats)" not in rows["8-bit"][0]  # a column empty for every run is dropped
    assert rows["adversarial"][0]["D loss"] == 1.3 and "−log p(x) (nats)" not in rows["adversarial"][0]


def test_bound_figure_has_a_log_k_axis():
    fig = curves.bound_figure({"run": {10: -95.0, 1: -100.0}, "other": {1: -90.0}})
    x = fig.layout.xaxis
    assert x.type == "log" and x.title.text == "importance samples k"
    assert x.range[0] < 0 and x.range[1] > 3 and 1 in x.tickvals and 1000 in x.tickvals  # k = 1 ... 1000 whole
    assert (list(fig.data[0].x), list(fig.data[0].y)) == ([1, 10], [-100.0, -95.0])  # sorted by k
    assert fig.data[0].line.color != fig.data[1].line.color
    assert [t.name for t in fig.data] == ["run", "other"] and fig.layout.showlegend


def test_a_flow_reconstructs_its_input_exactly_and_grids_are_pngs():
    torch.manual_seed(0)
    flow = build_model("nice", {"couplings": 2, "hidden": [8], "image_shape": [1, 28, 28]})
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    inputs = compare.model_inputs(flow, x, seed=1)  # dequantised: (x + u) / 256
    assert torch.equal(torch.floor(inputs * 256).to(torch.uint8), x)
    assert torch.allclose(compare.reconstruct(flow, x, seed=1), inputs, atol=1e-4)  # inverse(forward(x))
    assert compare.is_exact(flow) and compare.is_exact(type(flow))
    assert not compare.is_exact(build_model("vae", {"hidden": [8], "latent_dim": 2}))
    png = compare.image_row_png(x, scale=2)
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (2 * (3 * 30 + 2), 2 * 32)  # 3 images of 28 px, 2 px padding


@pytest.mark.parametrize("k", [1, 7])
def test_bound_at_k_is_the_mean_of_the_models_log_prob(k, mnist_small):
    """L_k over a split is the mean of log_prob(x, k) on the same seeded binarisation."""
    vae = build_model("vae", {"hidden": [16], "latent_dim": 2})
    train, _ = mnist_small
    small = type(train)(train.x[:50], train.y[:50], "mnist", "train")
    res = compare.bound_at_k(vae, small, k, seed=3)
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)  # the importance samples' stream, as log_prob_split seeds it
    x = preprocess(small.x, "dynamic", generator=g)
    with torch.no_grad():
        lp = vae.log_prob(x, k=k).double()
    assert res["n"] == 50 and res["k"] == k
    assert res["mean"] == pytest.approx(float(lp.mean()), rel=1e-5)


# -- the pure parts of the Train and Compare pages ------------------------------------
def _todo(name, state="done", ckpt=1):
    return RunSummary(Path("/r") / name, name, model="vae", state=state, ckpt=ckpt)


def test_eval_plan_skips_runs_at_work_and_runs_without_a_checkpoint():
    todo = [_todo("ready"), _todo("training", "running"), _todo("bare", ckpt=None),
            _todo("evaluating"), _todo("child", "done")]
    plan = compare.eval_plan(todo, {"ready": None, "training": None, "bare": None,
                                    "evaluating": status.Job("eval", 1, Path("/r"), alive=True),
                                    "child": status.Job("resume", 2, Path("/r"), alive=True)})
    assert plan["evaluating"] == ["evaluating"]
    assert plan["training"] == ["child", "training"]  # a live resume counts as training
    assert plan["no_ckpt"] == ["bare"]
    assert [s.name for s in plan["can"]] == ["ready"]
    assert [s.name for s in plan["show"]] == ["evaluating"]


def test_bound_candidates_and_rows():
    sel = [RunSummary(Path(n), n, model=m, ckpt=c) for n, m, c in
           (("v", "vae", 1), ("f", "realnvp", 1), ("g", "gan", 1), ("new", "vae", None))]
    assert [s.name for s in compare.bound_candidates(sel)] == ["v"]  # flows exact, GANs none
    rows = compare.bound_rows({"binarised": {"v": {1: -100.0, 10: -97.0}}}, 10)
    assert rows == [{"run": "v", "data": "binarised", "L_1 = ELBO": -100.0, "L_10": -97.0,
                     "gain": 3.0}]
    assert "gain" not in compare.bound_rows({"binarised": {"v": {1: -100.0}}}, 1)[0]


def _config(run):
    store.write_config(run, "vae", VAEConfig(latent_dim=2, hidden=(8,)), TrainConfig(dataset="mnist"))


def test_run_info_and_the_run_to_watch(tmp_path):
    from genlab.runs import jobs

    done = tmp_path / "done"
    done.mkdir()
    _config(done)
    store.atomic_write_json(done / store.STATUS, {"state": "done", "message": ""})
    early = tmp_path / "died-early"
    early.mkdir()
    store.atomic_write_json(early / status.JOB, {"kind": "train", "pid": 2 ** 22 + 12345})
    (early / status.TRAIN_LOG).write_text("Traceback ...\nValueError: no such dataset\n")
    info = {p.name: jobs.run_info(p) for p in (done, early)}
    assert (info["done"].state, info["done"].model, info["done"].dataset) == ("done", "vae", "mnist")
    assert info["died-early"].state == "failed" and info["died-early"].model is None
    assert info["died-early"].message == "ValueError: no such dataset"
    assert info["died-early"].job.kind == "train" and not info["died-early"].job.alive
    infos = [info["died-early"], info["done"]]
    assert jobs.default_watch(infos) == str(done)  # the newest with a config
    assert jobs.default_watch(infos, named="died-early") == str(early)  # ?watch= in the URL
    assert jobs.default_watch(infos, here=str(early)) == str(early)  # opened from Home
    assert jobs.default_watch(infos, named="gone", here="/elsewhere") == str(done)


def test_field_step_is_a_tenth_of_the_defaults_magnitude():
    from genlab.runs import jobs

    def spec(default, hi=None):
        return jobs.FieldSpec("x", "float", default, None, hi, False, None, "")

    assert jobs.field_step(spec(1e-3)) == pytest.approx(1e-4)
    assert jobs.field_step(spec(0.5)) == pytest.approx(0.01)
    assert jobs.field_step(spec(0.0, hi=1)) == 0.01 and jobs.field_step(spec(0.0)) == 0.5


def test_overview_puts_nats_and_bits_per_dim_in_separate_columns():
    vae = RunSummary(Path("/r/v"), "v", model="vae", eval={"data": "binarised", "nll_nats": 85.0})
    flow = RunSummary(Path("/r/f"), "f", model="realnvp",
                      eval={"data": "8-bit", "nll_nats": -2500.0, "bpd": 1.2})
    rows = {r["run"]: r for r in tables.overview_rows([vae, flow])}
    assert rows["v"]["test −log p(x) (nats)"] == 85.0 and rows["v"]["test bits/dim"] is None
    assert rows["f"]["test −log p(x) (nats)"] is None and rows["f"]["test bits/dim"] == 1.2


def test_fid_sits_in_its_own_table_across_families_and_says_it_is_not_inception():
    vae = RunSummary(Path("/r/v"), "v", model="vae", eval={"data": "binarised", "nll_nats": 85.0,
                                                           "fid": 30.5, "fid_n": 10000, "n_images": 10000})
    gan = RunSummary(Path("/r/g"), "g", model="gan", eval={"d_loss": 1.3, "fid": 12.25, "fid_n": 500,
                                                           "n_images": 10000})
    flow = RunSummary(Path("/r/f"), "f", model="realnvp", eval={"data": "8-bit", "bpd": 1.2})
    rows = tables.fid_rows([vae, gan, flow])  # the flow's eval has no FID: no row
    assert [(r["run"], r["FID"], r["samples"]) for r in rows] == [("v", 30.5, 10000), ("g", 12.25, 500)]
    assert rows[1]["against"] == "test (500 images)"
    over = {r["run"]: r for r in tables.overview_rows([vae, gan, flow])}
    assert over["g"]["FID"] == 12.25 and over["f"]["FID"] is None
    assert "FID 30.5 (genlab features, not Inception)" in tables.eval_line(vae.eval)
    caption = tables.fid_caption("mnist")
    assert "not comparable with the Inception FID" in caption and "test accuracy: 99.34%" in caption
    assert "not comparable" in tables.fid_caption("svhn")  # no shipped net: the note without accuracy


def test_the_train_page_and_home_agree_on_every_state(tmp_path):
    """One rule (genlab.runs.status.run_state): the Train page's poll (jobs.run_info) and the
    summaries of Home and Compare give every run folder the same state and message."""
    import subprocess
    import sys

    from genlab.runs import jobs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cases = {"done": {"state": "done", "message": ""},
             "interrupted": {"state": "running", "pid": dead.pid, "total_steps": 10},
             "failed": {"state": "failed", "message": "non-finite loss"},
             "stopped": {"state": "stopped", "message": "stopped at epoch 1"}}
    for name, st in cases.items():
        (tmp_path / name).mkdir()
        _config(tmp_path / name)
        store.atomic_write_json(tmp_path / name / store.STATUS, st)
    (tmp_path / "died-early").mkdir()
    _config(tmp_path / "died-early")
    store.atomic_write_json(tmp_path / "died-early" / status.JOB, {"kind": "train", "pid": dead.pid})
    (tmp_path / "died-early" / status.TRAIN_LOG).write_text("genlab: error: no data\n")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / store.CONFIG).write_text('{"model": "vae"')
    store.atomic_write_json(tmp_path / "broken" / store.STATUS, {"state": "done"})
    seen = {}
    for p in sorted(tmp_path.iterdir()):
        info, s = jobs.run_info(p), status.summarize(p)
        assert (info.state, info.message) == (s.state, s.message), p.name
        seen[p.name] = s.state
    assert seen == {"broken": "broken", "done": "done", "failed": "failed", "interrupted": "interrupted",
                    "died-early": "failed", "stopped": "stopped"}


def test_the_bound_at_k_1_is_named_for_what_it_is():
    """Issue 13, item 11: L_1 is the ELBO of a VAE; the autoencoder + GMM has no ELBO (a
    deterministic encoder), so its L_1 is named as the one-sample importance estimate."""
    from genlab.figures.tables import bound_rows, l1_meaning
    from genlab.runs.status import summarize

    shipped = REPO / "checkpoints"
    assert l1_meaning(summarize(shipped / "vae-2d-mnist")) == "ELBO"
    gmm = l1_meaning(summarize(shipped / "ae-gmm-mnist"))
    assert "ELBO" not in gmm.split("(")[0] and "importance estimate" in gmm
    rows = bound_rows({"binarised": {"a": {1: -140.0, 10: -139.0}}}, 10, {"a": gmm})
    assert rows == [{"run": "a", "data": "binarised", "L_1": -140.0, "L_1 is": gmm, "L_10": -139.0,
                     "gain": 1.0}]
