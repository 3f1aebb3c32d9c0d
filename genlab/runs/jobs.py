"""Training and evaluation in their own processes: check, start, stop, resume, list.

The app's pages launch ``python -m genlab train | resume | eval`` through these
functions, so a page never blocks on a training loop, several runs go at once, and a
browser refresh loses nothing: everything about a job lives in its run directory
(job.json, train.log, eval.log: see genlab.runs.status, which reads them back and holds the
one rule for a run's state) next to the files the trainer writes.
Each process leads its own session (``start_new_session``), so Stop sends SIGTERM to
its whole process group and the trainer saves a checkpoint and writes "stopped".
Nothing ties a job to the process that started it (its output goes to a log file, not a
pipe): a server killed mid-run leaves its jobs training, and a restarted one finds them
by job.json alone (genlab.runs.status.read_job checks the pid still runs that command).
Starting a job in an existing run (resume, eval) holds the run's lock file (.job.lock,
an flock, gone with its holder) from the "is it idle?" check to job.json's write, so two
sessions pressing at once start one job and the other is told it runs.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import signal
import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig, defaults, describe, field_type, format_value
from ..data import DATASETS, data_root, dataset_present, missing_message
from ..device import pick_device
from ..errors import first_line
from ..models import model_entry
from . import store, status

try:
    import fcntl
except ImportError:  # Windows: no flock, and no claim
    fcntl = None

REPO = Path(__file__).resolve().parents[2]  # where ``python -m genlab`` is importable
JOB, TRAIN_LOG, EVAL_LOG = status.JOB, status.TRAIN_LOG, status.EVAL_LOG  # the files _launch writes
LOCK = ".job.lock"  # held while a job is being started in a run (:func:`_claim`)
CLAIM_WAIT_S = 30.0  # how long a start waits for another one in the same run to finish starting
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class JobError(RuntimeError):
    """A job that cannot be started or stopped; the message says why and what to do."""


# -- the launch form: widgets from the config dataclasses ---------------------------
@dataclass(frozen=True)
class FieldSpec:
    """One config field as a form widget: kind is "choice", "bool", "int", "float",
    "ints" (comma-separated whole numbers) or "text"."""
    name: str
    kind: str
    default: Any
    lo: float | None
    hi: float | None
    lo_open: bool
    choices: tuple | None
    help: str


def _kind(cls, f: dataclasses.Field) -> str:
    t = field_type(cls, f)
    if f.metadata.get("choices"):
        return "choice"
    if typing.get_origin(t) is tuple:
        return "ints"
    return {bool: "bool", int: "int", float: "float"}.get(t, "text")


def field_specs(cls: type, *, skip: tuple[str, ...] = ()) -> list[FieldSpec]:
    """The user-settable fields of a config dataclass (``cli=False`` ones left out),
    with their bounds, choices, default and a help line stating them."""
    values = defaults(cls)
    out = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        if not m.get("cli", True) or f.name in skip:
            continue
        shown = format_value(values[f.name])
        out.append(FieldSpec(f.name, _kind(cls, f), values[f.name], m.get("lo"), m.get("hi"),
                             bool(m.get("lo_open")), m.get("choices"),
                             f"{m.get('help', '')}. Allowed: {describe(f)}; default {shown}."))
    return out


def field_step(spec: FieldSpec) -> float:
    """A number input's step for a float field: a tenth of its default's order of
    magnitude (1e-3 -> 1e-4), else 0.01 for fields bounded by 1 and 0.5 for the rest."""
    d = abs(float(spec.default))
    return 10.0 ** math.floor(math.log10(d)) / 10 if d else (0.01 if (spec.hi or 2) <= 1 else 0.5)


def check_train(model: str, dataset: str, model_values: dict, train_values: dict, *,
                root: str | os.PathLike | None = None, build: bool = True) -> tuple[Any, TrainConfig]:
    """Validate a training request as ``python -m genlab train`` does (the same parse,
    so the same one-line errors), then what the launched process would find: the dataset
    under the data root, the device, a model those options build. Returns (model config,
    train config); ValueError with one line per bad value (all of them), each saying what
    is wrong and what is allowed."""
    rc = store.new_config(model, dataset, model_values, train_values)
    if not dataset_present(dataset, root):
        raise ValueError(missing_message(dataset, root))
    pick_device(rc.train.device)  # ValueError when the device is absent
    if build:
        try:
            model_entry(model)[0](rc.model_config)
        except Exception as e:  # a shape the architecture cannot take, for instance
            raise ValueError(f"{model} cannot be built with these options: "
                             f"{first_line(e)}") from None
    return rc.model_config, rc.train


def check_name(name: str) -> str:
    """A run name: letters, digits, '.', '_' and '-', at most 100 characters."""
    if not NAME_RE.fullmatch(name or ""):
        raise ValueError(f"run name {name!r}: use letters, digits, '.', '_' and '-' only "
                         "(at most 100 characters, not starting with '.' or '-')")
    return name


def train_argv(run_dir: str | os.PathLike, processes: int = 1) -> list[str]:
    """The ``python -m genlab train`` command for the run configured in ``run_dir``; with
    ``processes`` > 1, through torchrun on this machine (one process per GPU, the batch
    size shared by them: it is the global batch)."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                str(int(processes))] if processes > 1 else []
    return [sys.executable, *launcher, "-m", "genlab", "train", "--run-dir", str(run_dir), "--quiet"]


MAX_PROCESSES = 64  # torchrun processes a run started from the app may have (one node)


def max_processes() -> int:
    """How many training processes this machine can run at once: one per visible GPU."""
    import torch
    return max(torch.cuda.device_count(), 1)


def create_run(runs_root: str | os.PathLike, name: str, model: str, model_cfg: Any,
               train_cfg: TrainConfig) -> Path:
    """A new run directory under ``runs_root`` (``name``, or ``name-1``, ... when taken)
    holding config.json, written as ``python -m genlab train`` writes it."""
    run_dir = store.new_run_dir(Path(runs_root).resolve(), check_name(name))
    store.write_config(run_dir, model, model_cfg, train_cfg, exclusive=True)
    return run_dir


# -- processes ----------------------------------------------------------------------
def child_env(root: str | os.PathLike | None = None, extra: dict | None = None) -> dict:
    """The environment of a process this module starts: ours, unbuffered, the data root the
    app showed, genlab importable."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}
    env["GENLAB_DATA"] = str(data_root(root).resolve())  # the data the app showed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _launch(run_dir: Path, kind: str, argv: list[str], log_name: str, *, append: bool,
            root: str | os.PathLike | None = None, env: dict | None = None) -> status.Job:
    """Start ``argv`` in its own session, its output appended to (or replacing) the run's
    log, and record it in job.json. A file that cannot be written (a full disk) is a
    JobError naming it; a process whose job.json cannot be written is killed at once, so
    no job runs that the app cannot see or stop."""
    log_path, said = run_dir / log_name, f"{run_dir.name}: {kind} not started"
    try:
        with open(log_path, "ab" if append else "wb") as log:
            log.write(f"\n$ {' '.join(argv[1:])}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(argv, cwd=REPO, env=child_env(root, env),
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as e:
                raise JobError(f"{said}: cannot run {argv[0]}: {e.strerror or e}") from None
    except OSError as e:
        raise JobError(f"{said}: cannot write {log_path}: {e.strerror or e}") from None
    status.track(proc)
    job = status.Job(kind, proc.pid, run_dir, tuple(argv), log_name, time.time(), alive=True)
    try:
        store.atomic_write_json(run_dir / JOB, job.to_json())
    except OSError as e:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # just started, still importing: nothing to save
        except ProcessLookupError:
            pass
        proc.wait()
        raise JobError(f"{said}: {e}") from None
    return job


@contextmanager
def _claim(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s job lock (an flock on .job.lock, released when this returns or its
    holder dies) and refuse when a job runs there: wrapped around the check and the
    launch, so of two sessions starting a job at once one starts it and the other waits
    for its job.json, finds it alive and gets the JobError. The file is removed on
    release; a waiter that locked a file already removed tries again. A folder where the
    lock cannot be made (not writable) is only checked: the launch says why it fails."""
    fd = _lock(run_dir / LOCK) if fcntl else None
    try:
        _refuse_if_busy(run_dir)
        yield
    finally:
        if fd is not None:
            (run_dir / LOCK).unlink(missing_ok=True)
            os.close(fd)  # the flock goes with it


def _lock(path: Path) -> int | None:
    """An open descriptor of ``path`` holding its flock (waiting up to CLAIM_WAIT_S for
    another holder), or None where no lock can be had (a folder not writable, a file
    system without locks)."""
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:  # still the file at that name
                    return fd
            except FileNotFoundError:
                pass
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise JobError(f"{path.parent.name}: another session has been starting a job "
                               f"in this run for {CLAIM_WAIT_S:g} s; try again") from None
            time.sleep(0.02)
        except OSError:  # no locks here (ENOLCK): only checked, as before
            os.close(fd)
            return None
        os.close(fd)


def start_train(runs_root: str | os.PathLike, name: str, model: str, model_cfg: Any,
                train_cfg: TrainConfig, *,
                root: str | os.PathLike | None = None, env: dict | None = None,
                processes: int = 1) -> Path:
    """Write config.json in a new run directory (:func:`create_run`) and start
    ``python -m genlab train`` on it (``processes`` > 1: under torchrun, :func:`train_argv`);
    returns the directory at once. Stop sends SIGTERM to torchrun, which passes it on."""
    if not 1 <= int(processes) <= MAX_PROCESSES:
        raise JobError(f"processes must be between 1 and {MAX_PROCESSES} (got {processes}); "
                       "one per GPU")
    gpus = max_processes()
    if int(processes) > gpus > 1 and train_cfg.device != "cpu":
        raise JobError(f"{processes} processes but {gpus} GPUs visible: one process per GPU, "
                       f"so at most {gpus}")
    run_dir = create_run(runs_root, name, model, model_cfg, train_cfg)
    _launch(run_dir, "train", train_argv(run_dir, int(processes)), TRAIN_LOG, append=False,
            root=root, env=env)
    return run_dir


def _refuse_if_busy(run_dir: Path) -> None:
    job = status.read_job(run_dir)
    if job and job.alive:
        what = "an eval" if job.kind == "eval" else f"a {job.kind}"
        raise JobError(f"{run_dir.name}: {what} process (pid {job.pid}) is still running; "
                       + ("wait for it to finish" if job.kind == "eval" else
                          "stop it first or wait for it to finish"))


def start_resume(run_dir: str | os.PathLike, *, epochs: int | None = None,
                 max_minutes: float | None = None, root: str | os.PathLike | None = None,
                 env: dict | None = None, copy_to: str | os.PathLike | None = None) -> status.Job:
    """Continue a stopped, interrupted or failed run from its last checkpoint
    (``python -m genlab resume``), up to ``epochs`` in all when given, for at most
    ``max_minutes`` more on the run's budget clock when given (0: no time limit). A read-only run (a
    shipped one, :func:`genlab.runs.status.read_only`) is never written: it is copied into
    ``copy_to`` (default: :func:`genlab.runs.status.continue_root`) and the copy trains; the job's
    ``run_dir`` says where."""
    run_dir = Path(run_dir).resolve()
    if epochs is not None and epochs < 1:
        raise JobError("epochs must be >= 1")
    if max_minutes is not None and not (math.isfinite(max_minutes) and max_minutes >= 0):
        raise JobError(f"max_minutes must be a number >= 0 (0: no limit; got {max_minutes:g})")
    shipped = status.read_only(run_dir)  # only read: the copy, a new folder, is its own
    if shipped:
        _refuse_if_busy(run_dir)
    with nullcontext() if shipped else _claim(run_dir):
        if not (run_dir / store.CHECKPOINT).exists():
            raise JobError(f"{run_dir.name} has no checkpoint yet (no epoch finished): start a new run")
        damage = status.checkpoint_damage(run_dir)
        if damage:
            raise JobError(f"cannot resume: {damage}; train it again")
        if shipped:
            try:
                run_dir = store.copy_for_resume(
                    run_dir, Path(copy_to or status.continue_root(run_dir)).resolve())
            except (OSError, store.RunError) as e:
                raise JobError(f"cannot continue {run_dir.name} in a copy: {e}; nothing was "
                               f"kept of the copy and {run_dir.name} is unchanged") from None
        argv = [sys.executable, "-m", "genlab", "resume", str(run_dir), "--quiet"]
        argv += ["--epochs", str(int(epochs))] if epochs else []
        argv += ["--max-minutes", f"{float(max_minutes):g}"] if max_minutes is not None else []
        return _launch(run_dir, "resume", argv, TRAIN_LOG, append=True, root=root, env=env)


APP_EXACT_N = 200
"""Test images whose log p(x) an eval started from the app integrates exactly (2-D-latent
VAEs only): about 0.1 s an image on a CPU core, so the Evaluate button stays near a
minute; ``genlab eval`` alone integrates the whole split unless told --exact-n."""


def start_eval(run_dir: str | os.PathLike, *, k: int = 1, limit: int | None = None,
               device: str = "auto", root: str | os.PathLike | None = None,
               env: dict | None = None, exact_n: int = APP_EXACT_N) -> status.Job:
    """Start ``python -m genlab eval`` (writes eval.json atomically); progress:
    :func:`eval_progress`. Of two sessions pressing Evaluate on one run at once, one starts
    it and the other gets a JobError saying an eval is running (:func:`_claim`)."""
    run_dir = Path(run_dir).resolve()
    if not 1 <= int(k) <= 5000:
        raise JobError(f"k must be between 1 and 5000 (got {k})")
    argv = [sys.executable, "-m", "genlab", "eval", str(run_dir), "--k", str(int(k)),
            "--device", device, "--exact-n", str(int(exact_n))] + (
                ["--limit", str(int(limit))] if limit else [])
    with _claim(run_dir):
        if not (run_dir / store.CHECKPOINT).exists():
            raise JobError(f"{run_dir.name} has no checkpoint to evaluate yet")
        return _launch(run_dir, "eval", argv, EVAL_LOG, append=False, root=root, env=env)


def stop(run_dir: str | os.PathLike) -> bool:
    """SIGTERM the run's training process: the trainer finishes its step, saves a
    checkpoint and writes status "stopped". False when nothing is running. The process
    is found from job.json alone (by a server restarted since it started the job, too),
    and only while its pid still runs the command job.json recorded."""
    run_dir = Path(run_dir)
    job = status.read_job(run_dir)
    if job and job.alive:
        try:
            os.killpg(job.pid, signal.SIGTERM)  # its own session: the whole group
        except ProcessLookupError:
            return False
        return True
    st = status.read_status(run_dir)  # a run started from a terminal
    pid = st.pid
    if st.state in status.ACTIVE and pid is not None and status.pid_alive(pid, "genlab"):
        os.kill(pid, signal.SIGTERM)
        return True
    return False


def wait(run_dir: str | os.PathLike, timeout: float = 60.0) -> bool:
    """Block until the run's job has exited (True) or ``timeout`` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = status.read_job(run_dir)
        if not job or not job.alive:
            return True
        time.sleep(0.1)
    return False


# -- reading jobs back ----------------------------------------------------------------
def job_dirs(*roots: str | os.PathLike) -> list[Path]:
    """Run directories under ``roots`` that hold a run or a job, newest first (a job
    that failed before writing config.json is listed too)."""
    status.reap()
    found = []
    for root in map(Path, roots):
        if root.is_dir():
            found += [p for p in root.iterdir() if not p.name.startswith(".") and (
                (p / store.CONFIG).exists() or (p / JOB).exists())]  # .name: a copy being made
    return sorted(found, key=_newest_mtime, reverse=True)


def _newest_mtime(p: Path) -> float:
    times = [f.stat().st_mtime for f in (p / store.CONFIG, p / JOB) if f.exists()]
    return max(times, default=0.0)


@dataclass(frozen=True)
class RunInfo:
    """A run directory's state from its small files (config.json, status.json, job.json),
    cheap enough to poll every second or two (:func:`run_info`)."""
    path: Path
    name: str
    model: str | None  # None: no readable config.json (a job that died early)
    dataset: str | None
    state: str  # :func:`genlab.runs.status.run_state`
    message: str
    status: status.RunStatus
    job: status.Job | None
    train: dict  # the training options as config.json stores them


def run_info(path: Path) -> RunInfo:
    """The run's :class:`RunInfo`: name, model, dataset, state and one-line message, the
    status, the job and the training options."""
    cfg = store.read_json(path / store.CONFIG) or {}
    st = status.read_status(path)
    job = status.read_job(path)
    error = None
    if (path / store.CONFIG).exists():  # a job that died early may have written none
        try:
            store.read_config_dict(path)
        except store.RunError as e:
            error = str(e)
    state, msg = status.run_state(path, st, job, error=error or status.checkpoint_damage(path),
                                  has_metrics=(path / store.METRICS).exists())
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    return RunInfo(path, path.name, cfg.get("model"), train.get("dataset"), state, msg, st, job, train)


def default_watch(infos: list[RunInfo], named: str | None = None, here: str | None = None) -> str:
    """Which run to show (a path): the one ``named`` (a run folder's name, from the URL),
    else ``here`` (a path, opened from another page), else the newest one at work, else
    the newest with a readable config, else the first."""
    paths = {str(i.path): i for i in infos}
    return next((p for p, i in paths.items() if named and i.name == named), None) or (
        here if here in paths else None) or next(
        (p for p, i in paths.items() if i.state in status.ACTIVE), None) or next(
        (p for p, i in paths.items() if i.model), str(infos[0].path))


def train_size(dataset: str, limit: int | None = None) -> int:
    """Training images a run sees per epoch (:meth:`genlab.data.DatasetInfo.train_size`)."""
    return DATASETS[dataset].train_size(limit)


_PROGRESS_RE = re.compile(r"(\d+)/(\d+) \[")


def eval_progress(run_dir: str | os.PathLike) -> tuple[float | None, str]:
    """(fraction done or None, what eval is doing), from the tqdm bar in eval.log."""
    text = status.log_tail(run_dir, EVAL_LOG, lines=40)
    found = _PROGRESS_RE.findall(text)
    if found:
        done, total = map(int, found[-1])
        what = f"log p(x): {done}/{total} images" if done < total else "latent statistics"
        return (done / total if total else None), what
    return None, "loss parts on the test split" if text else "starting"
