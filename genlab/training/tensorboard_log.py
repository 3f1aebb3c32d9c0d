"""TensorBoard event files for a run, so ``tensorboard --logdir runs`` shows genlab's runs.

What a run folder holds (metrics.jsonl, samples/, config.json) is written again as
TensorBoard events, one mapping for a live training and for an export:

* every numeric part of a metrics record as a scalar at the record's step: step records
  as ``train/<part>`` (loss parts, bits/dim, lr, KL weight, images/s), the epoch records
  as ``epoch_train/<part>`` and ``epoch_val/<part>``;
* each epoch's sample grid as an image at the epoch's last step: ``samples`` (T = 1) and
  ``samples/t<T>`` at the family's own temperature;
* config.json as hyperparameters (TensorBoard's HParams tab), with the epoch losses as its
  metrics.

The file is ``events.out.tfevents.genlab`` in the run folder, appended and flushed event by
event as metrics.jsonl is (no writer thread, nothing to close: a killed run leaves a
readable file). A resume first cuts it back to the checkpoint's step, as it does
metrics.jsonl; a run begun before these files existed gets its past written at its first
resume. :func:`export` writes the same events for a finished run (the shipped ones
included) into another folder.

The protocol buffers come from tensorboardX (an 88 kB wheel whose only dependencies,
protobuf, numpy and packaging, Streamlit and torch bring already), not from
``torch.utils.tensorboard``, which imports the ``tensorboard`` package (5.5 MB, and grpcio
and tensorboard-data-server with it: about 20 MB of wheels, 55 MB installed) to write the
same files. Viewing them takes ``pip install tensorboard``. Without tensorboardX a run
trains as before and says once how to turn the logs on.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import sys
import time
from pathlib import Path

from ..runs import store

EVENTS = "events.out.tfevents.genlab"
"""The event file's name in a run folder (TensorBoard reads any name holding "tfevents")."""
SKIPPED = frozenset({"event", "split", "epoch", "step", "seconds", "cpu_seconds"})
"""Keys of a metrics record that are not plotted (its place in the run; wall time is the event's)."""
HPARAM_METRICS = ("epoch_val/loss", "epoch_train/loss")
INSTALL = "pip install tensorboardX==2.6.5"
_said_missing = False


class ExportError(ValueError):
    """An export that cannot be written where it was asked to; the message says why."""


def _tbx():
    """tensorboardX's protocol buffers, CRC and hparams summary (ImportError without it)."""
    from tensorboardX.proto import event_pb2, summary_pb2
    from tensorboardX.record_writer import masked_crc32c
    from tensorboardX.summary import hparams
    return event_pb2, summary_pb2, masked_crc32c, hparams


def available() -> bool:
    """Whether tensorboardX can be imported; says once per process how to install it if not."""
    global _said_missing
    try:
        _tbx()
        return True
    except ImportError:
        if not _said_missing:
            print(f"genlab: TensorBoard logs are off: the tensorboardX package is not installed; "
                  f"`{INSTALL}` (in requirements.txt) turns them on", file=sys.stderr, flush=True)
            _said_missing = True
        return False


# -- records and grids as events ------------------------------------------------------
def scalars(record: dict) -> list[tuple[str, float]]:
    """(tag, value) of every numeric part of a metrics record: ``train/<part>`` for a step
    record, ``epoch_<split>/<part>`` for an epoch record."""
    split = record.get("split", "train")
    prefix = split if record.get("event") == "step" else f"{record.get('event', 'epoch')}_{split}"
    return [(f"{prefix}/{k}", float(v)) for k, v in record.items()
            if k not in SKIPPED and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)]


def hparam_values(config: dict) -> dict[str, str | float | bool]:
    """config.json flattened: the model name, then the model's and the training options by
    name (``train.<name>`` where a name is in both), lists as JSON text."""
    out: dict[str, str | float | bool] = {"model": str(config.get("model", ""))}
    model, train = config.get("model_config") or {}, config.get("train") or {}
    for group, values in (("model", model), ("train", train)):
        for k, v in values.items():
            key = f"{group}.{k}" if k in out else k
            out[key] = v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
    return out


def sample_grids(run_dir: str | os.PathLike) -> list[tuple[int, str, Path]]:
    """(epoch, image tag, path) of the run's sample grids (store.sample_grid's layout), in order."""
    folder = Path(run_dir) / "samples"
    found = []
    for p in folder.rglob("epoch_*.png") if folder.is_dir() else ():
        try:
            epoch = int(p.stem[len("epoch_"):])
        except ValueError:
            continue
        tag = "samples" if p.parent == folder else f"samples/{p.parent.relative_to(folder).as_posix()}"
        found.append((epoch, tag, p))
    return sorted(found, key=lambda g: (g[0], g[1]))


def _event(step: int, wall: float, **fields):
    event_pb2 = _tbx()[0]
    return event_pb2.Event(step=int(step), wall_time=float(wall), **fields)


def scalar_events(record: dict, wall: float) -> list:
    summary_pb2 = _tbx()[1]
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=v) for tag, v in scalars(record)]
    return [_event(record.get("step", 0), wall, summary=summary_pb2.Summary(value=values))] if values else []


def image_event(tag: str, png: bytes, step: int, wall: float) -> bytes:
    """A PNG as an image summary, its bytes as they are (no decoding and re-encoding)."""
    from PIL import Image

    summary_pb2 = _tbx()[1]
    with Image.open(io.BytesIO(png)) as im:
        (width, height), mode = im.size, im.mode
    colorspace = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(mode, 3)
    image = summary_pb2.Summary.Image(height=height, width=width, colorspace=colorspace,
                                      encoded_image_string=png)
    return _event(step, wall, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=tag, image=image)]))


def header_events(config: dict, wall: float) -> list:
    """The file's first events: its version, then config.json as hyperparameters."""
    hparams = _tbx()[3]
    exp, ssi, _ = hparams(hparam_values(config), {m: 0.0 for m in HPARAM_METRICS})
    return [_event(0, wall, file_version="brain.Event:2"),
            _event(0, wall, summary=exp), _event(0, wall, summary=ssi)]


def run_events(run_dir: str | os.PathLike) -> list:
    """The events of a run as its folder holds it: header, every metrics record, every
    sample grid at the last step of its epoch. Wall times are the run's start (status.json)
    plus each record's seconds."""
    run_dir = Path(run_dir)
    config = store.read_config_dict(run_dir)
    records, _ = store.read_metrics(run_dir / store.METRICS)
    started = (store.read_json(run_dir / store.STATUS) or {}).get("started")
    if not isinstance(started, (int, float)):
        started = (run_dir / store.CONFIG).stat().st_mtime
    wall = lambda r: started + float(r.get("seconds") or 0.0)  # noqa: E731
    events = header_events(config, started)
    for r in records:
        events += scalar_events(r, wall(r))
    ends = {r.get("epoch"): r for r in records if r.get("event") == "epoch"}
    for epoch, tag, path in sample_grids(run_dir):
        if epoch in ends:  # a grid whose epoch has no record has no step to sit at
            events.append(image_event(tag, path.read_bytes(), ends[epoch]["step"], wall(ends[epoch])))
    return events


# -- the file -------------------------------------------------------------------------
def _frame(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC-32C, the data, its masked CRC-32C."""
    masked_crc32c = _tbx()[2]
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", masked_crc32c(header)) + data
            + struct.pack("<I", masked_crc32c(data)))


def read_records(path: str | os.PathLike) -> list[bytes]:
    """The whole records of an event file, stopping at a torn or damaged one (a killed
    writer's last)."""
    masked_crc32c = _tbx()[2]
    data, out, i = Path(path).read_bytes(), [], 0
    while i + 12 <= len(data):
        header, (crc,) = data[i:i + 8], struct.unpack("<I", data[i + 8:i + 12])
        (n,) = struct.unpack("<Q", header)
        end = i + 12 + n + 4
        if crc != masked_crc32c(header) or end > len(data):
            break
        body = data[i + 12:i + 12 + n]
        if struct.unpack("<I", data[end - 4:end])[0] != masked_crc32c(body):
            break
        out.append(body)
        i = end
    return out


def append(path: str | os.PathLike, events: list) -> None:
    """Append events to an event file and flush (open, write, close: nothing held open)."""
    path = Path(path)
    data = b"".join(_frame(e.SerializeToString()) for e in events)
    try:
        with open(path, "ab") as f:
            f.write(data)
    except OSError as e:
        raise type(e)(f"cannot write {path}: {e.strerror or e}") from None


def truncate(path: str | os.PathLike, step: int) -> int:
    """Before a resume: keep the events at steps <= ``step`` (the checkpoint's), dropping
    the unfinished epoch's and a torn last record. Returns the records dropped."""
    event_pb2 = _tbx()[0]
    path = Path(path)
    size = path.stat().st_size
    records = read_records(path)
    keep = [r for r in records if event_pb2.Event.FromString(r).step <= step]
    if len(keep) < len(records) or sum(len(r) + 16 for r in records) != size:
        store.atomic_write_bytes(path, b"".join(map(_frame, keep)))
    return len(records) - len(keep)


# -- live training --------------------------------------------------------------------
class LiveLog:
    """A training callback (genlab.training.loop.Callback) that writes the run's events as fit makes
    them: the records of "log", "epoch_train" and "epoch_val", the grids at "epoch"."""

    def __init__(self, run_dir: str | os.PathLike, start_step: int = 0):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / EVENTS
        if self.path.exists():  # a resume: cut back to the checkpoint, as metrics.jsonl is
            truncate(self.path, start_step)
        else:  # a new run (its header), or one from before event files (its past too)
            append(self.path, run_events(self.run_dir))

    def __call__(self, event: str, state) -> None:
        if event in ("log", "epoch_train", "epoch_val") and state.record:
            append(self.path, scalar_events(state.record, time.time()))
        elif event == "epoch":
            now = time.time()
            append(self.path, [image_event(tag, p.read_bytes(), state.step, now)
                               for e, tag, p in sample_grids(self.run_dir) if e == state.epoch])


def callbacks(run_dir: str | os.PathLike, start_step: int = 0) -> tuple:
    """The training callbacks that keep the run's event file: (LiveLog,), or () when
    tensorboardX is missing (said once)."""
    return (LiveLog(run_dir, start_step),) if available() else ()


# -- export ---------------------------------------------------------------------------
def default_out(run_dir: str | os.PathLike) -> Path:
    """Where an export goes by default: the run's own folder, or for a read-only (shipped)
    run ``tensorboard/<name>`` in the folder its continued copies go to (runs/)."""
    from ..runs.status import continue_root, read_only

    run_dir = Path(run_dir)
    return continue_root(run_dir) / "tensorboard" / run_dir.name if read_only(run_dir) else run_dir


def _refusal(out: Path) -> str | None:
    """Why ``out`` may not hold an export, or None: never inside checkpoints/ (the shipped
    runs) nor any read-only run, never over event files already there."""
    from ..runs.status import read_only

    shipped = {Path(__file__).resolve().parents[2] / "checkpoints", Path("checkpoints").resolve()}
    for folder in (out.resolve(), *out.resolve().parents):
        if folder in shipped:
            return f"{out} is inside checkpoints/ (the shipped runs, read-only); write it elsewhere"
        if (folder / store.CONFIG).exists() and read_only(folder):
            return f"{out} is inside the shipped run {folder} (read-only); write it elsewhere"
    if out.is_dir() and any(out.glob("*tfevents*")):
        return f"{out} holds TensorBoard event files already; give an empty folder"
    return None


def export(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> dict:
    """Write the event file of a run that has none into ``out`` (default: default_out),
    from its metrics.jsonl, samples/ and config.json; ``run_dir`` is only read. Returns
    {"path", "scalars": tag -> points, "images", "hparams"}. ExportError when ``out`` is
    refused (see _refusal), store.RunError for a folder that is not a run, ImportError
    (saying how to install it) without tensorboardX."""
    run_dir = Path(run_dir)
    try:
        _tbx()
    except ImportError:
        raise ImportError(f"the tensorboardX package is not installed; `{INSTALL}` "
                          "(in requirements.txt) installs it") from None
    config = store.read_config_dict(run_dir)  # a run folder, or a RunError that says why not
    out = Path(out) if out is not None else default_out(run_dir)
    why = _refusal(out)
    if why:
        raise ExportError(why)
    events = run_events(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    store.atomic_write_bytes(out / EVENTS, b"".join(_frame(e.SerializeToString()) for e in events))
    counts: dict[str, int] = {}
    images = 0
    for e in events:
        for v in e.summary.value:
            if v.HasField("image"):
                images += 1
            elif v.HasField("simple_value"):
                counts[v.tag] = counts.get(v.tag, 0) + 1
    return {"path": out / EVENTS, "scalars": counts, "images": images,
            "hparams": len(hparam_values(config))}
