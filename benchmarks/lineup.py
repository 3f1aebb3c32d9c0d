"""The model line-up: one list that checkpoints/recipe.sh (benchmarks/recipe.py: the
shipped runs), benchmarks/zoo.py (the budgeted benchmark) and benchmarks/learning_curves.py
read.

Each entry is a run name, its `python -m genlab train` model options, the CPU minutes
(one thread) the shipped run checkpoints/<name>-<dataset> trains for (None: benchmark
only, not shipped), the datasets it ships on, and how many test images its eval
integrates exactly (2-D latents only). The options never say --epochs or --max-minutes:
the recipe and the benchmarks add them. ``legacy_epochs`` is the fixed epoch count the
runs shipped before the budgeted recipe had (trained with the training options of before
issue 12): a shipped run without recipe.json came from that recipe.

    python benchmarks/lineup.py            # run<TAB>CPU minutes<TAB>options, one per shipped run
    python benchmarks/lineup.py --all      # every entry's name and model options
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from genlab.config import format_value  # noqa: E402
from genlab.models import legacy_values  # noqa: E402


def flags(options: dict) -> list[str]:
    """{"lr_schedule": "constant"} -> ["--lr-schedule", "constant"], values as typed."""
    return [a for k, v in options.items() for a in ("--" + k.replace("_", "-"), format_value(v))]


@dataclass(frozen=True)
class Entry:
    name: str
    options: tuple[str, ...]  # model options for `python -m genlab train`
    budget_min: float | None  # CPU minutes of the shipped run, one thread; None = benchmark only
    note: str = ""
    gpu: bool = False  # an epoch takes far longer than a CPU budget: the zoo skips it on CPU
    datasets: tuple[str, ...] = ("mnist", "fashion-mnist")  # where it ships
    exact_n: int = 1000  # test images whose log p(x) eval integrates (2-D latents only)
    legacy_epochs: int | None = None  # the epochs of the runs shipped before the budgets

    @property
    def model(self) -> str:
        return self.options[self.options.index("--model") + 1]

    def legacy_options(self) -> list[str]:
        """The training options before issue 12 where the entry sets none: the CLI fills
        unset options from the family's defaults, and the old shipped runs predate those."""
        given = set(self.options[::2])
        return flags({k: v for k, v in legacy_values(self.model).items()
                      if "--" + k.replace("_", "-") not in given})

    def legacy_recipe_options(self) -> list[str]:
        """The options of the run shipped before the budgeted recipe (fixed epochs)."""
        return [*self.options, *self.legacy_options(), "--epochs", str(self.legacy_epochs)]


def budget_flags(budget_min: float) -> list[str]:
    """The options the recipe adds to a job's: train until ``budget_min`` minutes of the
    process's CPU time (not wall time: a busy machine then slows a run, not shortens it)."""
    return ["--epochs", "100000", "--max-minutes", f"{budget_min:g}", "--budget-clock", "cpu"]


@dataclass(frozen=True)
class Job:
    """One shipped run of the recipe: checkpoints/<run>."""
    run: str  # <name>-<dataset>
    options: list[str]  # `genlab train` options, --dataset included
    budget_min: float
    exact_n: int

    @property
    def train_options(self) -> list[str]:
        """The whole `genlab train` option list: the job's options and its CPU budget."""
        return [*self.options, *budget_flags(self.budget_min)]


def _e(name: str, options: str, budget_min: float | None, note: str = "", gpu: bool = False, *,
       legacy_epochs: int | None = None, datasets: tuple[str, ...] = ("mnist", "fashion-mnist"),
       exact_n: int = 1000) -> Entry:
    return Entry(name, tuple(options.split()), budget_min, note, gpu, datasets, exact_n, legacy_epochs)


_POSTERIOR_2D = "--latent-dim 2 --hidden 128,128 --n-samples 16"  # the True posterior page's runs
LINEUP: tuple[Entry, ...] = (
    _e("vae-20d", "--model vae --latent-dim 20", 8, "784-512-512-20, 1 stochastic layer",
       legacy_epochs=10),
    _e("vae-2d", "--model vae --latent-dim 2 --hidden 256,256", 3, legacy_epochs=10),
    _e("iwae-k5", "--model vae --latent-dim 20 --iwae-k 5", None, "vae-20d trained on the IWAE bound, k=5"),
    _e("binary-vae", "--model binary-vae --hidden 256,256", 6, legacy_epochs=5),
    _e("ae-gmm", "--model ae-gmm --hidden 256,256", 2, legacy_epochs=5),
    _e("nice", "--model nice --hidden 256,256,256", 8, legacy_epochs=3),
    _e("realnvp", "--model realnvp", 20, legacy_epochs=2),
    _e("vae-flow-decoder", "--model vae-flow-decoder --hidden 256,256", 6, legacy_epochs=3),
    _e("vae-flow-prior", "--model vae-flow-prior --hidden 256,256", 6, legacy_epochs=5),
    _e("vae-planar", "--model vae-flow-posterior --flow planar --num-flows 10 --hidden 256,256", 4,
       legacy_epochs=5),
    _e("vae-realnvp-post", "--model vae-flow-posterior --flow realnvp --num-flows 4 --hidden 256,256", 4,
       legacy_epochs=5),
    _e("gan", "--model gan --lr 2e-4", 5, legacy_epochs=10),
    # class-conditional variants (issue 28): their families' networks and budgets
    _e("cvae", "--model cvae --latent-dim 20", 8, "vae-20d's network, the one-hot label into encoder and decoder"),
    _e("realnvp-cond", "--model realnvp-cond", 20, "realnvp's network, the label into every coupling"),
    _e("cgan", "--model cgan --lr 2e-4", 5, "gan's networks with label embeddings"),
    _e("dcgan", "--model dcgan --lr 2e-4", None, "convolutional GAN; ~18 min an MNIST epoch on "
       "2 CPU cores (50 img/s)", gpu=True),
    # 2-D latents for the True posterior page (MNIST): log p(x) by quadrature on the first
    # exact_n test images (a planar posterior's grid costs ~2 s an image: a bisection per point)
    _e("vae-2d-planar", f"--model vae-flow-posterior --flow planar --num-flows 10 {_POSTERIOR_2D}", 2.5,
       datasets=("mnist",), exact_n=200),
    _e("vae-2d-realnvp-post", f"--model vae-flow-posterior --flow realnvp --num-flows 4 "
       f"--flow-hidden 32,32 {_POSTERIOR_2D}", 2.5, datasets=("mnist",), exact_n=500),
    _e("vae-2d-iwae5", f"--model vae --iwae-k 5 {_POSTERIOR_2D}", 2.5, datasets=("mnist",), exact_n=500),
)
DATASETS = ("mnist", "fashion-mnist")


def by_name(names: str | None = None) -> list[Entry]:
    """Entries named in a comma-separated list (all when None), in line-up order."""
    if not names:
        return list(LINEUP)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {e.name for e in LINEUP}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown line-up entries {', '.join(unknown)}; known: {', '.join(known)}")
    return [e for e in LINEUP if e.name in wanted]


def recipe_jobs(datasets: Sequence[str] = ("mnist", "fashion-mnist")) -> list[Job]:
    """The shipped runs, dataset by dataset in line-up order."""
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise ValueError(f"unknown datasets {', '.join(unknown)}; known: {', '.join(DATASETS)}")
    return [Job(f"{e.name}-{ds}", [*e.options, "--dataset", ds], e.budget_min, e.exact_n)
            for ds in datasets for e in LINEUP if e.budget_min is not None and ds in e.datasets]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Print the model line-up, one entry a line.")
    p.add_argument("--all", action="store_true", help="every entry's name and model options")
    ns = p.parse_args(argv)
    if ns.all:
        for e in LINEUP:
            print(e.name, " ".join(e.options), sep="\t")
        return
    for j in recipe_jobs():
        print(j.run, f"{j.budget_min:g}", " ".join(j.options), sep="\t")


if __name__ == "__main__":
    main()
