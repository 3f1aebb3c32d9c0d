"""Fréchet distance in the feature space of genlab's own classifiers ("FID").

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium") fits a Gaussian to the features of real and of generated
images and reports the Fréchet (2-Wasserstein) distance between the two Gaussians:

    FID = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2}).

Two feature spaces (``fid_features``, ``eval --fid-features``):

* ``"genlab"`` (the default): a small CNN classifier trained per dataset
  (``benchmarks/train_fid_nets.py``; weights and their test accuracy ship in
  ``checkpoints/fid/``). **These numbers are not comparable with Inception FID**: they
  compare genlab models with each other, on the same dataset. eval.json says
  ``"fid_features": "genlab-<dataset>"``.
* ``"inception"``: Inception-v3's pool3 features (2048-d) with the standard FID
  preprocessing of pytorch-fid and torchmetrics (grey to 3 channels, bilinear resize to
  299x299, pixels scaled to [-1, 1]), from **torchvision's ImageNet weights**
  (``Inception_V3_Weights.IMAGENET1K_V1``), read from torch's hub cache
  (``torch.hub.get_dir()/checkpoints``), where ``torchvision.models.inception_v3(weights=
  "IMAGENET1K_V1")`` puts them once online; never downloaded from here. The papers' FID
  uses the TensorFlow FID Inception weights (``pt_inception-2015-12-05``, what pytorch-fid
  and torchmetrics load), which differ from torchvision's: these figures compare with the
  papers' only approximately. eval.json says ``"fid_features": "inception-v3-torchvision"``
  and carries that note.
"""
from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..data import DATASETS, ImageData, dataset_info

FID_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "fid"
"""Shipped feature networks: ``<dataset>.pt`` (weights) and ``<dataset>.json`` (accuracy)."""


FID_FEATURES = ("genlab", "inception")
"""The feature spaces FID can be measured in (see the module docstring)."""
INCEPTION_ID = "inception-v3-torchvision"
INCEPTION_NOTE = ("Inception-v3 pool3 features from torchvision's ImageNet weights (IMAGENET1K_V1), "
                  "not the TensorFlow FID weights of the papers (pytorch-fid, torchmetrics): "
                  "comparable with published FID only approximately")


class FeatureNetError(RuntimeError):
    """A feature network file is missing or unusable; the message says which and why."""


class InceptionWeightsError(FeatureNetError, OSError):
    """Inception-v3's weights file cannot be used; the message says why and what to do."""


class InceptionWeightsMissing(InceptionWeightsError, FileNotFoundError):
    """Inception-v3's weights are not in torch's hub cache; the message says how to get them."""


class FeatureNet(nn.Module):
    """Small CNN classifier whose penultimate layer is the FID feature space.

    Three 3x3 conv blocks (widths 32-64-128, batch norm, ReLU; 2x2 max-pool after the
    first two), adaptive average pooling to 3x3, then a ``feature_dim`` linear layer
    with ReLU (the features) and a linear classifier. Plays the role Inception-v3's
    pool3 layer plays in Heusel et al. 2017 (FID), for one small dataset.
    Inputs are images in [0, 1] at the dataset's shape (C, H, W).
    """
    batch_size = 1000  # images per forward pass in features()

    def __init__(self, shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                 widths: tuple[int, int, int] = (32, 64, 128), feature_dim: int = 128):
        super().__init__()
        self.shape, self.feature_dim = tuple(shape), feature_dim
        c = shape[0]
        layers: list[nn.Module] = []
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(3), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(9 * c, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x - 0.5)  # (B, 9 * widths[-1])
        return self.embed(h)  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes) logits

    def fused(self) -> "FeatureNet":
        """Inference copy with each batch norm folded into its convolution and in-place
        ReLUs: the same outputs up to rounding, ~1.5x faster on CPU."""
        net = copy.deepcopy(self).eval()
        mods = list(net.conv)
        for i, m in enumerate(mods):
            if isinstance(m, nn.BatchNorm2d) and isinstance(mods[i - 1], nn.Conv2d):
                net.conv[i - 1], net.conv[i] = fuse_conv_bn_eval(mods[i - 1], m), nn.Identity()
            elif isinstance(m, nn.ReLU):
                m.inplace = True
        return net


# -- shipped weights ----------------------------------------------------------------
def net_paths(dataset: str, folder: str | Path | None = None) -> tuple[Path, Path]:
    """(weights, metrics json) of the feature network for ``dataset``."""
    folder = Path(folder) if folder is not None else FID_DIR
    return folder / f"{dataset}.pt", folder / f"{dataset}.json"


def load_feature_net(path: str | Path) -> FeatureNet:
    """Build a :class:`FeatureNet` from a file (``torch.load(weights_only=True)``),
    fused for inference (:meth:`FeatureNet.fused`), in eval mode on the CPU.
    Raises :class:`FeatureNetError` if missing or corrupt."""
    path = Path(path)
    if not path.exists():
        raise FeatureNetError(
            f"{path}: no FID feature network here; train it with "
            f"`python benchmarks/train_fid_nets.py --datasets {path.stem}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        net = FeatureNet(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in ckpt["config"].items()})
        net.load_state_dict(ckpt["model"])
    except Exception as e:  # unpickling, truncation, missing keys, shape mismatches
        raise FeatureNetError(f"{path}: FID feature network is corrupt or from another "
                              f"version ({type(e).__name__}: {e}); delete it and rerun "
                              f"benchmarks/train_fid_nets.py") from None
    # channels-last convolutions run ~1.5x faster on CPU for these small images
    return net.fused().requires_grad_(False).to(memory_format=torch.channels_last)


@lru_cache(maxsize=None)
def feature_net(dataset: str) -> FeatureNet:
    """The shipped feature network of ``dataset`` (loaded once per process)."""
    dataset_info(dataset)  # unknown names raise ValueError
    return load_feature_net(net_paths(dataset)[0])


def net_info(dataset: str) -> dict:
    """The metrics stored beside the weights (test accuracy, feature dim, seconds, ...)."""
    path = net_paths(dataset)[1]
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FeatureNetError(f"{path}: cannot read the feature network's metrics ({e})") from None


# -- Inception-v3 (torchvision's weights, from torch's hub cache) -------------------
class InceptionFeatures(nn.Module):
    """Inception-v3's pool3 layer (the 2048-d average pool before dropout and the
    classifier) with the standard FID preprocessing, as pytorch-fid and torchmetrics do it:
    grey images repeated to 3 channels, a bilinear resize to 299x299 (align_corners=False),
    pixels in [0, 1] scaled to [-1, 1]. The range is what torchvision's weights see too:
    its ``transform_input`` maps ImageNet-normalised pixels to exactly 2x - 1.
    Reference: > C. Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016;
    M. Heusel et al., NeurIPS 2017 (FID on pool3).
    """
    batch_size = 50  # 299x299 inputs: a batch of 50 is ~1 GB of activations
    feature_dim = 2048
    shape = None  # any (C, H, W) with C in (1, 3): resized to 299x299
    size = 299

    def __init__(self, net: nn.Module):
        super().__init__()
        net.fc, net.AuxLogits, net.aux_logits = nn.Identity(), None, False  # pool3 out
        self.net = net.eval()

    @staticmethod
    def preprocess(x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1], C in (1, 3) -> (B, 3, 299, 299) in [-1, 1]."""
        if x.shape[1] not in (1, 3):
            raise ValueError(f"Inception features need 1 or 3 channels, got {x.shape[1]}")
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # grey -> RGB
        size = InceptionFeatures.size
        x = nnf.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(x))  # (B, 2048)


def inception_weights_path() -> Path:
    """Where torchvision keeps Inception-v3's ImageNet weights once downloaded:
    torch.hub.get_dir()/checkpoints/inception_v3_google-0cc3c7bd.pth."""
    from torchvision.models import Inception_V3_Weights

    name = Path(urlparse(Inception_V3_Weights.IMAGENET1K_V1.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def load_inception(path: str | Path | None = None) -> InceptionFeatures:
    """:class:`InceptionFeatures` from a torchvision Inception-v3 state dict file
    (default: :func:`inception_weights_path`), loaded with ``weights_only=True``, never
    downloaded. InceptionWeightsMissing (one line: how to get the file) when it is not
    there, InceptionWeightsError when it is not a usable state dict (both OSErrors and
    FeatureNetErrors)."""
    from torchvision.models import Inception3

    path = Path(path) if path is not None else inception_weights_path()
    if not path.is_file():
        raise InceptionWeightsMissing(
            f"{path}: no Inception-v3 weights in torch's hub cache (--fid-features inception); "
            "download them once while online: python -c \"import torchvision; "
            "torchvision.models.inception_v3(weights='IMAGENET1K_V1')\" (104 MB), or copy "
            f"{path.name} into {path.parent}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = Inception3(aux_logits=True, transform_input=False, init_weights=False)
        net.load_state_dict(state)
    except Exception as e:  # unpickling, truncation, missing keys, shape mismatches
        raise InceptionWeightsError(f"{path}: not a torchvision Inception-v3 state dict "
                              f"({type(e).__name__}: {str(e)[:160]}); delete it and download "
                              "it again") from None
    return InceptionFeatures(net).requires_grad_(False)


@lru_cache(maxsize=1)
def inception_net() -> InceptionFeatures:
    """Inception-v3 from torch's hub cache (loaded once per process)."""
    return load_inception()


def feature_space(fid_features: str, dataset: str) -> nn.Module:
    """The network whose features FID is measured in: the shipped net of ``dataset`` for
    "genlab", Inception-v3 for "inception" (see FID_FEATURES)."""
    if fid_features == "genlab":
        return feature_net(dataset)
    if fid_features == "inception":
        return inception_net()
    raise ValueError(f"unknown FID features {fid_features!r}; one of {', '.join(FID_FEATURES)}")


def check_features(fid_features: str) -> None:
    """Raise now what measuring FID in ``fid_features`` would raise for want of weights:
    InceptionWeightsMissing, ValueError for an unknown name. (A dataset without a shipped
    genlab net is found out when it is measured: eval.json then says why its FID is None.)"""
    if fid_features == "inception":
        inception_net()
    elif fid_features not in FID_FEATURES:
        raise ValueError(f"unknown FID features {fid_features!r}; one of {', '.join(FID_FEATURES)}")


def features_id(fid_features: str, dataset: str) -> str:
    """What eval.json records as ``fid_features``: "genlab-<dataset>" or INCEPTION_ID."""
    return INCEPTION_ID if fid_features == "inception" else f"genlab-{dataset}"


def is_inception(fid_features_id: str | None) -> bool:
    """Whether an eval.json ``fid_features`` names Inception features (files written
    before the field existed measured with genlab's nets)."""
    return fid_features_id == INCEPTION_ID


# -- features and the Fréchet distance ----------------------------------------------
def as_unit_images(images: torch.Tensor | ImageData) -> torch.Tensor:
    """uint8 pixels (or an ImageData) -> float in [0, 1]; float images are checked."""
    x = images.x if isinstance(images, ImageData) else images
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    x = x.float()
    if x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3 or not torch.isfinite(x).all()):
        raise ValueError("images must be finite and in [0, 1] (float) or uint8 pixels; got "
                         f"range [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return x.clamp(0, 1)


@torch.no_grad()
def features(images: torch.Tensor | ImageData, dataset: str | FeatureNet | InceptionFeatures, *,
             batch_size: int | None = None) -> torch.Tensor:
    """Feature vectors of images in [0, 1] (N, C, H, W): (N, F), float64 on the CPU, in
    ``dataset``'s shipped net or the network given. The network runs on the images'
    device, ``batch_size`` images at a time (default: the network's own)."""
    net = feature_net(dataset) if isinstance(dataset, str) else dataset
    x = images.x if isinstance(images, ImageData) else images
    if net.shape is not None and tuple(x.shape[1:]) != net.shape:
        raise ValueError(f"images of shape {tuple(x.shape[1:])}, the feature network "
                         f"expects {net.shape}")
    net = net.to(x.device)
    cl = torch.channels_last
    out = [net.features(as_unit_images(xb).contiguous(memory_format=cl)).double().cpu()
           for xb in x.split(batch_size or net.batch_size)]  # each (b, F)
    return torch.cat(out) if out else torch.empty(0, net.feature_dim, dtype=torch.float64)


def gaussian_stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), in float64."""
    f = f.double()
    if f.dim() == 1:
        f = f[:, None]  # (N,) -> (N, 1)
    if len(f) < 2:
        raise ValueError("need at least 2 feature vectors to fit a Gaussian")
    return f.mean(0), torch.atleast_2d(torch.cov(f.T))


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix via its eigen-decomposition."""
    w, v = torch.linalg.eigh((s + s.T) / 2)  # (F,), (F, F)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1: torch.Tensor, s1: torch.Tensor, mu2: torch.Tensor,
                     s2: torch.Tensor) -> float:
    """Fréchet distance between N(mu1, s1) and N(mu2, s2), in float64.

    tr (s1 s2)^{1/2} = tr (s1^{1/2} s2 s1^{1/2})^{1/2}; the inner matrix is symmetric PSD,
    so its eigenvalues are real and non-negative (rounding is clamped): this stays stable
    for singular covariances, where ``sqrtm(s1 @ s2)`` can turn complex.
    """
    mu1, s1, mu2, s2 = (t.double() for t in (mu1, s1, mu2, s2))
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1  # (F, F), symmetric PSD
    tr_cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    d = (mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * tr_cross
    return max(float(d), 0.0)


def fid_to_stats(f: torch.Tensor, mu: torch.Tensor, s: torch.Tensor) -> float:
    """Fréchet distance between a Gaussian fitted to features f (N, F) and N(mu, s).

    With N <= F (say 1,000 samples in Inception's 2,048 dimensions) the fitted covariance
    is a^T a, a = centred f / sqrt(N - 1), and tr (S_f^{1/2} s S_f^{1/2})^{1/2} is the sum of
    the square roots of the eigenvalues of a s a^T (N x N; the same non-zero eigenvalues as
    s a^T a): the same distance without an F x F eigendecomposition."""
    f = f.double()
    if len(f) < 2 or len(f) > f.shape[1]:
        return frechet_distance(*gaussian_stats(f), mu, s)
    mu, s = mu.double(), s.double()
    mu_f = f.mean(0)
    a = (f - mu_f) / (len(f) - 1) ** 0.5  # (N, F)
    m = a @ s @ a.T  # (N, N), symmetric PSD
    tr_cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    d = (mu_f - mu).square().sum() + a.square().sum() + s.trace() - 2 * tr_cross
    return max(float(d), 0.0)


def fid_from_features(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, F), (N2, F)."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def fid(images_a: torch.Tensor | ImageData, images_b: torch.Tensor | ImageData,
        dataset: str) -> float:
    """FID between two image sets in [0, 1] (or uint8) in ``dataset``'s feature space."""
    return fid_from_features(features(images_a, dataset), features(images_b, dataset))


# -- models -------------------------------------------------------------------------
_REF_STATS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def reference_stats(images: torch.Tensor | ImageData, dataset: str,
                    fid_features: str = "genlab") -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian stats of real images' features, cached in memory by content hash."""
    x = images.x if isinstance(images, ImageData) else images
    digest = hashlib.blake2b(np.ascontiguousarray(x.detach().cpu().numpy()).tobytes(),
                             digest_size=16).hexdigest()
    key = (fid_features, dataset, str(x.dtype), tuple(x.shape), digest)
    if key not in _REF_STATS:
        _REF_STATS[key] = gaussian_stats(features(x, feature_space(fid_features, dataset)))
    return _REF_STATS[key]


@torch.no_grad()
def sample_features(model: nn.Module, n: int, dataset: str, *, batch_size: int = 500,
                    seed: int = 0, fid_features: str = "genlab") -> torch.Tensor:
    """Features (n, F) of ``n`` model samples drawn ``batch_size`` at a time (seeded,
    without disturbing the caller's random state)."""
    net = feature_space(fid_features, dataset)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    forked = [device.index or 0] if device.type == "cuda" else []
    out = []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(seed)
        for i in range(0, n, batch_size):
            x = model.sample(min(batch_size, n - i))  # (b, C, H, W) in [0, 1]
            out.append(features(x, net))
    model.train(was_training)
    return torch.cat(out)


def fid_model(model: nn.Module, test_images: torch.Tensor | ImageData, n: int = 10000, *,
              dataset: str | None = None, batch_size: int = 500, seed: int = 0,
              fid_features: str = "genlab") -> float:
    """FID between ``n`` samples of ``model`` and the real ``test_images``.

    ``dataset`` picks the feature network (default: ``test_images.dataset``), or
    ``fid_features="inception"`` Inception-v3 (:class:`InceptionFeatures`). The real
    images' statistics are cached, so scoring several models costs one pass over them.
    Use the same n for both sets (FID is biased upward for small n).
    """
    if dataset is None:
        if not isinstance(test_images, ImageData):
            raise ValueError("pass dataset= when test_images is a plain tensor")
        dataset = test_images.dataset
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}")
    mu_r, s_r = reference_stats(test_images, dataset, fid_features)
    f = sample_features(model, n, dataset, batch_size=batch_size, seed=seed,
                        fid_features=fid_features)
    return fid_to_stats(f, mu_r, s_r)


@torch.no_grad()
def accuracy(net: FeatureNet, data: ImageData, batch_size: int = 1000) -> float:
    """Classification accuracy of a feature network on labelled images."""
    net.eval()
    hits = sum(int((net(as_unit_images(xb)).argmax(1) == yb).sum())
               for xb, yb in zip(data.x.split(batch_size), data.y.split(batch_size)))
    return hits / max(len(data), 1)
