"""The Latent explorer's sections for class-conditional models (issue 28; not a page
itself): a class picker for the fresh draws, a grid of one row per class at the draws'
temperature, and the CVAE's analogy (genlab.evaluation.explore's class_grid and analogy,
cached in pages/ui/cache.py)."""
from __future__ import annotations

import streamlit as st

from genlab.data import data_root
from genlab.evaluation import explore
from pages.ui import cache, explore_ui as ui

PER_CLASS = 10  # columns of the class grid
ANY = "any"  # the picker's first option: y ~ p(y)


def names(run: ui.Run) -> list[str]:
    return explore.class_names(run.model, run.classes)


def class_picker(run: ui.Run, where) -> int | None:
    """The class the fresh draws are of (None: drawn from the model's p(y))."""
    labels = names(run)
    pick = where.selectbox("Class of the draws", [ANY, *range(len(labels))], key=f"class-{run.key}",
                           format_func=lambda c: "any: y ~ p(y)" if c == ANY else labels[c],
                           help="A class-conditional model samples p(x | y) for the class picked "
                                "here; *any* draws each image's class from the training labels' "
                                "frequencies p(y) first, which samples p(x).")
    return None if pick == ANY else int(pick)


def draws_caption(run: ui.Run, label: int | None) -> str:
    return (f"of class {names(run)[label]}" if label is not None
            else "their classes drawn from p(y)")


def class_grid_ui(run: ui.Run, t: float, seed: int) -> None:
    labels = names(run)
    st.subheader("One row per class", anchor=False)
    st.image(cache.class_grid(run.path, run.stamp, PER_CLASS, t, seed),
             caption=f"{len(labels)} x {PER_CLASS} samples at T = {t:.2f} (seed {seed}), one row "
                     f"per class, {labels[0]} at the top to {labels[-1]} at the bottom; every row "
                     "draws the same random numbers, so down a column only the label changes")


ANALOGY_STARTS = tuple(range(0, 1000, explore.ANALOGY_IMAGES))


def analogy_ui(run: ui.Run) -> None:
    """8 test images encoded with their own labels, each code decoded with every label."""
    st.subheader("Analogies: style kept, class changed", anchor=False)
    n = explore.ANALOGY_IMAGES
    if ui.test_images(run, ANALOGY_STARTS[-1] + n, "the analogies") is None:
        return
    first = st.select_slider("Test images from", ANALOGY_STARTS, value=0, key=f"analogy-{run.key}",
                             format_func=lambda i: f"{i}..{i + n - 1}")
    labels = names(run)
    st.image(cache.analogy_grid(run.path, run.stamp, run.dataset, str(data_root()), first, n),
             caption=f"Test images {first}..{first + n - 1} (left column, as the model reads them), "
                     "each encoded with its own label to the mean of q(z | x, y), then that code "
                     f"decoded with every label, {labels[0]} to {labels[-1]} left to right: the code "
                     "keeps the style (slant, stroke width), the label sets the class")
