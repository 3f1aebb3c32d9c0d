"""Shared fixtures. Real-data tests read MNIST from $GENLAB_DATA (``.ci/run`` points it
at ../shared/datasets); without it they skip locally, but fail under CI so a missing
dataset can never pass silently."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path | None:
    for cand in (os.environ.get("GENLAB_DATA"), REPO.parent / "shared" / "datasets"):
        if cand and (Path(cand) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
            return Path(cand).resolve()  # absolute: tests symlink to it and chdir
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        msg = "MNIST not found: set GENLAB_DATA to a folder holding MNIST/raw (see README)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def mnist_small(data_root):
    """The first 2,000 MNIST training images and 500 validation images (uint8, CPU)."""
    from genlab.data import load_split

    return (load_split("mnist", "train", data_root, download=False, limit=2000),
            load_split("mnist", "val", data_root, download=False, limit=500))


@pytest.fixture
def one_thread():
    """Small models on a shared, busy CPU: one torch thread is about as fast, often faster
    (a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    torch.set_num_threads(2)
