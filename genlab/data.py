"""Datasets, splits and per-model preprocessing.

Each split is read once through ``torchvision.datasets`` into a uint8 tensor
(N, C, H, W) with its labels beside it; training slices batches from that tensor
(on the training device when it fits), so there are no per-item Python transforms
in the training loop.
"""
from __future__ import annotations

import functools
import math
import os
import socket
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PREPROCESS = ("dynamic", "static", "dequantize")
"""How uint8 pixels become model inputs in [0, 1]:
dynamic    -- binarise with a fresh Bernoulli draw per batch (Salakhutdinov & Murray 2008)
static     -- binarise once with a fixed seed (the same binary images every epoch)
dequantize -- uniform dequantisation (x + u) / 256, u ~ U[0, 1), for densities on [0, 1]
"""
STATIC_SEED = 20140101


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    classes: tuple[str, ...]
    val_size: int  # held out from the training split, fixed and seeded
    folder: str  # where torchvision looks under the data root
    files: tuple[str, ...]  # what torchvision expects in that folder
    train_images: int  # the training split's images, before the validation ones are held out

    def train_size(self, limit: int | None = None) -> int:
        """Training images a run sees per epoch: the training split without its
        validation part, or ``limit`` when smaller."""
        n = self.train_images - self.val_size
        return min(n, int(limit)) if limit else n


_DIGITS = tuple(str(i) for i in range(10))
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", (1, 28, 28), _DIGITS, 5000, "MNIST/raw", _MNIST_FILES, 60_000),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", (1, 28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        5000, "FashionMNIST/raw", _MNIST_FILES, 60_000),
    # SVHN (Netzer et al. 2011): 73,257 train images (8,257 held out here), 26,032 test
    "svhn": DatasetInfo("svhn", (3, 32, 32), _DIGITS, 8257, ".",
                        ("train_32x32.mat", "test_32x32.mat"), 73_257),
}
SPLITS = ("train", "val", "test")


class DatasetError(RuntimeError):
    """A dataset is missing or damaged; the message says which files and where."""


def data_root(arg: str | os.PathLike | None = None) -> Path:
    """``--data-root`` if given, else ``$GENLAB_DATA``, else ``./data``."""
    return Path(arg or os.environ.get("GENLAB_DATA") or "data")


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def dataset_present(name: str, root: str | os.PathLike | None = None) -> bool:
    info = dataset_info(name)
    folder = data_root(root) / info.folder
    return all((folder / f).exists() for f in info.files)


@dataclass
class ImageData:
    """One split in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""
    x: torch.Tensor
    y: torch.Tensor
    dataset: str
    split: str

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> "ImageData":
        return ImageData(self.x.to(device), self.y.to(device), self.dataset, self.split)


def missing_message(name: str, root: str | os.PathLike | None = None, why: str = "") -> str:
    """The one message for a dataset that is not under the data root: where it was looked
    for, the files expected, why it could not be fetched (``why``, if known), and the
    ways to get it. The loader, the Train page and the other pages all say this. The folder
    reads as the data root was given (relative to where genlab runs), as the app's sidebar
    shows it."""
    info = dataset_info(name)
    folder = data_root(root) / info.folder
    held = "them" if info.folder == "." else info.folder + "/"
    return (f"{name} is not in {folder} (expected {', '.join(info.files)})"
            f"{f'; {why}' if why else ''}. Put those files there, point --data-root or "
            f"GENLAB_DATA at a folder holding {held}, or train it once from a terminal while "
            "online (torchvision downloads it)")


@functools.cache
def _svhn_reader() -> type:
    """torchvision's SVHN reader; the md5 is checked where it downloads (download_url
    verifies every fresh file) but not on each load, so a local or re-packed .mat in
    torchvision's format loads too (a damaged one still fails in loadmat)."""
    import torchvision

    class SVHN(torchvision.datasets.SVHN):
        def _check_integrity(self) -> bool:
            return os.path.isfile(os.path.join(self.root, self.filename))

    return SVHN


DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation: an offline machine fails fast, not after minutes


@contextmanager
def _socket_timeout(seconds: float | None):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _torchvision_split(info: DatasetInfo, root: Path, train: bool, download: bool):
    """Raw (x, y) numpy/tensor pair for torchvision's train or test split."""
    with _socket_timeout(DOWNLOAD_TIMEOUT_S if download else socket.getdefaulttimeout()):
        import torchvision  # here, not at the top: it imports torch._dynamo, a second the app's
        # first page (which reads no images) should not wait for
        if info.name == "svhn":
            ds = _svhn_reader()(str(root / info.folder), split="train" if train else "test", download=download)
            return torch.from_numpy(np.ascontiguousarray(ds.data)), torch.as_tensor(ds.labels)
        cls = torchvision.datasets.MNIST if info.name == "mnist" else torchvision.datasets.FashionMNIST
        ds = cls(str(root), train=train, download=download)
    return ds.data.unsqueeze(1), ds.targets


def _idx_header(path: Path, ndim: int, dataset: str) -> tuple[int, ...]:
    """The dimensions in an MNIST-format (idx) file's header, after checking that its
    magic number and its size agree with them; DatasetError naming the file if not."""
    magic = 0x800 + ndim  # unsigned bytes, ndim dimensions
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4 + 4 * ndim)
    except OSError as e:
        raise DatasetError(f"dataset {dataset!r}: cannot read {path} ({e.strerror or e})") from None
    problem = None
    if len(head) < 4 + 4 * ndim:
        problem = f"{size} bytes, too short for an idx header"
    else:
        got, *dims = struct.unpack(f">{1 + ndim}I", head)
        want = len(head) + math.prod(dims)
        if got != magic:
            problem = f"not an idx{ndim} file: magic number {got:#x}, expected {magic:#x}"
        elif size != want:
            problem = (f"{size:,} bytes where its header ({'x'.join(map(str, dims))}) needs "
                       f"{want:,}: {'truncated' if size < want else 'extra bytes at the end'}")
    if problem:
        raise DatasetError(f"dataset {dataset!r}: file {path} is damaged ({problem}); delete it "
                           "and download it again, or copy a good one there")
    return tuple(dims)


def _check_idx_files(info: DatasetInfo, root: Path, train: bool) -> None:
    """MNIST and Fashion-MNIST: the split's image and label files must be whole and agree
    (a copy cut short is named here, not reported as a reshape error from torchvision)."""
    folder = (root / info.folder).resolve()
    prefix = "train" if train else "t10k"
    images, labels = folder / f"{prefix}-images-idx3-ubyte", folder / f"{prefix}-labels-idx1-ubyte"
    n, h, w = _idx_header(images, 3, info.name)
    (m,) = _idx_header(labels, 1, info.name)
    if (1, h, w) != info.shape:
        raise DatasetError(f"dataset {info.name!r}: file {images} is damaged (images of {h}x{w}, "
                           f"expected {'x'.join(map(str, info.shape[1:]))}); delete it and "
                           "download it again, or copy a good one there")
    if n != m:
        raise DatasetError(f"dataset {info.name!r}: file {labels} is damaged or does not belong "
                           f"with {images.name} ({m} labels for {n} images); delete both and "
                           "download them again")


def _read(info: DatasetInfo, root: Path, train: bool, download: bool):
    present = dataset_present(info.name, root)
    if not present and not download:
        raise DatasetError(missing_message(info.name, root, "downloading is off here"))
    if present and info.files == _MNIST_FILES:
        _check_idx_files(info, root, train)
    try:
        x, y = _torchvision_split(info, root, train, download and not present)
    except DatasetError:
        raise
    except Exception as e:  # urllib, checksum and parse errors all land here
        if not dataset_present(info.name, root):
            raise DatasetError(missing_message(info.name, root, "the download failed "
                                               f"({type(e).__name__})")) from None
        raise DatasetError(f"dataset {info.name!r} in {(root / info.folder).resolve()} is "
                           f"damaged ({type(e).__name__}: {e}); delete the files "
                           f"{', '.join(info.files)} there and download again") from None
    x = torch.as_tensor(x, dtype=torch.uint8)
    if tuple(x.shape[1:]) != info.shape:
        raise DatasetError(f"dataset {info.name!r} in {(root / info.folder).resolve()} has images of "
                           f"shape {tuple(x.shape[1:])}, expected {info.shape}")
    return x.contiguous(), torch.as_tensor(y, dtype=torch.int64)


def load_split(name: str, split: str, root: str | os.PathLike | None = None, *,
               download: bool = True, limit: int | None = None) -> ImageData:
    """Load ``split`` ("train", "val" or "test") of dataset ``name`` into memory.

    The validation split is a fixed, seeded subset of torchvision's training split
    and is never part of "train"; "test" is torchvision's test split, untouched.
    ``limit`` keeps only the first N images of the split (for quick runs and tests).
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = data_root(root)
    x, y = _read(info, root, split != "test", download)
    if split != "test":
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        idx = perm[:info.val_size] if split == "val" else perm[info.val_size:].sort().values
        x, y = x[idx], y[idx]
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return ImageData(x, y, name, split)


def preprocess(x: torch.Tensor, how: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float in [0, 1] as the model expects (see PREPROCESS).

    For "static" the caller binarises the whole split once with :func:`binarize_static`
    (pixels 0 or 255), so here it is a plain rescale.
    """
    xf = x.float()
    if how == "dynamic":
        return torch.bernoulli(xf / 255.0, generator=generator)
    if how == "static":
        return xf / 255.0
    if how == "dequantize":
        u = torch.rand(xf.shape, generator=generator, device=xf.device)
        # keep x + u < x + 1 in float32 (255 + 0.99999994 rounds to 256), so that
        # floor(256 * result) gives back the 8-bit pixel and the result stays below 1
        return (xf + u.clamp_(max=1.0 - 2.0 ** -16)) / 256.0
    raise ValueError(f"unknown preprocessing {how!r}; choose one of {', '.join(PREPROCESS)}")


def binarize_static(x: torch.Tensor, seed: int = STATIC_SEED) -> torch.Tensor:
    """Fixed binarisation of a whole split: uint8 pixels 0 or 255, same result every call."""
    g = torch.Generator().manual_seed(seed)
    bits = torch.bernoulli(x.float().cpu() / 255.0, generator=g)
    return (bits * 255).to(torch.uint8).to(x.device)


def prepare(data: ImageData, how: str) -> ImageData:
    """Do once per split what can be done once: static binarisation."""
    if how == "static":
        return ImageData(binarize_static(data.x), data.y, data.dataset, data.split)
    return data


def batches(n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
    """Index tensors for one pass over n items (the last batch may be smaller)."""
    order = (torch.randperm(n, generator=generator).to(device) if shuffle
             else torch.arange(n, device=device))
    return order.split(batch_size)
