"""What a run is doing and has done, read from its folder: the one rule for its state
(starting, running, done, stopped, failed, interrupted, broken, unknown) used by the jobs
layer and every page, and a typed summary of its files.

A run folder holds what the trainer writes (config.json, status.json, metrics.jsonl,
checkpoint.pt, samples/, eval.json) and, when the app started a process there (genlab.runs.jobs),
    job.json    the latest process started for this run: kind, pid, command, log file
    train.log   stdout and stderr of the train and resume processes (appended)
    eval.log    the same for ``eval``
No plotting and no streamlit here: genlab.figures presents these.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data import DATASETS
from ..errors import first_line
from ..models import MODELS, model_entry
from . import store

JOB, TRAIN_LOG, EVAL_LOG = "job.json", "train.log", "eval.log"
RUN_FILES = (store.CONFIG, store.STATUS, store.METRICS, store.CHECKPOINT, store.EVAL, JOB)
ACTIVE = ("starting", "running")
"""States of a run whose training process is (about to be) at work."""
_CHILDREN: dict[int, subprocess.Popen] = {}  # processes started here, polled so none lingers as a zombie


# -- processes ----------------------------------------------------------------------
def track(proc: subprocess.Popen) -> None:
    """Remember a process this one started (genlab.runs.jobs), so it is collected when it exits."""
    _CHILDREN[proc.pid] = proc


def reap() -> None:
    """Collect finished children so they do not linger as zombies."""
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            del _CHILDREN[pid]


def pid_alive(pid: int, marker: str | None = None, argv: tuple[str, ...] | list[str] = ()) -> bool:
    """Is ``pid`` a live process (not a zombie) whose command line holds ``marker`` when one
    is given, and is exactly ``argv`` when that is given (the command job.json recorded)?
    So a reused pid is not taken for the run's process: a server restarted after its jobs
    outlived it finds them by job.json alone, and never signals another process that took
    a pid (a genlab process of another run, or any command naming this run's folder).
    Where /proc is missing (macOS) only existence is checked."""
    reap()
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").is_dir():  # Linux: the state letter and the command line
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            words = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except (OSError, IndexError):
            return False
        cmd = b" ".join(words).decode(errors="replace")
        if argv and [w.decode(errors="replace") for w in words] != list(argv):
            return False
        return state != "Z" and (marker is None or ("genlab" in cmd and marker in cmd))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _of(value: Any, *types: type) -> Any:
    """``value`` when it is one of ``types`` (a bool is no number here), else None: a
    hand-edited or torn file's wrong value reads as missing."""
    if isinstance(value, bool) and bool not in types:
        return None
    return value if isinstance(value, types) else None


@dataclass(frozen=True)
class Job:
    """job.json: the latest process the app started for a run (genlab.runs.jobs writes
    it) and, as read back, whether that process is alive. ``run_dir``: the folder it
    works in (resuming a shipped run trains a copy: the copy's)."""
    kind: str  # "train", "resume" or "eval"
    pid: int
    run_dir: Path
    argv: tuple[str, ...] = ()
    log: str = TRAIN_LOG
    started: float = 0.0  # time.time() at the start
    alive: bool = False  # a live genlab process for this run (as of reading)

    def to_json(self) -> dict:
        """What job.json holds (not ``alive`` nor ``run_dir``, which reading finds)."""
        return {"kind": self.kind, "pid": self.pid, "argv": list(self.argv), "log": self.log,
                "started": self.started}


def read_job(run_dir: str | os.PathLike) -> Job | None:
    """job.json with ``alive`` found (its process is a live genlab process for this run,
    running the very command job.json recorded), or None when the app never started a
    process here (or job.json has no pid)."""
    run_dir = Path(run_dir)
    job = store.read_json(run_dir / JOB)
    pid = _of((job or {}).get("pid"), int)
    if pid is None:
        return None
    argv = tuple(map(str, job["argv"])) if isinstance(job.get("argv"), list) else ()
    return Job(kind=_of(job.get("kind"), str) or "train", pid=pid, run_dir=run_dir, argv=argv,
               log=_of(job.get("log"), str) or TRAIN_LOG,
               started=float(_of(job.get("started"), int, float) or 0.0),
               alive=pid_alive(pid, run_dir.name, argv))


@dataclass(frozen=True)
class RunStatus:
    """status.json as the trainer writes it (genlab.training.train; genlab.runs.store.
    write_status merges each update in): ``state`` is None without a status.json."""
    state: str | None = None  # starting, running, stopped, done, failed
    message: str = ""
    pid: int | None = None  # the training process (rank 0's under torchrun)
    started: float | None = None  # time.time() when this process started
    updated: float | None = None  # time.time() of the last write
    epoch: int | None = None  # epochs done
    total_epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    progress: float | None = None  # of the training, 0..1
    eta_s: float | None = None  # seconds left, as the trainer estimates them
    device: str | None = None
    processes: int | None = None
    shipped_from: str | None = None  # a shipped run: where it was trained (read-only here)

    @classmethod
    def from_json(cls, d: dict | None) -> RunStatus:
        """From status.json's object (None: no readable file); unknown keys are left out,
        values of the wrong type read as missing."""
        d = d or {}
        num = (int, float)
        return cls(state=_of(d.get("state"), str), message=_of(d.get("message"), str) or "",
                   pid=_of(d.get("pid"), int), started=_of(d.get("started"), *num),
                   updated=_of(d.get("updated"), *num), epoch=_of(d.get("epoch"), int),
                   total_epochs=_of(d.get("total_epochs"), int), step=_of(d.get("step"), int),
                   total_steps=_of(d.get("total_steps"), int),
                   progress=_of(d.get("progress"), *num), eta_s=_of(d.get("eta_s"), *num),
                   device=_of(d.get("device"), str), processes=_of(d.get("processes"), int),
                   shipped_from=_of(d.get("shipped_from"), str))


def read_status(run_dir: str | os.PathLike) -> RunStatus:
    """The run's status.json (an empty RunStatus without one)."""
    return RunStatus.from_json(store.read_json(Path(run_dir) / store.STATUS))


def log_tail(run_dir: str | os.PathLike, name: str = TRAIN_LOG, lines: int = 15) -> str:
    """The last lines of a job's log; a progress bar's carriage-return updates count once."""
    try:
        data = (Path(run_dir) / name).read_bytes()[-64_000:].decode(errors="replace")
    except OSError:
        return ""
    rows = [row.rstrip("\r").rsplit("\r", 1)[-1] for row in data.split("\n")]
    return "\n".join([r for r in rows if r.strip()][-lines:])


def fmt_seconds(s: float) -> str:
    s = int(round(float(s)))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else (
        f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s")


def budget_words(train: dict) -> str:
    """A run's time budget (config.json's max_minutes, counted on its budget_clock) in
    words: "an 8-CPU-minute budget", "a 20-minute budget" (wall clock); "" without one."""
    minutes = train.get("max_minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
        return ""
    n = f"{minutes:g}"
    article = "an" if n.startswith("8") or n.split(".")[0] in ("11", "18") else "a"
    clock = "CPU-" if train.get("budget_clock") == "cpu" else ""
    return f"{article} {n}-{clock}minute budget"


def budget_phrase(epoch: int | None, train: dict) -> str:
    """How far a run got, read as what bounds it: "67 epochs in an 8-CPU-minute budget"
    for a run with a time budget (its epochs are then only a cap, such as the shipped
    recipe's 100000), "epoch 20 of 20 (within a 5-minute budget)" for one that reached its
    epochs first, "epoch 2 of 20" for a run bounded by its epochs alone."""
    epochs, budget = train.get("epochs"), budget_words(train)
    if budget and epoch != epochs:
        return f"{epoch} epoch{'' if epoch == 1 else 's'} in {budget}"
    return f"epoch {epoch} of {epochs or '?'}" + (f" (within {budget})" if budget else "")


# -- the one rule -------------------------------------------------------------------------
def run_state(run_dir: str | os.PathLike, status: RunStatus, job: Job | None, *,
              error: str | None = None, has_metrics: bool = True) -> tuple[str, str]:
    """(state, one-line message) of a run, in this order:
    1. a train or resume process the app started is alive while status.json is older
       than it: "starting" (once it has written its last state, stopped or done, that
       state, "its process is exiting");
    2. that process died before writing status.json: "failed", with its log's last line;
    3. config.json unreadable (``error``): "broken";
    4. status.json's state, where "running"/"starting" whose pid is gone is "interrupted"
       (continue with resume); without status.json, "stopped" if there are metrics, else
       "unknown". A running run's message is its epoch, progress and time left."""
    pid = status.pid
    at_work = status.state in ACTIVE and (not pid or pid_alive(pid))
    exiting = False
    if job and job.alive and job.kind != "eval" and not at_work:
        updated, started = float(status.updated or 0), job.started
        if not (updated and started) or updated < started:  # status.json is older than the job
            return "starting", f"{job.kind} process {job.pid} is starting"
        exiting = True  # it wrote its last status (stopped, done, failed) and is exiting
    if job and not job.alive and status == RunStatus():
        return "failed", log_tail(run_dir, job.log, lines=1) or "the process exited before training"
    if error:
        return "broken", error
    state = status.state or ("stopped" if has_metrics else "unknown")
    msg = status.message
    if state in ACTIVE and not at_work:
        return "interrupted", (f"the training process (pid {pid}) is gone; continue with "
                               f"`python -m genlab resume {run_dir}`")
    if exiting:
        msg = f"{msg + '; ' if msg else ''}its process is exiting"
    if state == "running" and status.total_steps:
        eta = status.eta_s
        msg = (f"epoch {status.epoch}/{status.total_epochs or '?'}, "
               f"{100 * float(status.progress or 0):.0f}%"
               + (f", about {fmt_seconds(eta)} left" if eta is not None else ""))
    return state, msg


# -- a run's files, typed -----------------------------------------------------------------
@dataclass(frozen=True)
class RunSummary:
    """What the pages and the benchmark tables show about a run, read from its folder.
    ``config`` and ``train`` are config.json's model and training options as stored;
    ``state``/``message`` follow :func:`run_state` as of reading (:func:`refresh` again)."""
    path: Path
    name: str
    model: str | None = None
    dataset: str | None = None
    config: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    status: RunStatus = field(default_factory=RunStatus)
    metrics: list[dict] = field(default_factory=list)
    bad_metric_lines: int = 0  # torn or unreadable lines of metrics.jsonl, skipped
    last_train: dict | None = None  # the latest epoch's training record
    last_val: dict | None = None
    eval: dict | None = None  # eval.json
    eval_error: str | None = None  # eval.json there but unreadable: why (one line, naming it)
    sample: Path | None = None  # the latest sample grid at the model's default temperature
    sample_temperature: float = 1.0  # the temperature ``sample`` was drawn at
    error: str | None = None  # config.json unreadable or missing: why
    state: str = "unknown"
    message: str = ""
    ckpt: int | None = None  # checkpoint.pt's modification time (ns); None: no checkpoint

    @property
    def model_class(self) -> type | None:
        """The model's class from the registry (None for a broken config)."""
        try:
            return model_entry(self.model)[0] if self.model else None
        except ValueError:
            return None


def read_only(run_dir: str | os.PathLike) -> bool:
    """A run the app and the CLI must not write into: a shipped run (its status.json
    says where it was shipped from; see store.ship_run) or a folder this process cannot
    write. Continuing one trains a copy (store.copy_for_resume)."""
    run_dir = Path(run_dir)
    return bool(read_status(run_dir).shipped_from) or not os.access(run_dir, os.W_OK)


def continue_root(run_dir: str | os.PathLike) -> Path:
    """Where a read-only run is copied to continue it: the first run folder that does not
    hold it (GENLAB_RUNS, else runs), else ``runs``."""
    here = Path(run_dir).resolve().parent
    return next((r for r in runs_roots() if r.resolve() != here), Path("runs"))


def checkpoint_stamp(run_dir: str | os.PathLike) -> int | None:
    try:
        return (Path(run_dir) / store.CHECKPOINT).stat().st_mtime_ns
    except OSError:
        return None


_DAMAGE: dict[tuple, str | None] = {}  # (path, mtime_ns, size) -> checkpoint_damage's answer


def checkpoint_damage(run_dir: str | os.PathLike) -> str | None:
    """Why a run's checkpoint.pt cannot be loaded, found without loading it (a few reads
    of its zip directory; remembered per file time and size), or None: no checkpoint, or
    one that looks whole. torch.save writes a zip archive: a truncated or overwritten file
    has no complete directory, or entries that reach past its end. The wording is
    store.load_checkpoint's, so every page says the same."""
    path = Path(run_dir) / store.CHECKPOINT
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _DAMAGE:
        _DAMAGE[key] = _zip_damage(path, st.st_size)
    return _DAMAGE[key]


def _zip_damage(path: Path, size: int) -> str | None:
    import zipfile

    bad = f"{path}: not a readable checkpoint (not a complete torch.save archive: truncated or corrupt)"
    if size == 0:
        return f"{path}: checkpoint file is empty"
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return bad
    if not infos or any(i.header_offset + i.compress_size > size for i in infos):
        return bad
    return None


def refresh(s: RunSummary) -> RunSummary:
    """``s`` with its state and checkpoint stamp read afresh (a process may have died
    without touching its files): for summaries kept in a cache. A damaged checkpoint
    (:func:`checkpoint_damage`) makes the run "broken", with that reason."""
    state, message = run_state(s.path, s.status, read_job(s.path),
                               error=s.error or checkpoint_damage(s.path),
                               has_metrics=bool(s.metrics))
    return replace(s, state=state, message=message, ckpt=checkpoint_stamp(s.path))


def summarize(run_dir: str | os.PathLike) -> RunSummary:
    """A run's summary; an unreadable config.json or folder is its ``error``, never raised."""
    run_dir = Path(run_dir)
    try:
        return refresh(_read(run_dir))
    except Exception as e:  # an unreadable folder: one line, never a traceback
        why = first_line(e)
        return RunSummary(run_dir, run_dir.name, error=f"{run_dir}: {why}", state="broken",
                          message=f"{run_dir}: {why}")


def _read(run_dir: Path) -> RunSummary:
    try:  # as stored: a run whose values no longer fit is listed, and says why when opened
        raw = store.read_config_dict(run_dir)
        cfg = dict(model=raw["model"], dataset=raw["train"]["dataset"], config=raw["model_config"],
                   train=raw["train"])
    except store.RunError as e:
        cfg = dict(error=_missing_config(run_dir) or str(e))
    records, bad = store.read_metrics(run_dir / store.METRICS)
    epochs = [r for r in records if r.get("event") == "epoch"]
    ev, ev_error = read_eval(run_dir)
    temperature = default_temperature(model_entry(cfg["model"])[0] if "model" in cfg else None)
    sample = latest_sample(run_dir, temperature)
    if sample is None and temperature != 1.0:  # a run from before the tempered grids
        temperature, sample = 1.0, latest_sample(run_dir, 1.0)
    return RunSummary(
        path=run_dir, name=run_dir.name, **cfg, status=read_status(run_dir),
        metrics=records, bad_metric_lines=bad,
        last_train=next((r for r in reversed(epochs) if r.get("split") == "train"), None),
        last_val=next((r for r in reversed(epochs) if r.get("split") == "val"), None),
        eval=ev, eval_error=ev_error, sample=sample, sample_temperature=temperature)


def _missing_config(run_dir: Path) -> str | None:
    """Why a run folder whose config.json is gone is damaged (None: it has one)."""
    if (run_dir / store.CONFIG).exists():
        return None
    held = [n for n in RUN_FILES[1:] if (run_dir / n).exists()]
    return (f"{run_dir / store.CONFIG}: missing (the folder holds {', '.join(held) or 'no run files'}); "
            "without it the run cannot be rebuilt, opened or resumed: retrain it")


def read_eval(run_dir: str | os.PathLike) -> tuple[dict | None, str | None]:
    """(eval.json, None), (None, None) when there is none yet, or (None, why it cannot be
    read: one line naming the file)."""
    path = Path(run_dir) / store.EVAL
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path}: unreadable ({first_line(e, 160)})"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"{path}: not valid JSON ({e})"
    if not isinstance(obj, dict):
        return None, f"{path}: expected a JSON object of figures (got a JSON {type(obj).__name__})"
    return obj, None


def default_temperature(cls: type | None) -> float:
    """The temperature a model class's sample grids are shown at: the default it declares
    (``caps.temperature``; flows 0.7), 1 (the model as trained) when it declares none."""
    return float(cls.caps.temperature or 1.0) if cls is not None else 1.0


def latest_sample(run_dir: str | os.PathLike, temperature: float = 1.0) -> Path | None:
    """The latest sample grid fit wrote at ``temperature`` (store.sample_grid), or None."""
    folder = store.sample_grid(run_dir, 1, temperature).parent
    grids = sorted(folder.glob("epoch_*.png"))
    return grids[-1] if grids else None


def run_dirs(*roots: str | os.PathLike) -> list[Path]:
    """Every run folder directly under ``roots``, newest first, the damaged ones too: a
    folder holding any file a run writes (RUN_FILES), so one whose config.json was deleted
    is listed (as broken, saying why) rather than vanishing. :func:`store.find_runs` lists
    only those with a config.json: what the pages' pickers can open."""
    found = []
    for root in map(Path, roots):
        if root.is_dir():
            found += [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and _newest_mtime(p) is not None]  # hidden: a copy being made
    return sorted(found, key=_newest_mtime, reverse=True)


def _newest_mtime(p: Path) -> float | None:
    times = []
    for name in RUN_FILES:
        try:
            times.append((p / name).stat().st_mtime)
        except OSError:
            pass
    return max(times, default=None)


def run_stamp(run_dir: str | os.PathLike) -> tuple:
    """Modification times and sizes of everything a summary reads: a cache key that
    changes whenever the run does."""
    run_dir = Path(run_dir)
    files = [run_dir / n for n in (store.CONFIG, store.STATUS, store.METRICS, store.EVAL)]
    # the latest grid at each temperature (a summary shows the one at the model's default)
    grids = [latest_sample(run_dir)] + [latest_sample(run_dir, float(d.name[1:])) for d in
                                        sorted((run_dir / "samples").glob("t*")) if _is_number(d.name[1:])]
    stamp = []
    for f in files + [g for g in grids if g]:
        try:
            st = f.stat()
            stamp.append((f.name, st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append((f.name, None, None))
    return tuple(stamp)


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def order_key(model: str | None, dataset: str | None, name: str) -> tuple:
    """How runs are listed everywhere: by dataset (MNIST, Fashion-MNIST, SVHN), then
    family (the registry's order: VAEs, autoencoder + GMM, GANs, flow variants, flows),
    then name; runs whose config cannot be read last."""

    ds, fam = list(DATASETS), list(MODELS)
    return (ds.index(dataset) if dataset in ds else len(ds),
            fam.index(model) if model in fam else len(fam), name)


def runs_roots(text: str | None = None) -> list[Path]:
    """Run folders from ``text`` (comma- or os.pathsep-separated), else $GENLAB_RUNS,
    else ``runs`` and ``checkpoints``; duplicates dropped, order kept. ``~`` is expanded
    where it names a home folder (``~nobody-here/x`` stays as typed: root_problem says it
    does not exist)."""
    text = text if text is not None else os.environ.get("GENLAB_RUNS") or "runs,checkpoints"
    parts = [p.strip() for chunk in text.split(",") for p in chunk.split(os.pathsep)]
    return list(dict.fromkeys(_expand(p) for p in parts if p))


def _expand(text: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~user" of a user this machine does not know
        return Path(text)


MISSING = "does not exist"
"""root_problem's words for a folder that is not there (yet): nothing is listed from it,
and saving a run there makes it, so it stays among the run folders."""


def root_problem(root: str | os.PathLike) -> str | None:
    """Why no run can be listed from ``root``, in a few words to follow its name (MISSING,
    a NUL in the name, a name too long, a file, a folder without read and search
    permission), or None: a folder this process can list. Never raises."""
    if "\0" in str(root):
        return "has a NUL character in its name"
    try:
        info = os.stat(root)
    except FileNotFoundError:  # "~someone/runs" is left as typed when there is no such user
        return "names the home folder of no user here" if str(root).startswith("~") else MISSING
    except NotADirectoryError:
        return "is inside a file (a part of its path is not a folder)"
    except (OSError, ValueError) as e:
        return f"cannot be read ({getattr(e, 'strerror', None) or first_line(e, 80)})"
    if not stat.S_ISDIR(info.st_mode):
        return "is a file, not a folder"
    if not os.access(root, os.R_OK | os.X_OK):
        return "cannot be read (permission denied)"
    return None
