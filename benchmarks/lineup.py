"""The model line-up: one list that checkpoints/recipe.sh (the shipped runs) and
benchmarks/zoo.py (the budgeted benchmark) both read.

Each entry is a run name, its `python -m genlab train` model options, and the fixed
number of epochs of the shipped run in checkpoints/<name>-<dataset> (None: benchmark
only, not shipped). The options never say --epochs: the recipe adds its fixed count,
the benchmark a large count and --max-minutes.

    python benchmarks/lineup.py            # name<TAB>options --epochs N, one per shipped run
    python benchmarks/lineup.py --all      # every entry, without --epochs
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from genlab.config import format_value  # noqa: E402
from genlab.optim import legacy_values  # noqa: E402


def flags(options: dict) -> list[str]:
    """{"lr_schedule": "constant"} -> ["--lr-schedule", "constant"], values as typed."""
    return [a for k, v in options.items() for a in ("--" + k.replace("_", "-"), format_value(v))]


@dataclass(frozen=True)
class Entry:
    name: str
    options: tuple[str, ...]  # model options for `python -m genlab train`
    recipe_epochs: int | None  # epochs of the shipped run; None = benchmark only
    note: str = ""
    gpu: bool = False  # an epoch takes far longer than a CPU budget: the zoo skips it on CPU

    @property
    def model(self) -> str:
        return self.options[self.options.index("--model") + 1]

    def legacy_options(self) -> list[str]:
        """The training options before issue 12 where the entry sets none: the CLI fills
        unset options from the family's defaults, and the shipped runs predate those."""
        given = set(self.options[::2])
        return flags({k: v for k, v in legacy_values(self.model).items()
                      if "--" + k.replace("_", "-") not in given})

    def recipe_options(self) -> list[str]:
        return [*self.options, *self.legacy_options(), "--epochs", str(self.recipe_epochs)]


def _e(name: str, options: str, recipe_epochs: int | None, note: str = "", gpu: bool = False) -> Entry:
    return Entry(name, tuple(options.split()), recipe_epochs, note, gpu)


LINEUP: tuple[Entry, ...] = (
    _e("vae-20d", "--model vae --latent-dim 20", 10, "784-512-512-20, 1 stochastic layer"),
    _e("vae-2d", "--model vae --latent-dim 2 --hidden 256,256", 10),
    _e("iwae-k5", "--model vae --latent-dim 20 --iwae-k 5", None, "vae-20d trained on the IWAE bound, k=5"),
    _e("binary-vae", "--model binary-vae --hidden 256,256", 5),
    _e("ae-gmm", "--model ae-gmm --hidden 256,256", 5),
    _e("nice", "--model nice --hidden 256,256,256", 3),
    _e("realnvp", "--model realnvp", 2),
    _e("vae-flow-decoder", "--model vae-flow-decoder --hidden 256,256", 3),
    _e("vae-flow-prior", "--model vae-flow-prior --hidden 256,256", 5),
    _e("vae-planar", "--model vae-flow-posterior --flow planar --num-flows 10 --hidden 256,256", 5),
    _e("vae-realnvp-post", "--model vae-flow-posterior --flow realnvp --num-flows 4 --hidden 256,256", 5),
    _e("gan", "--model gan --lr 2e-4", 10),
    _e("dcgan", "--model dcgan --lr 2e-4", None, "convolutional GAN; ~18 min an MNIST epoch on "
       "2 CPU cores (50 img/s)", gpu=True),
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Print the model line-up, one entry a line.")
    p.add_argument("--all", action="store_true",
                   help="every entry, benchmark-only ones too, without --epochs")
    ns = p.parse_args(argv)
    for e in LINEUP:
        if ns.all:
            print(e.name, " ".join(e.options), sep="\t")
        elif e.recipe_epochs is not None:
            print(e.name, " ".join(e.recipe_options()), sep="\t")


if __name__ == "__main__":
    main()
