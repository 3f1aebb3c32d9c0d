"""genlab against its peers, side by side: the same data, the same CPU budget, the same scorer.

    pip install -r benchmarks/requirements-contest.txt     # normflows and pythae, not genlab's
    GENLAB_DATA=../shared/datasets .venv/bin/python benchmarks/contest.py [--budgets flows=20,vaes=8]

Two contests on MNIST, each contender a process of its own on one thread
(OMP_NUM_THREADS=1, torch.set_num_threads(1)), trained until its process has used the
budget's CPU time (user + system, start-up and data loading included); by default the
line-up's budgets of the shipped runs, 20 CPU minutes for the flows and 8 for the VAEs. The
two contenders of a contest run at once, one process each:

- **flows**: genlab's RealNVP (`python -m genlab train`, the line-up's options and its own
  trainer, `--budget-clock cpu`) against normflows' Glow (its ``MultiscaleFlow`` of
  ``GlowBlock`` levels, built to genlab's parameter count, trained with the loop and
  optimiser of normflows' own Glow example: Adamax, ``forward_kld``), both on uniformly
  dequantised pixels in [0, 1]. Scored by bits/dim on the test split: the same
  dequantisation noise (seed 0) for both, from each model's exact log-density.
- **VAEs**: genlab's `vae` (784-512-512-20, Bernoulli, dynamic binarisation; the line-up's
  options) against pythae's ``VAE`` with the same encoder and decoder widths, trained by
  pythae's own ``BaseTrainer`` (its defaults: Adam, lr 1e-3) on dynamically binarised
  images. Scored by the importance-weighted bound (IWAE, k = --k) on the test split
  binarised once (seed 0), from each model's own q(z|x) and p(x|z).

genlab's trainer checks the budget between epochs (it stops before an epoch that would
overrun it), the peers' loops after every step; the table gives the CPU seconds each used.
"images per CPU-second" is training images seen over those seconds. The scoring runs after
training, in the same process, and is not counted.

Writes benchmarks/results/contest.json and contest.md (--out to put them elsewhere).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import torch  # noqa: E402

import lineup  # noqa: E402
from genlab.data import binarize_static, load_split, preprocess  # noqa: E402

CONTESTS = {"flows": ("genlab-realnvp", "normflows-glow"), "vaes": ("genlab-vae", "pythae-vae")}
ENTRY = {"flows": "realnvp", "vaes": "vae-20d"}  # genlab's contender: a line-up entry
METRIC = {"flows": ("bits/dim", "lower"), "vaes": ("IWAE NLL (nats)", "lower")}


def cpu_seconds() -> float:
    """This process's CPU time so far, user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- the scorers: one per contest, the same for both contenders ---------------------------
@torch.no_grad()
def score_flow(log_density, test_x: torch.Tensor, batch: int = 500) -> float:
    """bits/dim of 8-bit images under a density on [0, 1]-scaled pixels: ``log_density(y)``
    (B,) at y = (x + u) / 256, u ~ U[0, 1) drawn once (seed 0). The density of the 8-bit
    pixels is that of y times 256^D, so bits/dim = (-log p(y) / D + log 256) / log 2."""
    g = torch.Generator().manual_seed(0)
    D = test_x[0].numel()
    total = 0.0
    for i in range(0, len(test_x), batch):
        y = preprocess(test_x[i:i + batch], "dequantize", generator=g)
        total += float(-log_density(y).double().sum())
    return (total / len(test_x) / D + math.log(256)) / math.log(2)


@torch.no_grad()
def score_vae(posterior, log_px_z, test_x: torch.Tensor, k: int, batch: int = 100) -> float:
    """-IWAE_k in nats per image, averaged over binarised test images x (B, 1, 28, 28):
    ``posterior(x)`` gives q(z|x)'s mean and log-variance (B, d); ``log_px_z(x, z)`` gives
    log p(x|z) summed over pixels for z (k, B, d) -> (k, B); the prior is N(0, I)."""
    total = 0.0
    for i in range(0, len(test_x), batch):
        x = test_x[i:i + batch]
        mu, logvar = posterior(x)
        std = (0.5 * logvar).exp()
        eps = torch.randn(k, *mu.shape, generator=torch.Generator().manual_seed(i))
        z = mu + std * eps
        normal = -0.5 * (math.log(2 * math.pi) + z.pow(2))
        log_q = (-0.5 * (math.log(2 * math.pi) + eps.pow(2)) - 0.5 * logvar).sum(-1)
        log_w = log_px_z(x, z) + normal.sum(-1) - log_q  # (k, B)
        total += float(-(torch.logsumexp(log_w, 0) - math.log(k)).sum())
    return total / len(test_x)


def bernoulli_ll(x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """log p(x|z) of binary pixels x (B, ...) for probabilities (k, B, ...): (k, B)."""
    p = probs.clamp(1e-7, 1 - 1e-7)
    return (x * p.log() + (1 - x) * (-p).log1p()).flatten(2).sum(-1)


# -- the contenders ------------------------------------------------------------------------
def _entry(name: str) -> lineup.Entry:
    return next(x for x in lineup.LINEUP if x.name == name)


def genlab_params(entry: str) -> int:
    """The parameter count of the line-up entry's model on MNIST, built untrained from its
    model options ("--latent-dim 20": the config's latent_dim, as typed)."""
    import dataclasses

    from genlab.models import build_model, model_entry

    e = _entry(entry)
    known = {f.name for f in dataclasses.fields(model_entry(e.model)[1])}
    values = {k[2:].replace("-", "_"): v for k, v in zip(e.options[::2], e.options[1::2])}
    model = build_model(e.model, {"image_shape": [1, 28, 28], **{k: v for k, v in values.items() if k in known}})
    return sum(p.numel() for p in model.parameters())


def genlab_run(entry: str, budget_min: float, work: Path, root: str) -> tuple[Path, float, int]:
    """Train the line-up's ``entry`` on MNIST with genlab's CLI in a child process;
    its directory, the CPU seconds it used and the training images it saw."""
    e = _entry(entry)
    run = work / entry
    argv = [sys.executable, "-m", "genlab", "train", *e.options, "--dataset", "mnist", "--run-dir",
            str(run), "--data-root", root, "--quiet", *lineup.budget_flags(budget_min)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen(argv, cwd=REPO, env=env)
    _, code, usage = os.wait4(proc.pid, 0)
    if code:
        raise SystemExit(f"{entry}: genlab train failed (exit {code >> 8})")
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()][-1]
    batch = json.loads((run / "config.json").read_text())["train"]["batch_size"]
    return run, usage.ru_utime + usage.ru_stime, int(last["step"]) * batch


def genlab_realnvp(budget_min: float, work: Path, root: str, test: torch.Tensor, _k: int) -> dict:
    from genlab.runs.store import load_model

    run, cpu, images = genlab_run(ENTRY["flows"], budget_min, work, root)
    model = load_model(run)[0].eval()
    return {"cpu_s": cpu, "images": images, "params": sum(p.numel() for p in model.parameters()),
            "score": score_flow(model.log_prob, test)}


def genlab_vae(budget_min: float, work: Path, root: str, test: torch.Tensor, k: int) -> dict:
    from genlab.runs.store import load_model

    run, cpu, images = genlab_run(ENTRY["vaes"], budget_min, work, root)
    model = load_model(run)[0].eval()

    def posterior(x):
        q = model.posterior(x)
        return q.mu, q.logvar

    def log_px_z(x, z):
        return model.log_likelihood(x, z)

    return {"cpu_s": cpu, "images": images, "params": sum(p.numel() for p in model.parameters()),
            "score": score_vae(posterior, log_px_z, test, k)}


def glow(params_goal: int):
    """normflows' multi-scale Glow for 1x28x28 images (two levels of ``GlowBlock``s, each
    level ending in a squeeze, a diagonal Gaussian per level, a logit transform of the
    pixels with alpha 0.05 as genlab's RealNVP), its hidden width the smallest of a ladder
    whose parameter count reaches ``params_goal``."""
    import normflows as nf

    def build(hidden: int, blocks: int):
        levels, q0, flows, merges = 2, [], [], []
        for i in range(levels):
            flows.append([nf.flows.GlowBlock(2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
                          for _ in range(blocks)] + [nf.flows.Squeeze()])
            if i > 0:
                merges.append(nf.flows.Merge())
                shape = (2 ** (levels - i), 28 // 2 ** (levels - i), 28 // 2 ** (levels - i))
            else:
                shape = (2 ** (levels + 1), 28 // 2 ** levels, 28 // 2 ** levels)
            q0.append(nf.distributions.DiagGaussian(shape))
        return nf.MultiscaleFlow(q0, flows, merges, transform=nf.transforms.Logit(alpha=0.05),
                                 class_cond=False)

    for hidden in range(16, 513, 8):
        model = build(hidden, 4)
        if sum(p.numel() for p in model.parameters()) >= params_goal:
            return model
    return model


def normflows_glow(budget_min: float, work: Path, root: str, test: torch.Tensor, _k: int,
                   params_goal: int = 0) -> dict:
    train = load_split("mnist", "train", root).x
    model = glow(params_goal)
    opt = torch.optim.Adamax(model.parameters(), lr=1e-3, weight_decay=1e-5)
    g, images, batch = torch.Generator().manual_seed(0), 0, 128
    budget = budget_min * 60
    while cpu_seconds() < budget:
        for idx in torch.randperm(len(train), generator=g).split(batch):
            loss = model.forward_kld(preprocess(train[idx], "dequantize", generator=g))
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                opt.step()
            images += len(idx)
            if cpu_seconds() >= budget:
                break
    cpu = cpu_seconds()
    model.eval()
    return {"cpu_s": cpu, "images": images, "params": sum(p.numel() for p in model.parameters()),
            "score": score_flow(lambda y: model.log_prob(y, None), test)}


class _StopAtBudget(Exception):
    pass


def pythae_vae(budget_min: float, work: Path, root: str, test: torch.Tensor, k: int) -> dict:
    from pythae.data.datasets import BaseDataset, DatasetOutput
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    class Encoder(BaseEncoder):  # genlab's vae-20d widths: 784-512-512-(20, 20)
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                           torch.nn.Linear(512, 512), torch.nn.ReLU())
            self.mu, self.logvar = torch.nn.Linear(512, 20), torch.nn.Linear(512, 20)

        def forward(self, x):
            h = self.net(x)
            return ModelOutput(embedding=self.mu(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(20, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                           torch.nn.ReLU(), torch.nn.Linear(512, 784), torch.nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).view(len(z), 1, 28, 28))

    class Dynamic(BaseDataset):  # a new binarisation of each image every time it is drawn
        def __getitem__(self, i):
            return DatasetOutput(data=torch.bernoulli(self.data[i]), labels=self.labels[i])

    class Budget(TrainingCallback):
        def on_train_step_end(self, training_config, **kw):
            if cpu_seconds() >= budget_min * 60:
                raise _StopAtBudget

    train = load_split("mnist", "train", root).x.float() / 255
    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce")
    model = VAE(cfg, encoder=Encoder(), decoder=Decoder())
    tcfg = BaseTrainerConfig(output_dir=str(work / "pythae"), num_epochs=100000, learning_rate=1e-3,
                             per_device_train_batch_size=100, steps_saving=None, steps_predict=None,
                             no_cuda=True)
    steps = {"n": 0}

    class Count(TrainingCallback):
        def on_train_step_end(self, training_config, **kw):
            steps["n"] += 1

    trainer = BaseTrainer(model, Dynamic(train, torch.zeros(len(train))), training_config=tcfg,
                          callbacks=[Count(), Budget()])
    try:
        trainer.train()
    except _StopAtBudget:
        pass
    cpu = cpu_seconds()
    net = trainer.model.eval()

    def posterior(x):
        out = net.encoder(x)
        return out.embedding, out.log_covariance

    def log_px_z(x, z):
        probs = net.decoder(z.reshape(-1, z.shape[-1])).reconstruction
        return bernoulli_ll(x, probs.view(*z.shape[:2], *x.shape[1:]))

    return {"cpu_s": cpu, "images": steps["n"] * 100, "params": sum(p.numel() for p in net.parameters()),
            "score": score_vae(posterior, log_px_z, test, k)}


RUNNERS = {"genlab-realnvp": genlab_realnvp, "normflows-glow": normflows_glow,
           "genlab-vae": genlab_vae, "pythae-vae": pythae_vae}


def test_images(contest: str, root: str, n: int) -> torch.Tensor:
    x = load_split("mnist", "test", root, limit=n or None).x
    return (binarize_static(x).float() / 255) if contest == "vaes" else x


def one(name: str, budget_min: float, root: str, n: int, k: int, params_goal: int) -> dict:
    """Run one contender in this process (the parent starts a process per contender)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    contest = next(c for c, names in CONTESTS.items() if name in names)
    test = test_images(contest, root, n)
    with tempfile.TemporaryDirectory() as work:
        extra = {"params_goal": params_goal} if name == "normflows-glow" else {}
        out = RUNNERS[name](budget_min, Path(work), root, test, k, **extra)
    out["images_per_cpu_s"] = out["images"] / out["cpu_s"]
    return out


def child(name: str, budget_min: float, a, params_goal: int = 0) -> subprocess.Popen:
    """Start one contender in a process of its own (its stdout: one JSON line at the end)."""
    argv = [sys.executable, __file__, "--one", name, "--budget-min", f"{budget_min:g}", "--test-n",
            str(a.test_n), "--k", str(a.k), "--params-goal", str(params_goal), "--data-root", a.data_root]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def result_of(name: str, proc: subprocess.Popen) -> dict:
    out = proc.communicate()[0]
    if proc.returncode:
        raise SystemExit(f"{name} failed (exit {proc.returncode}); run it alone with --one {name}")
    return json.loads(out.strip().splitlines()[-1])


def table(results: dict, a) -> list[str]:
    budgets = ", ".join(f"{c} {b:g}" for c, b in a.budgets.items())
    lines = ["| contest | contender | parameters | CPU s | images / CPU s | metric | score |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for contest, rows in results.items():
        for name, r in rows.items():
            lines.append(f"| {contest} | {name} | {r['params']:,} | {r['cpu_s']:.0f} | "
                         f"{r['images_per_cpu_s']:.0f} | {METRIC[contest][0]} | {r['score']:.3f} |")
    return lines + ["", f"Budgets in CPU minutes per contender ({budgets}), one thread each; test split "
                    f"{'full' if not a.test_n else f'first {a.test_n} images'}; IWAE k = {a.k}; "
                    f"{platform.machine()}, load average {os.getloadavg()[0]:.1f} at the end."]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="flows=20,vaes=8",
                    help="CPU minutes per contender, by contest (the contests run in this order)")
    ap.add_argument("--budget-min", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--test-n", type=int, default=0, help="test images scored (0: all)")
    ap.add_argument("--k", type=int, default=200, help="importance samples of the VAEs' bound")
    ap.add_argument("--data-root", default=os.environ.get("GENLAB_DATA", "data"))
    ap.add_argument("--out", default=str(BENCH / "results" / "contest"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--params-goal", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.data_root = str(Path(a.data_root).resolve())
    if a.one:
        print(json.dumps(one(a.one, a.budget_min, a.data_root, a.test_n, a.k, a.params_goal)))
        return 0
    a.budgets = {c: float(b) for c, b in (kv.split("=") for kv in a.budgets.split(","))}
    results, t0 = {}, time.time()
    for contest, budget in a.budgets.items():
        ours, theirs = CONTESTS[contest]
        procs = {ours: child(ours, budget, a), theirs: child(theirs, budget, a, genlab_params(ENTRY[contest]))}
        results[contest] = {name: result_of(name, p) for name, p in procs.items()}
        print(contest, results[contest], flush=True)
        write(Path(a.out), results, a, t0)  # after each contest: a stop keeps the finished ones
    print("\n".join(table(results, a)))
    return 0


def write(out: Path, results: dict, a, t0: float) -> None:
    meta = {"budgets_min": a.budgets, "test_n": a.test_n, "k": a.k, "machine": platform.machine(),
            "load_avg_end": round(os.getloadavg()[0], 2), "wall_s": round(time.time() - t0)}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    out.with_suffix(".md").write_text("\n".join(table(results, a)) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
