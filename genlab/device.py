"""Which torch device to train or evaluate on: ``auto`` picks cuda > mps > cpu."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def available_devices() -> tuple[str, ...]:
    """The device names this machine can use, ``auto`` first."""
    return ("auto", "cpu") + (("cuda",) if torch.cuda.is_available() else ()) + (
        ("mps",) if _mps_available() else ())


def pick_device(name: str = "auto") -> torch.device:
    """The device called ``name``; ValueError when this machine does not have it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps_available()
                            else "cpu")
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but no CUDA GPU is available; use auto or cpu")
    if name == "mps" and not _mps_available():
        raise ValueError("device mps requested but MPS is not available; use auto or cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """What status.json and the app show: the GPU's name, else the device type."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one CPU thread for a few images (a slider's decode, a strip of samples):
    such work is a string of tiny ops, and on a busy machine (a training run beside the app)
    each op of a multi-threaded pool waits until all its threads get a core: 10 to 40 times
    slower (realnvp-mnist's slider went from 30 ms to 400 ms on two loaded cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
