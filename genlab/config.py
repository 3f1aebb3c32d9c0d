"""Dataclass configs with their allowed ranges in one place.

Every hyperparameter is a dataclass field whose metadata gives its help text and
bounds (``opt(default, "help", lo=..., hi=..., choices=...)``). The CLI builds its
flags from these fields, the app its bounded widgets, and :func:`from_dict`, the one
parser of config values (config.json, the command line and the Train form all go
through it), rejects a value outside them with one line that says what is allowed.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Callable

from .data import DATASETS
from .device import DEVICES


def opt(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
        lo_open: bool = False, choices: tuple | None = None, cli: bool = True,
        length: int | None = None) -> Any:
    """A config field with help text and allowed values.

    lo/hi bound numbers (and every element of a tuple); ``lo_open`` makes the
    lower bound strict (for learning rates and the like). ``cli=False`` hides fields
    the program sets itself (such as the image shape, which comes from the dataset).
    ``length``: a tuple field of exactly that many values (the optimiser's betas).
    """
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "cli": cli,
            "length": length}
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


def flag(name: str) -> str:
    """The command-line flag of a field (latent_dim -> --latent-dim): how the CLI and the
    Train form both name an option in their messages."""
    return "--" + name.replace("_", "-")


def field_type(cls: type, f: dataclasses.Field) -> Any:
    return typing.get_type_hints(cls)[f.name]


def format_value(v: Any) -> str:
    """A config value as the command line takes it (tuples comma-separated, true/false)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return ",".join(map(str, v))
    return str(v)


def describe(f: dataclasses.Field) -> str:
    """The allowed values of a field, as a short phrase ('>= 1', 'one of a, b')."""
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(map(str, m["choices"]))
    if isinstance(f.default, bool):
        return "true or false"
    lo, hi = m.get("lo"), m.get("hi")
    lo_txt = None if lo is None else ("> " if m.get("lo_open") else ">= ") + f"{lo:g}"
    if lo_txt and hi is not None:
        bounds = f"{lo_txt} and <= {hi:g}"
    else:
        bounds = lo_txt or (f"<= {hi:g}" if hi is not None else "any")
    if m.get("length"):
        return f"{_tuple_kind(f)}, each {bounds}"
    return bounds


_COUNTS = {2: "two", 3: "three", 4: "four"}


def _tuple_kind(f: dataclasses.Field, cls=None) -> str:
    """What a tuple field takes, as a phrase: 'two comma-separated numbers'."""
    n = f.metadata.get("length")
    elem = typing.get_args(field_type(cls, f))[0] if cls is not None else type(
        (f.default_factory() if f.default_factory is not MISSING else f.default)[0])
    what = "whole numbers" if elem is int else "numbers"
    return f"{_COUNTS.get(n, n)} comma-separated {what}" if n else f"comma-separated {what}"


def _check_value(name: str, f: dataclasses.Field, value: Any) -> None:
    m = f.metadata
    values = value if isinstance(value, tuple) else (value,)
    if isinstance(value, tuple) and not value:
        raise ValueError(f"{name} must not be empty")
    if isinstance(value, tuple) and m.get("length") and len(value) != m["length"]:
        raise ValueError(f"{name} must be {describe(f)} (got {len(value)}: "
                         f"{format_value(value)})")
    for v in values:
        if m.get("choices") and v not in m["choices"]:
            raise ValueError(f"{name} must be {describe(f)} (got {v!r})")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be a finite number (got {v})")
        lo, hi = m.get("lo"), m.get("hi")
        too_low = lo is not None and (v <= lo if m.get("lo_open") else v < lo)
        if too_low or (hi is not None and v > hi):
            raise ValueError(f"{name} must be {describe(f)} (got {v:g})")


def validate(cfg: Any, label: Callable[[str], str] = lambda name: name) -> None:
    """Raise ValueError naming the first field outside its allowed values
    (``label`` turns a field name into what the user typed, e.g. a CLI flag)."""
    for f in fields(cfg):
        _check_value(label(f.name), f, getattr(cfg, f.name))


def coerce(cls: type, f: dataclasses.Field, value: Any, label: Callable[[str], str] = str) -> Any:
    """Bring a JSON, command-line or form value to the field's type (lists -> tuples);
    ValueError naming the field as ``label`` spells it and the kind of value it takes."""
    t = field_type(cls, f)
    try:
        return _coerce(t, value)
    except (TypeError, ValueError):
        kind = {int: "a whole number", float: "a number", bool: "true or false"}.get(t, None)
        if typing.get_origin(t) is tuple:
            kind = _tuple_kind(f, cls)
        raise ValueError(f"{label(f.name)} must be {kind or describe(f)} (got {value!r})") from None


def _coerce(t: Any, value: Any) -> Any:
    if typing.get_origin(t) is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        elem = typing.get_args(t)[0]
        return tuple(elem(v) for v in value)
    if t is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(value)
        return value.lower() in ("true", "1", "yes")
    if t in (int, float, str) and not isinstance(value, t):
        if t is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return t(value)
    return value


def from_dict(cls: type, d: dict, *, what: str = "", label: Callable[[str], str] = str) -> Any:
    """The one parser of config values: build a ``cls`` from ``d`` (JSON values, or
    strings as typed), each brought to its field's type and checked against its bounds.

    Raises ValueError with one line per bad value, each ``what`` (where the values come
    from, such as a file), then the field as ``label`` spells it (``flag`` for options a
    user typed) and what it allows. Unknown keys are refused, not ignored."""
    prefix = f"{what}: " if what else ""
    if not isinstance(d, dict):
        raise ValueError(f"{what or 'config'} must be a JSON object, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"{what or 'config'} has fields {cls.__name__} does not know: "
                         f"{', '.join(unknown)}")
    values, errors = {}, []
    for name, v in d.items():  # every value, so that all bad ones are reported at once
        try:
            values[name] = coerce(cls, known[name], v, label)
            _check_value(label(name), known[name], values[name])  # before __post_init__'s checks
        except ValueError as e:
            errors.append(str(e))
    if not errors:
        try:
            cfg = cls(**values)
            validate(cfg, label)
        except ValueError as e:
            errors.append(str(e))
    if errors:
        raise ValueError("\n".join(prefix + e for e in errors)) from None
    return cfg


def to_dict(cfg: Any) -> dict:
    return asdict(cfg)


def defaults(cls: type) -> dict:
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


OPTIMIZERS = ("adam", "adamw", "adamax")
SCHEDULES = ("constant", "cosine", "exponential", "burda")


@dataclass
class OptimConfig:
    """How the weights are updated: optimiser, learning-rate schedule, weight averaging and
    KL warm-up (genlab.training.optim builds them). The defaults are the recipe genlab had before
    these options (Adam, constant lr, no averaging, no warm-up), so a config.json that does
    not name them trains as it did; new runs of the CLI and the Train page get their
    model family's defaults (genlab.models.family_defaults, the papers' settings)."""
    optimizer: str = opt("adam", "optimiser: adam (L2 weight decay added to the gradient), "
                         "adamw (decoupled weight decay) or adamax (infinity-norm Adam); the "
                         "fused step where PyTorch has one for the device, else foreach",
                         choices=OPTIMIZERS)
    betas: tuple[float, ...] = opt((0.9, 0.999), "the optimiser's beta1,beta2 (running "
                                   "averages of the gradient and of its square)", lo=0.0,
                                   hi=0.9999, length=2)
    eps: float = opt(1e-8, "the optimiser's epsilon (added to the root mean square)",
                     lo=0.0, lo_open=True, hi=1.0)
    weight_decay: float = opt(0.0, "weight decay (L2 for adam/adamax, decoupled for adamw)",
                              lo=0.0, hi=1.0)
    lr_schedule: str = opt("constant", "learning rate after the warm-up: constant; cosine "
                           "(to the floor at the last step of --epochs); exponential "
                           "(x lr-gamma per epoch, down to the floor); burda (x 10^(-i/7) "
                           "during epochs 3^i of stage i, i = 0..7, Burda et al. 2016)",
                           choices=SCHEDULES)
    warmup_steps: int = opt(0, "linear learning-rate warm-up: step s < N uses lr * (s+1)/N "
                            "(0 = none)", lo=0, hi=10_000_000)
    lr_floor: float = opt(0.0, "lowest learning rate of the cosine, exponential and burda "
                          "schedules, as a fraction of lr (0.1 = lr/10)", lo=0.0, hi=1.0)
    lr_gamma: float = opt(0.9, "exponential schedule: learning-rate factor per epoch "
                          "(applied continuously, step by step)", lo=0.0, lo_open=True, hi=1.0)
    ema_decay: float = opt(0.0, "exponential moving average (Polyak averaging) of the weights "
                           "with this decay per step; the averaged weights are validated, "
                           "sampled, evaluated and shipped (0 = off)", lo=0.0, hi=0.99999)
    ema_warmup: bool = opt(True, "average with decay min(ema-decay, (1+n)/(10+n)) at the n-th "
                           "update (TensorFlow's ExponentialMovingAverage num_updates rule), so "
                           "early weights are forgotten quickly in short runs")
    kl_warmup_epochs: float = opt(0.0, "KL warm-up (Sonderby et al. 2016): the KL weight rises "
                                  "linearly from 0 to the model's beta over N epochs, step by "
                                  "step (latent models with a beta; 0 = off)", lo=0.0,
                                  hi=100_000.0)

    def __post_init__(self):
        check_optim(self)


def check_optim(cfg: Any) -> None:
    """What a config with the OptimConfig fields must hold beyond the types (the betas are
    a pair, each in range); ValueError naming the field. Called on construction."""
    for f in fields(OptimConfig):
        if f.name == "betas":
            _check_value(f.name, f, tuple(cfg.betas))


TRAIN_KEYS = ("lr", "batch_size", "clip_grad")  # TrainConfig fields a family may set
# (each family's training defaults, from its papers, are its registry entry's:
# genlab.models.family_defaults)


def option_names() -> tuple[str, ...]:
    """The OptimConfig field names (to merge into TrainConfig)."""
    return tuple(f.name for f in fields(OptimConfig))


@dataclass
class _RunConfig:
    dataset: str = opt("mnist", "dataset", choices=tuple(DATASETS))
    epochs: int = opt(20, "number of epochs", lo=1, hi=100000)
    batch_size: int = opt(128, "images per step, summed over the processes under torchrun "
                          "(the global batch)", lo=1, hi=65536)
    lr: float = opt(1e-3, "learning rate (the peak, after any warm-up)", lo=0.0, lo_open=True,
                    hi=1.0)
    seed: int = opt(0, "random seed (weights, batches, noise)", lo=0)
    device: str = opt("auto", "training device: auto picks cuda > mps > cpu", choices=DEVICES)
    clip_grad: float = opt(0.0, "clip the gradient norm to this value (0 = off)", lo=0.0)
    limit: int = opt(0, "use only the first N training images (0 = all)", lo=0)
    log_every: int = opt(50, "steps between training-metric records", lo=1)
    n_samples: int = opt(64, "images in each epoch's sample grid", lo=1, hi=1024)
    max_minutes: float = opt(0.0, "time budget in minutes: stop before an epoch that, going by "
                             "the last epoch's duration, would end past it; the run ends done "
                             "and resumable (0 = no limit)", lo=0.0)
    budget_clock: str = opt("wall", "what max_minutes counts: wall (elapsed time) or cpu (the "
                            "training process's CPU time, steady on a shared machine)",
                            choices=("wall", "cpu"))
    data_root: str = opt("", "dataset folder (default: $GENLAB_DATA, else ./data)")
    precision: str = opt("fp32", "arithmetic of the training steps: bf16 runs each under "
                         "torch.autocast (bfloat16 matrix products, for CUDA; CPU works too); "
                         "weights, optimiser state, validation and eval stay float32",
                         choices=("fp32", "bf16"))
    compile: bool = opt(False, "torch.compile each of the model's networks (Module.compile; "
                        "the first steps wait for the compiler, which needs a C compiler)")


@dataclass
class TrainConfig(OptimConfig, _RunConfig):
    """How a run trains (config.json's "train"): the run's own fields (dataset ... compile),
    then the OptimConfig fields; the model's own options are its config."""
