"""Every figure builder has a docstring example that runs (issue 27, item 3).

A figure builder is a public function of a ``genlab.figures`` module or of
``genlab.lab.figures`` whose return annotation is a plotly ``Figure`` (``Figure | None``
too). Each must have a ``>>>`` example that checks something (an expected output), and every
example in those modules is run here with doctest, so one that goes stale fails the suite.
"""
from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import typing

import plotly.graph_objects as go
import pytest

import genlab.figures

MODULES = [importlib.import_module(f"genlab.figures.{m.name}")
           for m in pkgutil.iter_modules(genlab.figures.__path__)] + [importlib.import_module("genlab.lab.figures")]


def _returns_figure(fn) -> bool:
    """Whether ``fn``'s return annotation is go.Figure or a union holding it."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # an annotation that cannot be resolved here: read its text
        return "Figure" in str(inspect.signature(fn).return_annotation)
    return hint is go.Figure or go.Figure in typing.get_args(hint)


BUILDERS = {f"{m.__name__}.{name}": fn for m in MODULES for name, fn in vars(m).items()
            if not name.startswith("_") and inspect.isfunction(fn) and fn.__module__ == m.__name__
            and _returns_figure(fn)}
EXAMPLES = [t for m in MODULES
            for t in doctest.DocTestFinder().find(m, m.__name__, globs=vars(m).copy()) if t.examples]


def test_the_builders_are_found():
    short = {name.rsplit(".", 1)[1] for name in BUILDERS}
    assert {"curves_figure", "bound_figure", "latent_scatter_figure", "weights_figure",
            "posterior_figure", "given_scatter_figure", "density_figure", "view_figure",
            "model_density_figure"} <= short
    assert not short & {"scatter", "legend_top", "selected_codes", "metric_names"}  # not figures
    assert "genlab.lab.figures.curves_figure" in BUILDERS and "genlab.figures.curves.curves_figure" in BUILDERS


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_has_an_example(name):
    (test,) = doctest.DocTestFinder().find(BUILDERS[name], name)
    assert test.examples, f"{name} has no >>> example in its docstring"
    assert any(ex.want.strip() for ex in test.examples), f"{name}'s example checks nothing (no expected output)"


@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_the_examples_run(test, monkeypatch):
    shown = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: shown.append(self))  # no browser
    report: list[str] = []
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=report.append)
    assert result.attempted and result.failed == 0, f"{test.name}'s example fails:\n" + "".join(report)
    assert all(isinstance(f, go.Figure) and f.data for f in shown)


def test_every_builder_example_is_run():
    assert set(BUILDERS) <= {t.name for t in EXAMPLES}
