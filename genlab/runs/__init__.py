"""What lives on disk: run folders (store), their status, the training jobs the app starts,
and which runs each of the app's views can show (views).

``from genlab.runs import load_model`` (the README's quickstart) reads a run folder's
model; it is looked up on first use so that importing ``genlab.runs.views`` (the pages'
list does) stays free of torch."""
from __future__ import annotations


def __getattr__(name: str):
    if name == "load_model":
        from .store import load_model

        return load_model
    raise AttributeError(f"module 'genlab.runs' has no attribute {name!r}")
