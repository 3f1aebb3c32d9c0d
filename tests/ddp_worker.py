"""One process of the 2-process jobs of tests/test_distributed.py (and the shared helpers
the test uses for its one-process references).

    torchrun --nproc-per-node 2 tests/ddp_worker.py main OUT   # equality, reductions, NaN
    RANK=.. WORLD_SIZE=2 ... python tests/ddp_worker.py kill|hang OUT   # a rank dies / hangs

The step loop here mirrors what fit() does with genlab.distributed: every process makes
the same global batch (same seeds), preprocesses it, takes its part, and calls the synced
step with the global batch size; metrics go through the weighted all-reduce.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab import distributed  # noqa: E402
from genlab.data import ImageData, preprocess  # noqa: E402
from genlab.models import FAMILIES, MODELS, build_model  # noqa: E402

SHAPE = (1, 8, 8)
EQUAL_MODELS = ("vae", "realnvp", "gan", "binary-vae", "vae-flow-posterior",  # a bypassed net
                "cvae", "realnvp-cond", "nice-cond", "cgan")  # the labels go with the images
LR = 1e-3


def tiny_model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(name, {"image_shape": SHAPE, **FAMILIES[name].tiny})  # a step takes ms
    model.train()
    return model


def images(n: int, seed: int = 1) -> torch.Tensor:
    """n random uint8 images (n, 1, 8, 8), the same on every process."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8)


def global_batch(model, n: int, seed: int = 1) -> torch.Tensor:
    """The preprocessed global batch, in the default dtype (float64 in the equality tests)."""
    x = preprocess(images(n, seed), model.preprocess, generator=torch.Generator().manual_seed(seed))
    return x.to(torch.get_default_dtype())


def global_labels(n: int, seed: int = 1) -> torch.Tensor:
    """The class labels (n,) in 0..9 of the global batch, the same on every process (what
    fit hands every model beside its images; only class-conditional ones read them)."""
    return torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(seed + 500))


class SameNoisePerImage(TorchFunctionMode):
    """Model noise (torch.randn, torch.bernoulli) drawn for the GLOBAL batch from a fixed
    stream and sliced to this process's images: image i gets the same noise whether one
    process steps on 128 images or two on 64 each, so the two must agree to rounding.
    The batch dimension is the one of size ``n_local``."""

    def __init__(self, offset: int, n_local: int, n_global: int):
        super().__init__()
        self.offset, self.n_local, self.n_global, self.calls = offset, n_local, n_global, 0

    def _global(self, shape, dtype, device, normal: bool) -> torch.Tensor:
        shape = tuple(shape)
        dim = shape.index(self.n_local)
        full = (*shape[:dim], self.n_global, *shape[dim + 1:])
        g = torch.Generator().manual_seed(1000 + self.calls)
        self.calls += 1
        draw = torch.randn if normal else torch.rand
        t = draw(full, generator=g, dtype=dtype or torch.get_default_dtype())
        return t.narrow(dim, self.offset, self.n_local).to(device or "cpu")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.randn and "generator" not in kwargs:
            shape = args[0] if len(args) == 1 and not isinstance(args[0], int) else args
            return self._global(shape, kwargs.get("dtype"), kwargs.get("device"), True)
        if func is torch.bernoulli and len(args) == 1 and not kwargs:
            p = args[0]
            return (self._global(p.shape, p.dtype, p.device, False) < p).to(p.dtype)
        return func(*args, **kwargs)


def step_record(model) -> dict:
    """Weights, gradients and floating buffers after a step (CPU copies)."""
    return {"params": {n: p.detach().clone() for n, p in model.named_parameters()},
            "grads": {n: p.grad.detach().clone() for n, p in model.named_parameters()
                      if p.grad is not None},
            "buffers": {n: b.detach().clone() for n, b in model.named_buffers()}}


def equal_steps(name: str, dist, n_global: int, steps: int = 1) -> dict:
    """``steps`` synchronised steps of ``name`` on this process's part of a global batch of
    n_global images, noise fixed per image; a one-process ``dist`` gives the reference."""
    model = tiny_model(name)
    step = dist.wrap(model)
    optimizers = model.configure_optimizers(LR)
    parts = torch.arange(n_global).tensor_split(dist.world) if dist.active else [torch.arange(n_global)]
    mine = parts[dist.rank]
    out = {}
    for s in range(steps):
        x, y = global_batch(model, n_global, seed=1 + s), global_labels(n_global, seed=1 + s)
        with SameNoisePerImage(int(mine[0]), len(mine), n_global):
            step(dist.part(x), optimizers, of=n_global, y=dist.part(y))
        out[s + 1] = step_record(model)
    return out


# -- jobs ---------------------------------------------------------------------------
def job_main(dist, out: Path) -> None:
    r = dist.rank
    res: dict = {}
    torch.set_default_dtype(torch.float64)
    for name in EQUAL_MODELS:
        res[name] = equal_steps(name, dist, 128, steps=2 if name == "binary-vae" else 1)
    res["vae-uneven"] = equal_steps("vae", dist, 127)  # parts of 64 and 63
    # sharded exact log p(x) of the flow after its step, gathered back in order
    flow = tiny_model("realnvp")
    dist.wrap(flow)(dist.part(global_batch(flow, 128)), flow.configure_optimizers(LR), of=128)
    test_x = global_batch(flow, 9, seed=7)
    with torch.no_grad():
        res["log_prob"] = dist.gather(flow.log_prob(dist.part(test_x)))
    res["flow_state"] = flow.state_dict()
    torch.set_default_dtype(torch.float32)

    # reductions: rank 0 has 3 images of mean 1, rank 1 one image of 5 -> weighted mean 2
    res["mean"] = dist.mean_record({"a": torch.tensor(3.0 if r == 0 else 5.0), "b": 0.0},
                                   3 if r == 0 else 1)
    res["rate"] = dist.sum(10.0 if r == 0 else 20.0)
    res["any"] = (dist.any(r == 1), dist.any(False))
    res["gather"] = dist.gather(torch.arange(3) if r == 0 else torch.arange(3, 5))
    # one epoch's order: 10 images, global batches of 4 (the last of 2), per-epoch seed
    g = torch.Generator()
    res["epochs"] = {}
    for epoch in (1, 2):
        g.manual_seed(3 * (0 * 100_000 + epoch) + 1)  # fit's batch-order seed
        res["epochs"][epoch] = [dist.part(idx) for idx in dist.batches(10, 4, generator=g)]
    res["shard"] = dist.shard(ImageData(images(7), torch.arange(7), "mnist", "test")).y

    # ae-gmm: the mixture fitted once (rank 0), on every image, and shared
    gm = tiny_model("ae-gmm")
    dist.wrap(gm)
    torch.manual_seed(5)
    dist.epoch_end(gm, ImageData(images(40, seed=3), torch.zeros(40, dtype=torch.long), "mnist", "train"))
    res["gmm"] = {n: b.clone() for n, b in gm.gmm.named_buffers()}
    if dist.is_main:  # a refit with another K on rank 0 alone: the buffers change shape
        gm.refit_gmm(torch.randn(30, 2), n_components=2)
    dist.broadcast_state(gm)
    res["gmm_k2"] = {n: b.clone() for n, b in gm.gmm.named_buffers()}

    # a class-conditional model's p(y): from rank 0's labels (each rank holds other ones
    # here, to tell them apart), then shared
    cv = tiny_model("cvae")
    dist.wrap(cv)
    labels = torch.full((40,), 3) if dist.is_main else torch.full((40,), 7)
    dist.epoch_end(cv, ImageData(images(40, seed=3), labels, "mnist", "train"))
    res["class_prior"] = cv.log_class_prior.clone()

    # every registry model: replicas stay bit-identical over two real (noisy) steps
    res["replicas"] = {}
    for name in MODELS:
        model = tiny_model(name)
        step, opts = dist.wrap(model), model.configure_optimizers(LR)
        torch.manual_seed(dist.seed(11))
        for s in range(2):
            step(dist.part(global_batch(model, 16, seed=20 + s)), opts, clip_grad=1.0, of=16,
                 y=dist.part(global_labels(16, seed=20 + s)))
        res["replicas"][name] = step_record(model)["params"] | {
            "buf." + n: b.clone() for n, b in model.named_buffers()}

    # --precision bf16: the synced step under CPU autocast, as fit runs it
    model = tiny_model("vae")
    step, opts = dist.wrap(model), model.configure_optimizers(LR)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        parts = step(dist.part(global_batch(model, 16, seed=30)), opts, of=16)
    res["bf16"] = {"dtype": str(parts["loss"].dtype), **step_record(model)["params"]}

    res["nan"] = nan_loop(dist)
    torch.save(res, out / f"main_rank{r}.pt")


def nan_loop(dist, bad_rank: int = 1, bad_step: int = 3, log_every: int = 2) -> dict:
    """A fit-like loop that logs every ``log_every`` steps; rank ``bad_rank`` feeds a NaN
    image at ``bad_step``. Returns the step at which this rank stopped and its message."""
    model = tiny_model("vae")
    step, opts = dist.wrap(model), model.configure_optimizers(LR)
    sums, n = {}, 0
    for s in range(1, 9):
        x = dist.part(global_batch(model, 32, seed=40 + s))
        if dist.rank == bad_rank and s == bad_step:
            x = x.clone()
            x[0] = math.nan
        outs = step(x, opts, of=32)
        for k, v in outs.items():
            sums[k] = sums.get(k, 0.0) + v * len(x)
        n += len(x)
        if s % log_every == 0:
            rec = dist.mean_record(sums, n)
            bad = [k for k, v in rec.items() if not math.isfinite(v)]
            if bad:
                return {"step": s, "message": f"non-finite {bad[0]} at step {s}"}
            sums, n = {}, 0
    return {"step": None, "message": ""}


def job_fault(dist, out: Path, how: str) -> None:
    """Rank 1 kills (SIGKILL) or stops (SIGSTOP) itself at step 5 of a long loop; rank 0
    reports how long it took to fail, and with what message."""
    model = tiny_model("vae")
    step, opts = dist.wrap(model), model.configure_optimizers(LR)
    for s in range(1, 100_000):
        if dist.rank == 1 and s == 5:
            (out / "fault_time").write_text(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        try:
            step(dist.part(global_batch(model, 32, seed=s)), opts, of=32)
            dist.mean_record({"loss": 0.0}, 1)
        except distributed.DistributedError as e:
            t = time.time()
            (out / "rank0.json").write_text(json.dumps({"time": t, "step": s, "message": str(e)}))
            print(f"genlab: error: {e}", file=sys.stderr, flush=True)
            distributed.exit_after_failure(1)  # a plain exit aborted 2 times in 8 (gloo threads)
    sys.exit(3)  # never reached: rank 1 stopped


def main() -> None:
    how, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    timeout = float(os.environ.get("DDP_TEST_TIMEOUT_S", "30"))
    dist = distributed.setup("cpu", timeout_s=timeout)
    assert dist.world == 2, dist
    if how == "main":
        job_main(dist, out)
    else:
        job_fault(dist, out, how)
    distributed.teardown(dist)


if __name__ == "__main__":
    main()
