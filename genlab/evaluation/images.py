"""Images as the evaluation modules and the pages take them: a dataset's first test images,
uint8 images turned into a model's inputs as in training (seeded), and a grid of images as
one uint8 picture. Explore, compare and posterior all read these (so none of them imports
another for them)."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..data import ImageData, binarize_static, load_split, preprocess
from ..models.base import GenerativeModel


def test_images(dataset: str, n: int, root: str | os.PathLike | None = None) -> ImageData:
    """The first ``n`` test images (uint8); a DatasetError saying what to do when they are
    missing (genlab.data.missing_message) or damaged."""
    return load_split(dataset, "test", root, download=False, limit=n)


def model_inputs(model: GenerativeModel, x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """uint8 images (B, C, H, W) -> the model's inputs in [0, 1] as in training (binarised
    or dequantised, with a seeded generator so the same image gives the same code)."""
    how = model.preprocess
    if how == "static":
        x = binarize_static(x)
    return preprocess(x, how, generator=torch.Generator(device=x.device).manual_seed(seed))


def grid_image(images: torch.Tensor, nrow: int, *, scale: int = 1, padding: int = 2) -> np.ndarray:
    """torchvision's make_grid of images (n, C, H, W) in [0, 1] (or uint8 0..255) as uint8
    (H', W', 3), enlarged ``scale`` times by pixel repetition (sharp pixels, no smoothing)."""
    from torchvision.utils import make_grid

    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    g = make_grid(x.cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)  # (3, H', W')
    g = g.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return (g * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
