"""genlab.distributed: torchrun detection, sharding, weighted reductions, and 2-process
gloo jobs (tests/ddp_worker.py) whose synchronised steps must equal one process's.

The equality tests run in float64 with the model noise fixed per image
(ddp_worker.SameNoisePerImage), so a step of 2 processes x 64 images and a step of one
process x 128 images differ by rounding only: gradients agree to GRAD_RTOL of their
largest entry plus GRAD_ATOL, weights to WEIGHT_ATOL (lr = 1e-3). Adam's first step is nearly
lr * sign(g) and blind to the gradient's scale, so gradients are compared as well.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ddp_worker as W
from genlab import distributed
from genlab.data import ImageData
from genlab.distributed import Dist, launch_env

WORKER = Path(W.__file__)
GRAD_RTOL = 1e-10  # of max |grad| per tensor (observed: ~1e-15 in float64) ...
GRAD_ATOL = 1e-13  # ... plus this: a tensor whose gradient cancels to ~1e-15 (observed 1e-16)
WEIGHT_ATOL = W.LR * GRAD_ATOL / 1e-8  # = 1e-8 absolute (observed 1.2e-9): where |g| is below
# Adam's eps = 1e-8 (ActNorm's log-scale right after its init, whose gradient cancels to
# rounding) the step lr * g / eps magnifies gradient rounding by lr / eps; a wrong step moves ~lr
FAULT_HANG_S = 120  # a fault job that has not ended by then hangs (it ends in ~0-3 s)
NO_TIMEOUT_S = 3600  # the collective timeout of the kill jobs: far past FAULT_HANG_S, so a
# job that ends within FAULT_HANG_S saw the lost connection, it did not wait for the timeout
HANG_TIMEOUT_S = 3.0  # collective timeout of the hang job


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCH_VARS}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    """One torchrun job of 2 gloo processes running every check of ddp_worker.job_main."""
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(WORKER), "main", str(out)]
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return [torch.load(out / f"main_rank{r}.pt", weights_only=True) for r in (0, 1)]


def _assert_same_step(got: dict, ref: dict, what: str) -> None:
    assert got["grads"].keys() == ref["grads"].keys() and ref["grads"], what
    for n, g in ref["grads"].items():
        tol = GRAD_RTOL * float(g.abs().max()) + GRAD_ATOL
        err = float((got["grads"][n] - g).abs().max())
        assert err <= tol, f"{what}: grad of {n} off by {err:.3g} (tolerance {tol:.3g})"
    for n, p in ref["params"].items():
        err = float((got["params"][n] - p).abs().max())
        assert err <= WEIGHT_ATOL, f"{what}: weight {n} off by {err:.3g}"
    for n, b in ref["buffers"].items():
        assert torch.allclose(got["buffers"][n].double(), b.double(), rtol=1e-12, atol=1e-12), \
            f"{what}: buffer {n}: {got['buffers'][n]} vs one process's {b}"


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


# -- launch detection, one-process no-ops (no processes started) ------------------------
def test_launch_env_reads_torchrun_variables():
    assert launch_env({}) is None
    assert launch_env({"RANK": "0", "WORLD_SIZE": "1"}) is None  # one process: no group
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    assert launch_env(env) == distributed.Launch(3, 4, 1)


@pytest.mark.parametrize("env, words", [
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x'"),
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "0 <= RANK < WORLD_SIZE"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR and MASTER_PORT not set"),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "RANK=None"),
])
def test_launch_env_bad_values_say_what_is_wrong(env, words):
    with pytest.raises(ValueError) as e:
        launch_env(env)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_setup_refuses_mps_and_bad_timeout(monkeypatch):
    env = {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    with pytest.raises(ValueError, match="cuda \\(NCCL\\) or cpu \\(gloo\\), not mps"):
        distributed.setup("mps", environ=env)
    monkeypatch.setenv("GENLAB_DIST_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="GENLAB_DIST_TIMEOUT_S='soon'"):
        distributed.setup("cpu", environ=env)


def test_single_process_is_a_no_op():
    d = distributed.setup("cpu", environ={})
    assert (d.rank, d.world, d.is_main, d.active, d.device) == (0, 1, True, False, torch.device("cpu"))
    x = torch.arange(5)
    assert d.part(x) is x and d.gather(x) is x and d.seed(7) == 7
    assert d.mean_record({"a": torch.tensor(6.0)}, 3) == {"a": 2.0}
    assert d.any(True) and not d.any(False) and d.sum(2.5) == 2.5
    model = W.tiny_model("vae")
    assert d.wrap(model).nets == {}  # nothing wrapped: train_step as it is


@pytest.mark.parametrize("name", ["vae", "cvae", "cgan"])
def test_single_process_step_is_the_models_train_step(name):
    ref, model = W.tiny_model(name), W.tiny_model(name)
    x, y = W.global_batch(model, 32), W.global_labels(32)
    torch.manual_seed(3)
    ref.train_step(x, ref.configure_optimizers(W.LR), y=y)
    torch.manual_seed(3)
    Dist().wrap(model)(x, model.configure_optimizers(W.LR), of=32, y=y)
    for a, b in zip(ref.parameters(), model.parameters()):
        assert torch.equal(a, b)


# -- sharding (pure: no processes) ----------------------------------------------------------
@pytest.mark.parametrize("n, batch, world", [(10, 4, 2), (1000, 128, 3), (37, 8, 8), (5, 5, 5)])
def test_parts_of_an_epoch_are_disjoint_cover_it_and_follow_the_global_order(n, batch, world):
    g = torch.Generator().manual_seed(11)
    order = []
    epoch = Dist(rank=0, world=world).batches(n, batch, generator=g)
    assert len(epoch) == n // batch + (n % batch >= world)  # a last batch < world is left out
    assert Dist(rank=0, world=world).steps_per_epoch(n, batch) == len(epoch)
    assert Dist().steps_per_epoch(n, batch) == -(-n // batch)  # one process: every image
    for idx in epoch:
        parts = [Dist(rank=r, world=world).part(idx) for r in range(world)]
        assert torch.equal(torch.cat(parts), idx)  # rank order is the batch's order
        sizes = [len(p) for p in parts]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
        order.append(idx)
    seen = torch.cat(order).tolist()
    assert len(set(seen)) == len(seen) and n - len(seen) < world  # each image at most once
    if n % batch == 0 or n % batch >= world:
        assert sorted(seen) == list(range(n))  # every image once per epoch


def test_epoch_order_depends_on_seed_and_epoch_only():
    def order(epoch):
        g = torch.Generator().manual_seed(3 * epoch + 1)
        return torch.cat(Dist(rank=1, world=2).batches(50, 8, generator=g))
    assert torch.equal(order(2), order(2)) and not torch.equal(order(1), order(2))


def test_part_refuses_a_batch_smaller_than_the_world():
    with pytest.raises(ValueError, match="3 images cannot be shared by 4 processes"):
        Dist(rank=0, world=4).part(torch.arange(3))


def test_shards_of_a_split_are_disjoint_and_in_order():
    data = ImageData(W.images(11), torch.arange(11), "mnist", "test")
    ys = [Dist(rank=r, world=3).shard(data).y for r in range(3)]
    assert torch.equal(torch.cat(ys), data.y)
    assert torch.equal(Dist(rank=1, world=3).shard(data).x, data.x[ys[1]])


# -- 2 processes (torchrun, gloo) ---------------------------------------------------------------
@pytest.mark.parametrize("name", W.EQUAL_MODELS)
def test_two_ranks_of_64_step_as_one_process_of_128(main_job, name, float64):
    steps = 2 if name == "binary-vae" else 1  # the second step uses the moving baseline
    ref = W.equal_steps(name, Dist(), 128, steps=steps)
    for r, res in enumerate(main_job):
        for s in range(1, steps + 1):
            _assert_same_step(res[name][s], ref[s], f"{name}, rank {r}, step {s}")
    if name == "realnvp":  # ActNorm's data-dependent init happened in that very step
        locs = [v for k, v in ref[1]["params"].items() if k.endswith(".loc")]
        assert locs and all(float(v.abs().max()) > 0 for v in locs)
    if name == "binary-vae":  # the baseline moved, and as one process's did
        assert float(ref[2]["buffers"]["signal_ema"]) != 0.0


def test_uneven_parts_are_weighted_by_images(main_job, float64):
    """127 images as 64 + 63: DDP's plain average (g0 + g1) / 2 would be off by about
    |g0 - g1| / 254, many orders above the tolerance; the weighted one is not."""
    ref = W.equal_steps("vae", Dist(), 127)[1]
    other = W.equal_steps("vae", Dist(), 128)[1]  # one image more: the scale of a real change
    for res in main_job:
        _assert_same_step(res["vae-uneven"][1], ref, "vae 64+63")
    n, g = next(iter(ref["grads"].items()))
    assert float((other["grads"][n] - g).abs().max()) > 1e6 * GRAD_RTOL * float(g.abs().max())


def test_sharded_log_prob_gathers_to_one_process_values(main_job, float64):
    """9 test images as 5 + 4, log p(x) gathered: the one-process values of the same flow."""
    flow = W.tiny_model("realnvp")
    for res in main_job:
        flow.load_state_dict(res["flow_state"])
        with torch.no_grad():
            ref = flow.log_prob(W.global_batch(flow, 9, seed=7))
        assert res["log_prob"].shape == (9,)
        assert torch.allclose(res["log_prob"], ref, rtol=1e-12, atol=0)


def test_metric_reduction_is_weighted_by_images_and_rates_add(main_job):
    for res in main_job:
        assert res["mean"] == {"a": 2.0, "b": 0.0}  # (3*1 + 1*5) / 4, not (1 + 5) / 2
        assert res["rate"] == 30.0
        assert res["any"] == (True, False)
        assert res["gather"].tolist() == [0, 1, 2, 3, 4]


def test_ranks_see_disjoint_slices_covering_each_epoch(main_job):
    for epoch in (1, 2):
        per_rank = [torch.cat(res["epochs"][epoch]) for res in main_job]
        everything = torch.cat(per_rank).tolist()
        assert sorted(everything) == list(range(10))  # disjoint and covering
    assert not torch.equal(torch.cat(main_job[0]["epochs"][1]), torch.cat(main_job[0]["epochs"][2]))
    assert torch.cat([main_job[0]["shard"], main_job[1]["shard"]]).tolist() == list(range(7))


def test_mixture_is_fitted_once_on_every_image_and_shared(main_job):
    ref = W.tiny_model("ae-gmm")
    torch.manual_seed(5)
    ref.on_epoch_end(ImageData(W.images(40, seed=3), torch.zeros(40, dtype=torch.long), "mnist", "train"))
    for res in main_job:
        for n, b in ref.gmm.named_buffers():
            assert torch.equal(res["gmm"][n], b), n
    first, second = (res["gmm_k2"] for res in main_job)  # rank 0's refit, K = 2, shared
    assert first["means"].shape == (2, 2) and all(torch.equal(first[n], second[n]) for n in first)


def test_class_prior_is_counted_once_on_rank_0_and_shared(main_job):
    """p(y) of a class-conditional model after an epoch: rank 0's label counts (all 3s
    here; rank 1 held 7s), add-one smoothed, (40 + 1) / 50 for class 3, on both ranks."""
    expected = torch.full((10,), 1 / 50).log()
    expected[3] = math.log(41 / 50)
    for res in main_job:
        torch.testing.assert_close(res["class_prior"], expected)


@pytest.mark.parametrize("name", list(W.MODELS))
def test_replicas_stay_bit_identical(main_job, name):
    a, b = (res["replicas"][name] for res in main_job)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    start = W.tiny_model(name).state_dict()
    assert any(not torch.equal(a[k], v) for k, v in start.items() if k in a)  # it trained


def test_bf16_autocast_steps_stay_in_sync(main_job):
    a, b = (res["bf16"] for res in main_job)
    assert a.pop("dtype") == b.pop("dtype") == "torch.bfloat16"  # autocast was really on
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == torch.float32 for k in a)


def test_nan_on_one_rank_stops_both_at_the_same_step(main_job):
    """Rank 1 alone feeds a NaN image at step 3; both see it in the record of step 4."""
    first, second = (res["nan"] for res in main_job)
    assert first == second and first["step"] == 4, (first, second)
    assert first["message"].startswith("non-finite ")


# -- faults: two plain processes, so rank 0 has to notice by itself ----------------------------------
def _fault_job(tmp_path, how: str, timeout_s: float):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER), how, str(tmp_path)],
                              env=_env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                                       DDP_TEST_TIMEOUT_S=str(timeout_s)),
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        _, err0 = procs[0].communicate(timeout=FAULT_HANG_S)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
    report = json.loads((tmp_path / "rank0.json").read_text())
    lost = report["time"] - float((tmp_path / "fault_time").read_text())
    print(f"{how}: rank 0 failed {lost:.2f} s after rank 1's fault")  # a figure, not a test
    return procs[0].returncode, err0, report


def test_killed_rank_makes_the_other_fail_at_once_with_a_clear_error(tmp_path):
    """Rank 0 fails in the very step whose collective rank 1 never joined (step 5), from the
    lost connection: with a collective timeout of an hour it ended within FAULT_HANG_S."""
    rc, err, report = _fault_job(tmp_path, "kill", timeout_s=NO_TIMEOUT_S)
    assert rc == 1, err[-2000:]
    assert report["step"] == 5, report
    assert report["message"].startswith("rank 0 of 2: lost contact with the other processes during")
    assert "resumed" in report["message"] and "\n" not in report["message"]
    assert "timed out" not in report["message"].lower(), report["message"]


def test_hung_rank_makes_the_other_fail_after_the_timeout(tmp_path):
    rc, err, report = _fault_job(tmp_path, "hang", timeout_s=HANG_TIMEOUT_S)
    assert rc == 1, err[-2000:]
    assert report["step"] == 5, report  # the step rank 1 stopped in, not an earlier one
    msg = report["message"].lower()
    assert "lost contact" in msg and ("timed out" in msg or "timeout" in msg), msg
    assert f"over {HANG_TIMEOUT_S:g} s" in msg, msg  # the timeout it was given


def test_torchrun_ends_the_whole_job_when_a_rank_is_killed(tmp_path):
    """Under torchrun (one node) the launcher sees the dead worker too and ends the job,
    exit status non-zero, both ranks named in its report."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(WORKER), "kill", str(tmp_path)]
    p = subprocess.run(cmd, env=_env(DDP_TEST_TIMEOUT_S=str(NO_TIMEOUT_S)), capture_output=True,
                       text=True, timeout=FAULT_HANG_S)  # ended by the lost connection
    ended = time.time() - float((tmp_path / "fault_time").read_text())
    assert p.returncode != 0
    assert "genlab: error: rank 0 of 2: lost contact" in p.stderr and "SIGKILL" in p.stderr
    print(f"torchrun ended {ended:.2f} s after the kill")  # a figure, not a test


# -- fit, eval and the app under torchrun (real MNIST, 2 gloo processes) -----------------------
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
RUN_ARGS = ["--model", "vae", "--hidden", "128", "--limit", "512", "--batch-size", "32",
            "--log-every", "4", "--quiet", "--device", "cpu"]  # 16 global steps an epoch
LOSS_RTOL = 0.03
"""A 2-process run against a 1-process run of the same seed: epoch losses within 3 %. They
differ by noise only: rank 1 draws other z for its half of each batch and validation
binarises each half with its own seed. Observed on 512 MNIST images, 16 steps: 0.1 % (train),
0.8 % (validation); a 1-process run with another seed differs from the first by as much
(0.1 %, 0.7 %). Step counts, batch order and the file layout are compared exactly."""
JOB_HANG_S = 120  # Stop or a killed rank -> torchrun has exited (measured ~2 s; a job still
# alive then hangs). A Stop that took over 30 s would have ended in torchrun's SIGKILL of its
# workers, which leaves no "stopped" status and no checkpoint of the step it stopped at.


def _genlab(args, data_root, *, procs: int = 1, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = (TORCHRUN if procs == 2 else [sys.executable]) + ["-m", "genlab", *args]
    p = subprocess.run(cmd, env=_env(GENLAB_DATA=str(data_root)), capture_output=True, text=True,
                       timeout=timeout, cwd=WORKER.parents[1])
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _records(run: Path) -> dict:
    return {(r["event"], r["split"], r["step"]): r
            for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, data_root):
    """The same 1-epoch VAE run on one process and on two."""
    from genlab import cli

    root = tmp_path_factory.mktemp("fit")
    torch.set_num_threads(1)  # the one-process run in this process, as a worker would run it
    assert cli.main(["train", *RUN_ARGS, "--epochs", "1", "--run-dir", str(root / "one"),
                     "--data-root", str(data_root)]) == 0
    p = _genlab(["train", *RUN_ARGS, "--epochs", "1", "--run-dir", str(root / "two")], data_root,
                procs=2)
    return root / "one", root / "two", p


def test_two_process_run_writes_the_run_folder_of_one_process(two_runs):
    from genlab.runs import store, status

    one, two, p = two_runs
    assert p.stdout.count("done: epoch 1") == 1  # rank 0 reports for both
    assert p.stdout.count("run directory:") == 1
    files = lambda run: sorted(str(f.relative_to(run)) for f in run.rglob("*") if f.is_file())
    assert files(two) == files(one)  # no per-rank files, no missing ones
    st = json.loads((two / "status.json").read_text())
    assert (st["state"], st["processes"], st["step"], st["total_steps"]) == ("done", 2, 16, 16)
    ref = store.load_checkpoint(one / store.CHECKPOINT)
    ckpt = store.load_checkpoint(two / store.CHECKPOINT)
    assert ckpt["model"].keys() == ref["model"].keys()  # the unwrapped model: no "module."
    assert (ckpt["epoch"], ckpt["step"]) == (1, 16)
    store.load_model(two)
    summary = status.summarize(two)  # what the app's pages read
    assert summary.state == "done" and summary.error is None and summary.sample is not None
    assert [r["step"] for r in summary.metrics] == [r["step"] for r in status.summarize(one).metrics]


def test_two_process_metrics_equal_one_process_metrics_within_noise(two_runs):
    one, two, _ = two_runs
    a, b = _records(one), _records(two)
    assert a.keys() == b.keys() and len(a) == 6  # 4 step records, epoch train, epoch val
    for key in (("epoch", "train", 16), ("epoch", "val", 16)):
        for part in ("loss", "recon"):
            ref, got = a[key][part], b[key][part]
            assert abs(got - ref) <= LOSS_RTOL * abs(ref), (key, part, got, ref)
    assert a[("step", "train", 4)]["loss"] == pytest.approx(b[("step", "train", 4)]["loss"], rel=0.01)


def test_two_process_run_resumes_on_one_process_and_back(two_runs, data_root, tmp_path):
    import shutil

    from genlab.runs import store
    from genlab.training.train import train_run

    run = tmp_path / "run"
    shutil.copytree(two_runs[1], run)
    torch.set_num_threads(1)
    assert train_run(run, resume=True, epochs=2)["state"] == "done"  # on one process (this one)
    _genlab(["resume", str(run), "--epochs", "3", "--quiet"], data_root, procs=2)  # and back
    ckpt = store.load_checkpoint(run / store.CHECKPOINT)
    assert (ckpt["epoch"], ckpt["step"]) == (3, 48)
    recs = _records(run)
    assert [k[2] for k in recs if k[:2] == ("epoch", "val")] == [16, 32, 48]
    losses = [recs[("epoch", "val", s)]["loss"] for s in (16, 32, 48)]
    assert losses[2] < losses[1] < losses[0]  # it went on learning


def test_two_process_eval_equals_one_process_eval_within_monte_carlo_error(two_runs, data_root,
                                                                           tmp_path):
    """k = 10 on 200 test images. Each process seeds its share's noise as one process seeds
    the whole split, so the 2-process figure is exactly the mean over the two shares evaluated
    apart (checked in this process to 1e-6), and it differs from the 1-process figure by the
    estimator's noise only: within 4 standard errors of the per-image difference."""
    import math
    import shutil

    from genlab.data import load_split
    from genlab.evaluation.metrics import evaluate_run, log_prob_split
    from genlab.runs import store

    run = tmp_path / "run"
    shutil.copytree(two_runs[1], run)
    args = ["--k", "10", "--limit", "200", "--fid-n", "0", "--device", "cpu", "--quiet"]
    p = _genlab(["eval", str(run), *args], data_root, procs=2)
    assert p.stdout.count("written to") == 1  # rank 0 reports, the other says nothing
    two = json.loads((run / store.EVAL).read_text())
    one = evaluate_run(run, k=10, limit=200, fid_n=0, device="cpu")
    assert (two["processes"], one["processes"], two["n_images"]) == (2, 1, 200)
    for key in ("loss", "elbo", "kl", "active_units"):  # computed on every image by rank 0
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
    model, _, rc = store.load_model(run)
    data = load_split("mnist", "test", data_root, limit=200)
    shards = [Dist(rank=r, world=2).shard(data) for r in (0, 1)]
    lp_two = torch.cat([log_prob_split(model, s, k=10) for s in shards])
    lp_one = log_prob_split(model, data, k=10)
    assert two["nll_nats"] == pytest.approx(float(-lp_two.mean()), abs=1e-6 * abs(two["nll_nats"]))
    assert one["nll_nats"] == pytest.approx(float(-lp_one.mean()), abs=1e-6 * abs(one["nll_nats"]))
    mc_err = float((lp_one - lp_two).std()) / math.sqrt(len(data))
    assert 0 < abs(two["nll_nats"] - one["nll_nats"]) <= 4 * mc_err, (two["nll_nats"], one["nll_nats"], mc_err)
    assert two["images_per_s"] > 0 and two["nll_nats_k_tenth"] > two["nll_nats"]


def _rank_pid(run: Path, rank: int, timeout: float = 60) -> int:
    """The pid of the training process of ``rank`` for ``run`` (torchrun's child)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                env = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(run).encode() in cmd and b"torch.distributed.run" not in cmd and \
                    f"RANK={rank}".encode() in env:
                return int(proc.name)
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} process for {run}")


def _start_long_run(tmp_path, data_root, name: str) -> Path:
    """A 2-process run started as the Train page starts it (genlab.runs.jobs, under torchrun),
    waited on until its first epoch's checkpoint is written."""
    from genlab.runs import jobs, store

    rc = store.new_config("vae", "mnist", {"hidden": (128,)},
                         {"limit": 512, "batch_size": 32, "log_every": 4, "epochs": 200,
                          "device": "cpu"})
    run = jobs.start_train(tmp_path, name, "vae", rc.model_config, rc.train, root=data_root,
                           env={"OMP_NUM_THREADS": "1"}, processes=2)
    deadline = time.time() + 120
    while not (run / store.CHECKPOINT).exists():
        assert time.time() < deadline, (run / "train.log").read_text()[-2000:]
        assert jobs.status.read_job(run).alive, (run / "train.log").read_text()[-2000:]
        time.sleep(0.2)
    return run


def test_stop_button_stops_every_rank_with_a_checkpoint(tmp_path, data_root):
    from genlab.runs import jobs, store

    run = _start_long_run(tmp_path, data_root, "stop")
    assert list(jobs.run_info(run).job.argv[1:5]) == ["-m", "torch.distributed.run", "--standalone",
                                                      "--nproc-per-node"]
    t = time.time()
    assert jobs.stop(run)  # SIGTERM to torchrun's group; torchrun passes it to both ranks
    assert jobs.wait(run, timeout=JOB_HANG_S), "the job did not end"
    took = time.time() - t
    st = json.loads((run / "status.json").read_text())
    assert st["state"] == "stopped" and "resume" in st["message"], st
    ckpt = store.load_checkpoint(run / store.CHECKPOINT)
    assert ckpt["step"] == st["step"] and ckpt["epoch"] == st["epoch"] >= 1
    assert jobs.run_info(run).state == "stopped"
    print(f"stopped {took:.2f} s after the Stop button")  # a figure, not a test


def test_killed_rank_ends_the_job_marks_the_run_failed_and_it_resumes(tmp_path, data_root):
    from genlab.runs import jobs, store
    from genlab.training.train import train_run

    run = _start_long_run(tmp_path, data_root, "kill")
    os.kill(_rank_pid(run, 1), signal.SIGKILL)
    t = time.time()
    assert jobs.wait(run, timeout=JOB_HANG_S), "the job did not end"
    ended = time.time() - t
    st = json.loads((run / "status.json").read_text())
    log = (run / "train.log").read_text()
    assert st["state"] == "failed" and "lost contact with the other processes" in st["message"], st
    assert "\n" not in st["message"] and "can be resumed" in st["message"]
    assert "genlab: error: rank 0 of 2: lost contact" in log
    assert jobs.run_info(run).state == "failed"
    epoch = store.load_checkpoint(run / store.CHECKPOINT)["epoch"]
    torch.set_num_threads(1)
    res = train_run(run, resume=True, epochs=epoch + 1)  # in this process: one more epoch
    assert (res["state"], res["epoch"]) == ("done", epoch + 1)
    print(f"job ended {ended:.2f} s after rank 1 was killed")  # a figure, not a test
