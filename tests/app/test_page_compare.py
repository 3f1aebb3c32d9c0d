"""AppTest of the Compare page on real tiny runs: eval tables that keep nats on binarised
pixels and bits/dim on 8-bit pixels apart, the Evaluate button (a real `eval`
subprocess), the k slider tightening the importance-weighted bound, and clear messages
for a corrupt checkpoint and a missing dataset."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from genlab.runs import jobs, store, status
from runs_fixture import GOOD, REPO, run_page, texts

PAGE = "pages/compare.py"
NOEVAL, FLOW, CORRUPT = "vae-mnist-noeval", "nice-mnist-tiny", "vae-mnist-corrupt"
BINARISED, EIGHT_BIT = "Binarised pixels: nats per image", "8-bit pixels: bits/dim"


def _train_flow(root: Path, data_root: Path) -> None:
    """A real NICE run on dequantised (8-bit) MNIST, 1 epoch on 300 images, evaluated."""
    from genlab.evaluation.metrics import evaluate_run
    from genlab.models.nice import NICEConfig
    from genlab.training.train import TrainConfig, train_run

    run = store.new_run_dir(root, FLOW)
    store.write_config(run, "nice", NICEConfig(couplings=2, hidden=(16,)),
                      TrainConfig(dataset="mnist", epochs=1, batch_size=100, limit=300, log_every=1,
                                  n_samples=4, data_root=str(data_root), device="cpu"))
    train_run(run)
    evaluate_run(run, limit=100, device="cpu")


@pytest.fixture(scope="module")
def compare_root(runs_root, data_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compare-runs")
    shutil.copytree(runs_root / GOOD, root / GOOD)
    shutil.copytree(runs_root / GOOD, root / NOEVAL)
    (root / NOEVAL / store.EVAL).unlink()
    shutil.copytree(runs_root / GOOD, root / CORRUPT)
    ckpt = root / CORRUPT / store.CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:300])  # truncated
    _train_flow(root, data_root)
    return root


@pytest.fixture
def env(compare_root, data_root, monkeypatch) -> Path:
    monkeypatch.setenv("GENLAB_RUNS", str(compare_root))
    monkeypatch.setenv("GENLAB_DATA", str(data_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(REPO)
    return compare_root


def pick(at, root: Path, *names: str):
    return at.multiselect(key="compare-runs-mnist").set_value([str(root / n) for n in names]).run()


def bound_table(at):
    return next(d.value for d in at.table if "L_1" in d.value.columns)


def tables(at) -> dict[str, object]:
    """The eval tables by the title written above each."""
    titles = [m.value.strip("*") for m in at.markdown if m.value.startswith("**") and "pixels" in m.value]
    frames = [d.value for d in at.table if "run" in d.value.columns and "epoch" in d.value.columns]
    return {t.split(":")[0] + ":" + t.split(":")[1][:13]: f for t, f in zip(titles, frames)}


def test_units_never_share_a_table(env):
    at = pick(run_page(PAGE), env, GOOD, FLOW)
    assert not at.exception, [e.value for e in at.exception]
    found = tables(at)
    binarised = next(f for t, f in found.items() if t.startswith("Binarised"))
    eight_bit = next(f for t, f in found.items() if t.startswith("8-bit"))
    assert list(binarised["run"]) == [GOOD] and list(eight_bit["run"]) == [FLOW]
    assert "bits/dim" in eight_bit.columns and "bits/dim" not in binarised.columns
    ev = json.loads((env / GOOD / store.EVAL).read_text())
    row = binarised.iloc[0]
    assert row["−log p(x) (nats)"] == pytest.approx(ev["nll_nats"])
    assert row["−ELBO (nats)"] == pytest.approx(-ev["elbo"]) and row["k"] == ev["k"]
    flow = json.loads((env / FLOW / store.EVAL).read_text())
    assert eight_bit.iloc[0]["bits/dim"] == pytest.approx(flow["bpd"])
    fid = next(d.value for d in at.table if "FID" in d.value.columns)  # both families, one table
    assert list(fid["run"]) == [GOOD, FLOW] and fid.iloc[1]["FID"] == pytest.approx(flow["fid"])
    assert any("not comparable with the Inception FID" in c.value for c in at.caption)
    assert len(at.image) >= 3  # two sample grids, the test images and a reconstruction


def test_evaluate_button_fills_the_table(env):
    at = pick(run_page(PAGE), env, GOOD, NOEVAL)
    assert f"No eval.json yet for {NOEVAL}" in texts(at)
    at.selectbox(key="eval-k").set_value(1)
    at = at.button(key="eval-go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    deadline = time.time() + 120
    while not jobs.wait(env / NOEVAL, 1):
        assert time.time() < deadline, status.log_tail(env / NOEVAL, status.EVAL_LOG)
        at.run()  # the page's progress fragment
        assert not at.exception
    assert (env / NOEVAL / store.EVAL).exists(), status.log_tail(env / NOEVAL, status.EVAL_LOG)
    at.run()
    binarised = next(f for t, f in tables(at).items() if t.startswith("Binarised"))
    assert list(binarised["run"]) == [GOOD, NOEVAL]  # both runs in the one table
    ev = json.loads((env / NOEVAL / store.EVAL).read_text())
    assert (ev["k"], ev["n_images"]) == (1, 1000)
    if "nll_exact_n_images" in ev:  # a 2-D latent: the app integrates the first few exactly
        assert ev["nll_exact_n_images"] == jobs.APP_EXACT_N
    assert binarised.iloc[1]["−log p(x) (nats)"] == pytest.approx(ev["nll_nats"])
    assert "No eval.json yet" not in texts(at)


def test_k_slider_tightens_the_bound(env):
    at = pick(run_page(PAGE), env, GOOD, FLOW)
    at = at.select_slider(key="bound-k").set_value(1).run()
    table = bound_table(at)
    assert list(table["run"]) == [GOOD]  # the flow is exact: no bound to tighten
    assert list(table.columns) == ["run", "data", "L_1", "L_1 is"]
    assert table.iloc[0]["L_1 is"] == "ELBO"  # a VAE's (the autoencoder + GMM has none)
    l1 = table.iloc[0]["L_1"]
    ev = json.loads((env / GOOD / store.EVAL).read_text())  # ELBO on the same 200 test images
    assert l1 == pytest.approx(ev["elbo"], abs=3.0)  # one-sample estimate vs closed-form KL
    at = at.select_slider(key="bound-k").set_value(20).run()
    assert not at.exception
    row = bound_table(at).iloc[0]
    assert row["L_1"] == l1 and row["L_20"] > l1 and row["gain"] == pytest.approx(row["L_20"] - l1)
    assert row["L_20"] < 0  # still a bound on log p(x) of binary images: below 0 nats
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert chart["layout"]["xaxis"]["type"] == "log"
    ks, ys = tuple(chart["data"][0]["x"]), tuple(chart["data"][0]["y"])  # every k computed so far: the first render's 10, then 1 and 20
    assert ks == (1, 10, 20) and ys[0] == l1 and ys[2] == row["L_20"]
    assert list(ys) == sorted(ys)  # L_1 <= L_10 <= L_20 (Burda et al. 2016)


def test_corrupt_checkpoint_and_missing_data_are_explained(env, tmp_path, monkeypatch):
    at = pick(run_page(PAGE), env, GOOD, CORRUPT)
    assert not at.exception
    errors = "\n".join(e.value for e in at.error)
    assert f"{CORRUPT}/checkpoint.pt: not a readable checkpoint" in errors and "Retrain it" in errors
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    at = pick(run_page(PAGE), env, GOOD, NOEVAL)
    assert not at.exception
    assert "mnist is not in" in texts(at) and "GENLAB_DATA" in texts(at)
    assert "Traceback" not in texts(at)


def test_one_run_asks_for_another(env):
    at = pick(run_page(PAGE), env, GOOD)
    assert not at.exception
    assert "Pick at least two runs" in "\n".join(i.value for i in at.info)


def test_samples_drawn_now_at_one_temperature_for_every_run(env):
    """Issue 15, section 5: the stored grids, or 64 samples drawn now from each checkpoint at
    the slider's temperature; a damaged run says why it draws nothing."""
    at = pick(run_page(PAGE), env, GOOD, FLOW, CORRUPT)
    temp = at.slider(key="compare-temp")
    assert temp.disabled  # the stored grids need no temperature
    at = at.segmented_control(key="compare-samples").set_value("drawn at T").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for im in at.image for c in im.captions if c.startswith("64 samples")]
    assert captions == ["64 samples at T = 1.00", "64 samples at T = 1.00"]  # the VAE, the flow
    assert any(c.value.startswith("cannot be loaded") for c in at.caption)
    first = [im.value for im in at.image if im.captions[0].startswith("64 samples")]
    at = at.slider(key="compare-temp").set_value(0.6).run()
    assert not at.exception
    cooler = [im.value for im in at.image if im.captions[0].startswith("64 samples at T = 0.60")]
    assert len(cooler) == 2 and all(a != b for a, b in zip(first, cooler))
