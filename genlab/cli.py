"""``python -m genlab train | resume | eval | ship | sample``.

Model options are built from the config dataclasses in the registry, so ``--help``
lists every option of every model with its default and allowed values, and an
option given to a model that does not have it is an error rather than ignored.
Bad arguments give one line on stderr and exit code 2; they are parsed by
:func:`genlab.runs.store.new_config`, as the Train page's are, so both say the same.

A new run's training options that the command line does not set take the model
family's defaults (its registry entry: genlab.models.family_defaults, filled in by
store.new_config: the papers' optimiser, learning rate, schedule, batch size...; ``--help``
lists them with their sources), and config.json records the values used; the Train page
starts from the same. A family added with genlab.models.register before :func:`main` runs
is a family of the CLI like any other.

``train --run-dir DIR`` without ``--model`` trains the run whose config.json is in DIR
and that has not started yet: how the app starts the runs it configured.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from .config import TrainConfig, defaults, describe, flag, format_value
from .data import DatasetError
from .device import DEVICES, pick_device
from .distributed import DistributedError, exit_after_failure, is_main_process, on_main
from .errors import first_line
from .evaluation.fid import FID_FEATURES
from .evaluation.metrics import eval_lines, evaluate_run
from .models import FAMILIES, MODELS, family_defaults
from .runs import store
from .runs.status import continue_root, read_only
from .training.loop import TrainingFailed, save_sample_grid
from .training.train import train_run

EXIT_USAGE = 2


class NameKeepingFormatter(argparse.HelpFormatter):
    """argparse's help wrapped at spaces only: a family name such as ``vae-flow-prior``
    never breaks at its hyphens (textwrap's default), so it reads and searches whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line (no usage block) and exits 2; its
    help wraps at spaces only (:class:`NameKeepingFormatter`)."""

    def __init__(self, *args, **kw) -> None:
        kw.setdefault("formatter_class", NameKeepingFormatter)
        super().__init__(*args, **kw)

    def error(self, message: str) -> NoReturn:  # noqa: D102
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _cli_fields(cls):
    return [f for f in fields(cls) if f.metadata.get("cli", True)]


def _model_options() -> dict[str, dict]:
    """Every model-config field, with the models that have it and their defaults."""
    opts: dict[str, dict] = {}
    for name, (_, cfg_cls) in MODELS.items():
        values = defaults(cfg_cls)
        for f in _cli_fields(cfg_cls):
            o = opts.setdefault(f.name, {"field": f, "models": {}})
            o["models"][name] = values[f.name]
    return opts


def _family_values(name: str) -> str:
    """The models whose family default for training option ``name`` differs from
    TrainConfig's, grouped by value: 'vae, binary-vae: 20; nice: 200'."""
    by_value: dict[str, list[str]] = {}
    plain = format_value(defaults(TrainConfig)[name])
    for model in MODELS:
        v = family_defaults(model).get(name)
        if v is not None and format_value(v) != plain:
            by_value.setdefault(format_value(v), []).append(model)
    return "".join(f"{', '.join(ms)}: {v}; " for v, ms in by_value.items())


def _add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (unset options take the model family's default: "
                             "the values named per model, from the sources listed at the end)")
    values = defaults(TrainConfig)
    for f in _cli_fields(TrainConfig):
        if f.name == "dataset":
            continue
        g.add_argument(flag(f.name), dest=f"train.{f.name}", default=None, metavar="V",
                       help=f"{f.metadata['help']} [default: {format_value(values[f.name])}; "
                            f"{_family_values(f.name)}{describe(f)}]")


def _sources_epilog() -> str:
    """Where each family's training defaults come from, for ``train --help``."""
    by_sources: dict[tuple[str, ...], list[str]] = {}
    for name, fam in FAMILIES.items():
        by_sources.setdefault(fam.sources, []).append(name)
    lines = [f"{', '.join(names)}: " + " ".join(sources) for sources, names in by_sources.items()
             if sources]
    return "training defaults per model family, and their sources: " + " | ".join(lines)




def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="genlab", description="Train, resume and evaluate genlab models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    t = sub.add_parser("train", help="train a model; prints where the run was written",
                       epilog=_sources_epilog())
    t.add_argument("--model", help=f"one of {', '.join(MODELS)}")
    t.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist or svhn [default: mnist]")
    where = t.add_mutually_exclusive_group()
    where.add_argument("--run-dir", help="write the run here (must not hold a run yet)")
    where.add_argument("--runs-dir", default="runs", help="folder for a new run [default: runs]")
    t.add_argument("--name", help="run name under --runs-dir [default: MODEL-DATASET-TIME]")
    _add_train_options(t)
    g = t.add_argument_group("model options (each applies to the models named)")
    for name, o in _model_options().items():
        f = o["field"]
        defaults = "; ".join(f"{m}: {format_value(v)}" for m, v in o["models"].items())
        g.add_argument(flag(name), dest=f"model.{name}", default=None, metavar="V",
                       help=f"{f.metadata['help']} [{defaults}; {describe(f)}]")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("resume", help="continue a run from its last completed epoch")
    r.add_argument("run_dir")
    r.add_argument("--epochs", type=int, help="train until this many epochs in all [default: as configured]")
    r.add_argument("--max-minutes", type=float, help="train at most this many more minutes, "
                   "stopping between epochs [default: as configured; 0: no limit]")
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("ship", help="copy a finished run to DEST compactly (no optimiser state, "
                       "float16 weights), as checkpoints/ holds them")
    s.add_argument("run_dir")
    s.add_argument("dest")

    e = sub.add_parser("eval", help="evaluate a run on the test split and write eval.json")
    e.add_argument("run_dir")
    e.add_argument("--k", type=int, default=1, help="importance samples for log p(x) of latent models "
                   "[default: 1; 1..5000]")
    e.add_argument("--split", default="test", choices=("val", "test"), help="[default: test]")
    e.add_argument("--data-root", default=None, help="dataset folder [default: as trained]")
    e.add_argument("--device", default="auto", choices=DEVICES)
    e.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    e.add_argument("--fid-n", type=int, default=10000, help="model samples scored by FID against "
                   "the split [default: 10000; 0 skips]")
    e.add_argument("--fid-features", default="genlab", choices=FID_FEATURES, help="FID's feature "
                   "space: genlab's own classifier of the dataset (not comparable with papers), "
                   "or Inception-v3 with torchvision's ImageNet weights from torch's hub cache "
                   "(downloaded once by torchvision while online; close to, not the same as, the "
                   "papers' TF-Inception FID; slow on a CPU: lower --fid-n) [default: genlab]")
    e.add_argument("--exact-n", type=int, default=None, help="2-D-latent VAEs: log p(x) by "
                   "quadrature on the first N images [default: all; 0 skips]")
    e.add_argument("--quiet", action="store_true", help="no progress bar")

    m = sub.add_parser("sample", help="draw N images from a run's model at a temperature "
                       "and write them as one PNG grid")
    m.add_argument("run_dir")
    m.add_argument("--n", type=int, default=64, help=f"images [default: 64; 1..{MAX_SAMPLES}]")
    m.add_argument("--temperature", type=float, default=None, help="prior temperature T: flows "
                   "and Gaussian latents draw z ~ N(0, T^2 I), other priors are scaled the same "
                   "way, the GAN truncates its noise to std T (T <= 1) [default: the family's: "
                   "0.7 for flows, else 1; > 0]")
    m.add_argument("--out", required=True, help="the PNG to write (not inside a shipped run)")
    m.add_argument("--seed", type=int, default=0, help="[default: 0]")
    m.add_argument("--device", default="auto", choices=DEVICES)

    b = sub.add_parser("export-tensorboard", help="write TensorBoard event files for a run that "
                       "has none (a shipped one, or one from before they were written) from its "
                       "metrics.jsonl, samples/ and config.json; the run is only read")
    b.add_argument("run_dir")
    b.add_argument("--out", help="folder for the event file, outside checkpoints/ [default: the "
                   "run's own folder; for a shipped run, runs/tensorboard/NAME]")
    return p


MAX_SAMPLES = 1024


def _collect(ns: argparse.Namespace, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in vars(ns).items() if k.startswith(prefix) and v is not None}


def parse_train(ns: argparse.Namespace) -> store.RunConfig:
    """The config of the run that parsed train arguments ask for; ValueError with one
    line per invalid option."""
    return store.new_config(ns.model, ns.dataset, _collect(ns, "model."), _collect(ns, "train."))


def cmd_train(ns: argparse.Namespace) -> int:
    if ns.model is None:
        return _train_configured(ns)
    try:
        rc = parse_train(ns)
    except (TypeError, ValueError) as e:  # every bad option, one line each
        for line in str(e).strip().splitlines() or ["unknown error"]:
            print(f"genlab train: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    def create() -> Path:
        if ns.run_dir:
            run_dir = store.claim_run_dir(ns.run_dir)
        else:
            name = ns.name or store.default_run_name(rc.model, rc.train.dataset)
            run_dir = store.new_run_dir(ns.runs_dir, name)
        store.write_config(run_dir, rc.model, rc.model_config, rc.train, exclusive=True)
        return run_dir
    try:  # under torchrun rank 0 creates the run, the other processes are told where
        run_dir = on_main(create, rc.train.device)
    except (store.RunError, OSError, ValueError, DistributedError) as e:
        print(f"genlab train: error: cannot create the run: {first_line(e)}", file=sys.stderr)
        return 1
    if is_main_process():  # under torchrun: said once, not by every process
        print(f"run directory: {run_dir}", flush=True)
    return _run(lambda: train_run(run_dir, progress=not ns.quiet), run_dir)


def _train_configured(ns) -> int:
    """``train --run-dir DIR`` with no --model: the run configured in DIR, not started yet."""
    given = list(map(flag, {**_collect(ns, "model."), **_collect(ns, "train.")}))
    run_dir = Path(ns.run_dir) if ns.run_dir else None
    why = None
    if run_dir is None or not (run_dir / store.CONFIG).exists():
        why = "the following arguments are required: --model (or --run-dir of a configured run)"
    elif given:
        why = (f"{given[0]}: a configured run trains as {run_dir / store.CONFIG} says; "
               "give --model to configure a new one")
    elif on_main(lambda: (run_dir / store.STATUS).exists() or (run_dir / store.CHECKPOINT).exists(),
                 _device_of(run_dir)):
        why = (f"{run_dir} has been started already; resume it with "
               f"`python -m genlab resume {run_dir}`")
    if why:
        print(f"genlab train: error: {why}", file=sys.stderr)
        return EXIT_USAGE
    if is_main_process():  # under torchrun: said once, not by every process
        print(f"run directory: {run_dir}", flush=True)
    return _run(lambda: train_run(run_dir, progress=not ns.quiet), run_dir)


def cmd_resume(ns: argparse.Namespace) -> int:
    if ns.epochs is not None and ns.epochs < 1:
        print("genlab resume: error: --epochs must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    if ns.max_minutes is not None and not (math.isfinite(ns.max_minutes) and ns.max_minutes >= 0):
        print(f"genlab resume: error: --max-minutes must be a number >= 0 (0: no limit; got "
              f"{ns.max_minutes:g})", file=sys.stderr)
        return EXIT_USAGE
    run_dir = Path(ns.run_dir)
    if (run_dir / store.CONFIG).exists() and read_only(run_dir):  # a shipped run: train a copy
        shipped = run_dir  # under torchrun rank 0 makes the one copy
        run_dir = on_main(lambda: store.copy_for_resume(shipped, continue_root(shipped)), _device_of(shipped))
        print(f"{ns.run_dir} is a shipped run (read-only): continuing in a copy, {run_dir}", flush=True)
    return _run(lambda: train_run(run_dir, resume=True, epochs=ns.epochs, max_minutes=ns.max_minutes,
                                  progress=not ns.quiet), run_dir)


def _device_of(run_dir: Path) -> str:
    """The device a run's config.json asks for (where a torchrun launch joins before training)."""
    return (store.read_json(run_dir / store.CONFIG) or {}).get("train", {}).get("device", "auto")


def _run(fn, run_dir: Path) -> int:
    """Run a training call; faults become one line on stderr (status.json has it too)."""
    try:
        status = fn()
    except (DatasetError, store.RunError, TrainingFailed, ValueError, OSError) as e:
        print(f"genlab: error: {first_line(e)}", file=sys.stderr)
        return 1
    except DistributedError as e:  # a lost torchrun process: end now, never hang at exit
        print(f"genlab: error: {first_line(e)}", file=sys.stderr)
        exit_after_failure(1)
    state = status.get("state")
    if is_main_process():  # under torchrun rank 0 reports for every process
        print(f"{state}: epoch {status.get('epoch')}, run written to {run_dir}"
              + (f" ({status['message']})" if status.get("message") else ""))
    return 0 if state in ("done", "stopped") else 1


def cmd_eval(ns: argparse.Namespace) -> int:
    if not 1 <= ns.k <= 5000:
        print(f"genlab eval: error: --k must be between 1 and 5000 (got {ns.k})", file=sys.stderr)
        return EXIT_USAGE
    try:
        res = evaluate_run(ns.run_dir, k=ns.k, split=ns.split, data_root=ns.data_root,
                           device=ns.device, limit=ns.limit, progress=not ns.quiet,
                           fid_n=max(ns.fid_n, 0), exact_n=ns.exact_n, fid_features=ns.fid_features,
                           command=shlex.join(["python", "-m", "genlab", *ns.argv]))
    except (DatasetError, store.RunError, ValueError, OSError) as e:
        print(f"genlab eval: error: {first_line(e)}", file=sys.stderr)
        return 1
    except DistributedError as e:  # a lost torchrun process: end now, never hang at exit
        print(f"genlab eval: error: {first_line(e)}", file=sys.stderr)
        exit_after_failure(1)
    if not res:  # another process of a torchrun launch: rank 0 writes and reports
        return 0
    for key, v in res.items():
        if isinstance(v, list):
            v = f"{len(v)} values (in eval.json)"
        print(f"{key:>14}: {v:.4f}" if isinstance(v, float) else f"{key:>14}: {v}")
    for line in eval_lines(res):
        print(line)
    print(f"written to {Path(ns.run_dir) / 'eval.json'}")
    return 0


def cmd_ship(ns: argparse.Namespace) -> int:
    try:
        dst = store.ship_run(ns.run_dir, ns.dest)
    except (store.RunError, OSError, ValueError) as e:
        print(f"genlab ship: error: {first_line(e)}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    print(f"shipped {ns.run_dir} -> {dst} ({size / 1e6:.2f} MB)")
    return 0


def _sample_target(out: Path) -> str | None:
    """Why ``out`` may not be written, or None: a PNG, outside every shipped run."""
    if out.suffix.lower() != ".png":
        return f"--out must name a .png file (got {out})"
    for folder in out.resolve().parents:
        if (folder / store.CONFIG).exists() and read_only(folder):
            return f"--out {out} is inside the shipped run {folder} (read-only); write it elsewhere"
    return None


def cmd_sample(ns: argparse.Namespace) -> int:
    def usage(msg: str) -> int:
        print(f"genlab sample: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= ns.n <= MAX_SAMPLES:
        return usage(f"--n must be >= 1 and <= {MAX_SAMPLES} (got {ns.n})")
    t = ns.temperature
    if t is not None and not (math.isfinite(t) and t > 0):
        return usage(f"--temperature must be a number > 0 (got {t:g})")
    out = Path(ns.out)
    why = _sample_target(out)
    if why:
        return usage(why)
    try:
        model, _, _ = store.load_model(ns.run_dir, map_location=pick_device(ns.device))
    except (store.RunError, ValueError, OSError) as e:
        print(f"genlab sample: error: {first_line(e)}", file=sys.stderr)
        return 1
    t = (model.caps.temperature or 1.0) if t is None else t
    try:
        model.check_temperature(t)
        save_sample_grid(model, out, ns.n, ns.seed, temperature=t)
    except ValueError as e:  # a temperature this model cannot sample at
        return usage(first_line(e))
    except OSError as e:
        print(f"genlab sample: error: cannot write {out}: {first_line(e)}", file=sys.stderr)
        return 1
    print(f"{ns.n} samples of {ns.run_dir} at temperature {t:g} written to {out}")
    return 0


def cmd_export_tensorboard(ns: argparse.Namespace) -> int:
    from .training import tensorboard_log

    try:
        res = tensorboard_log.export(ns.run_dir, ns.out)
    except tensorboard_log.ExportError as e:
        print(f"genlab export-tensorboard: error: {first_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (store.RunError, OSError, ValueError, ImportError) as e:
        print(f"genlab export-tensorboard: error: {first_line(e)}", file=sys.stderr)
        return 1
    print(f"{sum(res['scalars'].values())} points of {len(res['scalars'])} scalars, "
          f"{res['images']} sample grids and {res['hparams']} hyperparameters written to "
          f"{res['path']}; view them with `tensorboard --logdir {res['path'].parent}`")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ns = build_parser().parse_args(argv)
    ns.argv = argv  # what eval.json records as its command
    commands = {"train": cmd_train, "resume": cmd_resume, "eval": cmd_eval, "ship": cmd_ship,
                "sample": cmd_sample, "export-tensorboard": cmd_export_tensorboard}
    return commands[ns.command](ns)
