"""Run directories: create, list, load and resume; every write is atomic.

A run directory holds
    config.json     model name, model config, training config (all to rebuild the model)
    status.json     state (running / done / stopped / failed), progress, message, pid
    metrics.jsonl   one JSON object per line, flushed as written
    checkpoint.pt   model + optimisers + epoch, written to a temp file and renamed
    samples/epoch_NNN.png, and samples/t<T>/epoch_NNN.png at the family's temperature T
    eval.json       written by ``python -m genlab eval``
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig, flag, from_dict, to_dict
from ..data import DATASETS, dataset_info
from ..errors import first_line
from ..models import (MODELS, GenerativeModel, build_model, family_defaults, model_entry,
                      upgrade_config)

CONFIG, STATUS, METRICS, CHECKPOINT, EVAL = (
    "config.json", "status.json", "metrics.jsonl", "checkpoint.pt", "eval.json")


# checkpoint entries only a resume needs (shipping leaves them out): the optimisers' state,
# the live weights beside the averaged "model", the lr schedule / weight average and,
# after a stop mid-epoch, where in the epoch it stopped
RESUME_ONLY = ("optimizers", "live_model", "schedule", "position")


class RunError(RuntimeError):
    """A run directory, checkpoint or config that cannot be used; the message says why."""


# -- atomic writes --------------------------------------------------------------
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``:
    a crash or a full disk never leaves a half-written file under the real name."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # folder missing, not writable, or full
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise


def _write_error(path: Path, e: OSError) -> OSError:
    """The same OSError (errno kept), with a message that names the file being written."""
    err = type(e)(f"cannot write {path}: {e.strerror or str(e) or type(e).__name__}")
    err.errno = e.errno  # kept for callers, left out of the message
    return err


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``: it can never run code.

    Raises RunError naming the file for a missing, empty, truncated, foreign or
    code-carrying checkpoint."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no checkpoint (the run has not finished an epoch yet)")
    if path.stat().st_size == 0:
        raise RunError(f"{path}: checkpoint file is empty")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut one has no directory
        raise RunError(f"{path}: not a readable checkpoint (not a complete torch.save archive: "
                       "truncated or corrupt)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "WeightsUnpickler error" in ln]
        why = lines[0].split("error:", 1)[1].split(". ")[0].strip() if lines else type(e).__name__
        raise RunError(f"{path}: refused to load: the checkpoint holds objects that are not "
                       f"plain tensors and containers ({why[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise RunError(f"{path}: not a readable checkpoint (truncated or corrupt: "
                       f"{first_line(e, 160)})") from None
    if not isinstance(ckpt, dict) or not {"kind", "model", "config"} <= set(ckpt):
        raise RunError(f"{path}: not a genlab checkpoint (expected a dict with kind, model, config)")
    return ckpt


# -- metrics --------------------------------------------------------------------
class MetricsWriter:
    """Append JSON lines, flushed at once so other processes can tail the file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._repair_torn_tail()
        self.f = open(self.path, "a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        """A process killed mid-write can leave a last line without its newline;
        cut it off so appended lines stay valid JSON lines."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)

    def write(self, record: dict) -> None:
        try:
            self.f.write(json.dumps(record) + "\n")
            self.f.flush()
        except OSError as e:  # a full disk: the torn line is cut off on the next open
            raise _write_error(self.path, e) from None

    def close(self) -> None:
        self.f.close()


def read_metrics(path: str | os.PathLike) -> tuple[list[dict], int]:
    """All records of a metrics.jsonl and the number of unreadable lines skipped
    (a torn last line from a killed process, for instance)."""
    records, bad = [], 0
    path = Path(path)
    if not path.exists():
        return records, 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            bad += 1
    return records, bad


# -- run directories ------------------------------------------------------------
def new_run_dir(runs_root: str | os.PathLike, name: str) -> Path:
    """Create a fresh run directory; two trainings never get the same one (mkdir is
    atomic, so a name already taken gets a numbered suffix)."""
    root = Path(runs_root)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        path = root / (name if i == 0 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"could not find a free run name like {name!r} in {root}")


def claim_run_dir(path: str | os.PathLike) -> Path:
    """Use an explicit run directory; refuse one that already holds a run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        if (path / CONFIG).exists() or (path / CHECKPOINT).exists():
            raise RunError(f"{path} already holds a run; resume it with "
                           f"`python -m genlab resume {path}` or choose another --run-dir") from None
    return path


def default_run_name(model: str, dataset: str) -> str:
    return f"{model}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_status(run_dir: str | os.PathLike, **fields: object) -> dict:
    """Merge ``fields`` into status.json (atomic) and return the new status."""
    path = Path(run_dir) / STATUS
    status = read_json(path) or {}
    status.update(fields, updated=time.time())
    atomic_write_json(path, status)
    return status


def read_json(path: str | os.PathLike) -> dict | None:
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


@dataclass
class RunConfig:
    """What config.json holds: enough to rebuild the model and repeat the training."""
    model: str  # the registry name
    model_config: Any  # the model's config dataclass
    train: TrainConfig


def new_config(model: str, dataset: str, model_values: dict, train_values: dict) -> RunConfig:
    """The config of a new run from the options a user gave, as typed (command-line
    strings) or as a form holds them: the one parse of both ``python -m genlab train``
    and the Train page, so both word each error the same, in command-line flags.
    The image shape comes from the dataset; a training option not given takes the model
    family's default (genlab.models.family_defaults). Raises ValueError with one line per
    bad value, all of them at once."""
    _, cfg_cls = model_entry(model)
    info = dataset_info(dataset)
    allowed = [f.name for f in dataclasses.fields(cfg_cls) if f.metadata.get("cli", True)]
    errors = [f"{flag(n)} does not apply to model {model}; its options: " + ", ".join(map(flag, allowed))
              for n in model_values if n not in allowed]
    errors += [f"{flag(n)} is not a training option; they are: "
               + ", ".join(flag(n) for n in _TRAIN_FIELDS if n != "dataset")
               for n in train_values if n == "dataset" or n not in _TRAIN_FIELDS]
    model_values = {k: v for k, v in model_values.items() if k in allowed}
    train_values = {**family_defaults(model), **{  # unset: the family's (issue 12)
        k: v for k, v in train_values.items() if k != "dataset" and k in _TRAIN_FIELDS}}
    cls = model_entry(model)[0]
    model_cfg = _parsed(errors, cfg_cls, {**model_values, **cls.dataset_options(info)})
    train = _parsed(errors, TrainConfig, {**train_values, "dataset": dataset})
    if train and train.kl_warmup_epochs and not cls.caps.kl_warmup:
        have = [m for m, (c, _) in MODELS.items() if c.caps.kl_warmup]
        errors.append(f"{flag('kl_warmup_epochs')} applies to models with a weighted KL term "
                      f"({', '.join(have)}); {model} has none: leave it 0")
    if errors:
        raise ValueError("\n".join(errors))
    return RunConfig(model, model_cfg, train)


def _parsed(errors: list[str], cls, values: dict):
    """from_dict's config, or None with its error lines added to ``errors``."""
    try:
        return from_dict(cls, values, label=flag)
    except ValueError as e:
        errors += str(e).splitlines()
        return None


_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def write_config(run_dir: str | os.PathLike, model: str, model_cfg: Any, train_cfg: TrainConfig, *,
                 exclusive: bool = False) -> None:
    """Write config.json. ``exclusive``: only if the folder holds none yet (a hard link
    of the finished file, which fails when the name exists), so of two trainings given
    the same --run-dir at once exactly one gets it; the other gets a RunError."""
    path = Path(run_dir) / CONFIG
    obj = {"model": model, "model_config": to_dict(model_cfg), "train": to_dict(train_cfg)}
    if not exclusive:
        return atomic_write_json(path, obj)
    tmp = path.with_name(f".{CONFIG}.{os.getpid()}.{threading.get_ident()}.tmp")
    atomic_write_json(tmp, obj)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: create-exclusive, then write
            with open(path, "xb") as f:
                f.write(tmp.read_bytes())
    except FileExistsError:
        raise RunError(f"{path.parent} already holds a run (another training claimed it); "
                       "choose another --run-dir") from None
    except OSError as e:
        raise _write_error(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)


def read_config_dict(run_dir: str | os.PathLike) -> dict:
    """config.json as written, after the checks that need no model: its keys, a known
    model and dataset. For listings, which show a run whose values no longer fit (and say
    why when it is opened); to build or train, :func:`read_config`."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise RunError(f"{path}: missing; {run_dir} is not a genlab run directory")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict) or not {"model", "model_config", "train"} <= set(raw):
        raise RunError(f"{path}: expected keys model, model_config, train")
    for key in ("model_config", "train"):
        if not isinstance(raw[key], dict):
            raise RunError(f"{path}: {key} must be a JSON object (got {type(raw[key]).__name__})")
    if raw["train"].get("dataset") not in DATASETS:
        raise RunError(f"{path}: train.dataset must be one of {', '.join(DATASETS)} "
                       f"(got {raw['train'].get('dataset')!r})")
    try:
        model_entry(raw["model"])
    except ValueError as e:
        raise RunError(f"{path}: {e}") from None
    return raw


def read_config(run_dir: str | os.PathLike) -> RunConfig:
    """config.json parsed: the model's config and the training config, each checked
    against its fields' bounds; a RunError naming the file and the value otherwise."""
    path = Path(run_dir) / CONFIG
    raw = read_config_dict(run_dir)
    try:
        model_values, train_values = upgrade_config(raw["model"], raw["model_config"], raw["train"])
    except ValueError as e:
        raise RunError(f"{path}: {e}") from None
    try:
        model_cfg = from_dict(model_entry(raw["model"])[1], model_values,
                              what=f"{path} model_config")
        train = from_dict(TrainConfig, train_values, what=f"{path} train")
    except ValueError as e:
        raise RunError(str(e)) from None
    return RunConfig(raw["model"], model_cfg, train)


def build_run_model(rc: RunConfig, run_dir: str | os.PathLike) -> GenerativeModel:
    """A fresh (untrained) model as the run's config describes it; a RunError naming
    config.json when the architecture cannot take those values."""
    try:
        return model_entry(rc.model)[0](rc.model_config)
    except (TypeError, ValueError) as e:
        raise RunError(f"{Path(run_dir) / CONFIG}: {e}") from None


def load_model(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[GenerativeModel, dict, RunConfig]:
    """Rebuild a run's model from config.json and checkpoint.pt (weights_only)."""
    run_dir = Path(run_dir)
    rc = read_config(run_dir)
    model = build_run_model(rc, run_dir)
    ckpt = load_checkpoint(run_dir / CHECKPOINT, map_location=map_location)
    if ckpt["kind"] != rc.model:
        raise RunError(f"{run_dir / CHECKPOINT}: holds a {ckpt['kind']!r} model but config.json "
                       f"says {rc.model!r}")
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        # torch's first line is a heading ("Error(s) in loading state_dict for VAE:"); the
        # next one says what differs (a missing key, a size mismatch)
        why = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
        raise RunError(f"{run_dir / CHECKPOINT}: weights do not fit the model in config.json "
                       f"({why[:200]})") from None
    model.eval()
    return model.to(map_location), ckpt, rc


def find_runs(*roots: str | os.PathLike) -> list[Path]:
    """Run directories (holding config.json) directly under each root, newest first; a
    hidden folder (a copy being made: :func:`copy_for_resume`) is none."""
    found = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            found += [p for p in root.iterdir() if not p.name.startswith(".") and (p / CONFIG).exists()]
    return sorted(found, key=lambda p: (p / CONFIG).stat().st_mtime, reverse=True)


def sample_grid(run_dir: str | os.PathLike, epoch: int, temperature: float = 1.0) -> Path:
    """Where fit writes an epoch's sample grid: samples/epoch_NNN.png at temperature 1,
    samples/t<T>/epoch_NNN.png at another (samples/t0.7/epoch_003.png)."""
    name = f"epoch_{epoch:03d}.png"
    folder = Path(run_dir) / "samples"
    return folder / name if temperature == 1.0 else folder / f"t{temperature:g}" / name


def latest_sample(run_dir: str | os.PathLike) -> Path | None:
    samples = sorted((Path(run_dir) / "samples").glob("epoch_*.png"))
    return samples[-1] if samples else None


def truncate_metrics(path: str | os.PathLike, epoch: int, *, step: int | None = None) -> int:
    """Before a resume: keep only records of completed epochs (<= epoch) and, given the
    checkpoint's ``step`` (a stop mid-epoch), the next epoch's step records up to it,
    dropping what a killed process wrote after its checkpoint and any torn line. Returns
    lines dropped."""
    path = Path(path)
    records, bad = read_metrics(path)
    keep = [r for r in records if int(r.get("epoch", 0)) <= epoch or (
        step is not None and r.get("event") == "step" and int(r.get("epoch", 0)) == epoch + 1
        and int(r.get("step", step + 1)) <= step)]
    dropped = len(records) - len(keep) + bad
    if dropped:
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in keep).encode())
    return dropped


def copy_for_resume(src: str | os.PathLike, runs_root: str | os.PathLike) -> Path:
    """Copy a read-only run (a shipped one) into ``runs_root`` to continue training there:
    a new folder ``<name>-continued`` (``-1``, ``-2``, ... when taken) holding its config,
    metrics, checkpoint, samples and eval, without the app's job and log files; its
    status.json says where it came from. ``src`` is only read.

    The copy is made in a hidden folder beside it and renamed into place when whole, so a
    write that fails (a full disk) leaves nothing: an OSError naming the file (errno kept),
    and no half copy with a truncated checkpoint to be listed as a run."""
    src = Path(src)
    dst = new_run_dir(runs_root, f"{src.name}-continued")
    tmp, where = None, dst  # where: the file being written, named in an error
    try:
        tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp"))
        tmp.chmod(dst.stat().st_mode & 0o7777)  # mkdtemp's is 0o700: the run's own mode
        for f in sorted(src.rglob("*")):  # a folder before what it holds
            rel = f.relative_to(src)
            if rel.parts[0] in ("job.json", "train.log", "eval.log") or rel.parts[0].startswith("."):
                continue
            where = dst / rel
            if f.is_dir():
                (tmp / rel).mkdir()
            else:
                shutil.copy2(f, tmp / rel)
        where = dst / STATUS
        status = read_json(tmp / STATUS) or {}
        status.pop("shipped_from", None)
        (tmp / STATUS).write_text(json.dumps({**status, "continued_from": str(src)}, indent=2) + "\n",
                                  encoding="utf-8")  # in the hidden folder: renamed whole
        os.replace(tmp, dst)  # onto the empty folder new_run_dir claimed
    except BaseException as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        try:
            dst.rmdir()
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _write_error(where, e) from None
        raise
    return dst


SHIPPED_STEP_RECORDS = 200  # step records a shipped metrics.jsonl keeps (curves stay smooth; 60 MB)


def compact_metrics(src: str | os.PathLike, dst: str | os.PathLike,
                    max_steps: int = SHIPPED_STEP_RECORDS) -> int:
    """Write ``src``'s records to ``dst`` with every record that is not a training step
    (epoch, validation, run events) and at most ``max_steps`` step records, evenly spaced,
    the first and last included; ``dst`` may be ``src``. Returns the step records dropped."""
    records, _ = read_metrics(src)
    steps = [i for i, r in enumerate(records) if r.get("event") == "step"]
    keep = set(steps)
    if len(steps) > max_steps >= 2:
        keep = {steps[round(j * (len(steps) - 1) / (max_steps - 1))] for j in range(max_steps)}
    out = [r for i, r in enumerate(records) if r.get("event") != "step" or i in keep]
    atomic_write_bytes(dst, "".join(json.dumps(r) + "\n" for r in out).encode())
    return len(steps) - len(keep)


def ship_run(src: str | os.PathLike, dst: str | os.PathLike, *, half_min_numel: int = 4096) -> Path:
    """Copy a finished run to ``dst`` as a compact, read-mostly run: config, status, eval
    and sample grids as they are, the metrics with at most SHIPPED_STEP_RECORDS step
    records (:func:`compact_metrics`); the checkpoint without optimiser state,
    with large weight tensors stored as float16 (loading casts them back to float32;
    buffers and small tensors stay float32). Evaluate the shipped copy, not the source,
    so its eval.json describes exactly the weights that ship."""
    src, dst = Path(src), Path(dst)
    ckpt = load_checkpoint(src / CHECKPOINT)
    params = {n for n, _ in build_model(ckpt["kind"], ckpt["config"]).named_parameters()}
    weights = {k: (v.half() if k in params and v.is_floating_point() and v.numel() >= half_min_numel
                   else v) for k, v in ckpt["model"].items()}
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / CONFIG, dst / CONFIG)
    compact_metrics(src / METRICS, dst / METRICS)
    if (src / "samples").is_dir():
        shutil.copytree(src / "samples", dst / "samples", dirs_exist_ok=True)
    status = read_json(src / STATUS) or {}
    status.pop("pid", None)
    atomic_write_json(dst / STATUS, {**status, "shipped_from": src.name})
    save_checkpoint(dst / CHECKPOINT, {k: v for k, v in ckpt.items() if k not in RESUME_ONLY}
                    | {"model": weights, "optimizers": []})
    return dst
