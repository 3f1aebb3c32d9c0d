"""What every class-conditional model shares: :class:`ClassConditional`, a mixin placed
before the family's class (``class CVAE(ClassConditional, VAE)``), whose hooks a family
gives (``class_log_probs``, ``log_prob_given``, ``decode_given``, ``sample_given``).

The contract (``caps.conditional``): the class labels y (int64 (B,) in 0..K-1, K =
``num_classes`` from the dataset) go into ``loss(x, y)``, ``sample(n, temperature, y=...)``
and ``log_prob(x, y, k=...)``; a model that encodes or decodes takes them in ``encode(x, y)``
and ``decode(z, y)`` too. The class prior p(y) is a buffer, ``log_class_prior``, set from
the training labels' frequencies after each epoch (add-one smoothed; uniform until then).
Where a caller has no label:

- ``log_prob(x)`` is the marginal log p(x) = logsumexp_y [log p(x|y) + log p(y)];
- ``sample(n)`` draws y ~ p(y) first, so it samples p(x);
- ``decode(z)`` is the average over p(y) of ``decode(z, y)`` (the mean of p(x|z) with y
  marginalised: the same code in every class, so it shows what z holds besides the class);
- ``encode(x)`` uses the class the model's own Bayes rule gives each image
  (:meth:`ClassConditional.predict`);
- ``loss(x)`` is an error: training needs the labels.

The generative classifier is Bayes' rule on the model's own densities,
p(y|x) = softmax_y [log p(x|y) + log p(y)] (:meth:`ClassConditional.class_posterior`): exact
for flows, from importance-weighted estimates of log p(x|y) for the VAE.
"""
from __future__ import annotations

import math

import torch

from ..config import opt
from ..data import DatasetInfo, ImageData

ENCODE_K = 10  # importance samples per class when encode(x) infers an image's class


def num_classes_field():
    return opt(10, "number of classes the model is conditioned on; set from the dataset",
               lo=2, hi=1000, cli=False)


class ClassConditional:
    """Mixin of a class-conditional model (see the module's docstring); the family's
    ``__init__`` calls :meth:`init_classes` after building its networks."""

    num_classes: int
    log_class_prior: torch.Tensor

    def init_classes(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        self.register_buffer("log_class_prior",
                             torch.full((self.num_classes,), -math.log(self.num_classes)))

    @classmethod
    def dataset_options(cls, info: DatasetInfo) -> dict:
        return {**super().dataset_options(info), "num_classes": len(info.classes)}

    # -- labels -------------------------------------------------------------------------
    def labels(self, y: torch.Tensor | int | None, n: int) -> torch.Tensor:
        """``y`` as int64 labels (n,) on the model's device: an int is every image's class;
        None draws n labels from p(y). A label out of 0..K-1 or a wrong length is a one-line
        ValueError (checked for ints and CPU tensors: reading a GPU tensor would sync)."""
        device = self.log_class_prior.device
        K = self.num_classes
        if y is None:  # inverse CDF of p(y): no multinomial kernel needed on any device
            cdf = torch.cumsum(self.log_class_prior.exp(), 0)
            u = torch.rand(n, device=device) * cdf[-1]
            return torch.searchsorted(cdf, u).clamp(max=K - 1)
        if isinstance(y, (int, float)) or (isinstance(y, torch.Tensor) and y.dim() == 0):
            c = int(y)
            if float(y) != c or not 0 <= c < K:
                raise ValueError(f"class label {y} is not one of this {self.kind} model's "
                                 f"classes 0..{K - 1}")
            return torch.full((n,), c, dtype=torch.long, device=device)
        y = torch.as_tensor(y)
        if y.shape != (n,):
            raise ValueError(f"labels of shape {tuple(y.shape)} for {n} images: give one "
                             "class label per image, shape (n,)")
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"class labels must be integers 0..{K - 1} (got {y.dtype})")
        if y.device.type == "cpu" and len(y) and not (0 <= int(y.min()) and int(y.max()) < K):
            raise ValueError(f"class labels must lie in 0..{K - 1} (got {int(y.min())}.."
                             f"{int(y.max())})")
        return y.to(device=device, dtype=torch.long)

    def needs_labels(self, y: torch.Tensor | None, what: str = "loss") -> torch.Tensor:
        if y is None:
            raise ValueError(f"{self.kind} is class-conditional: {what} needs the class labels "
                             f"y (0..{self.num_classes - 1}), as in {what}(x, y)")
        return y

    def one_hot(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Labels (...) -> one-hot (..., K) in the dtype and on the device of ``like`` (no
        range check and no device sync: the labels come checked or from the data)."""
        classes = torch.arange(self.num_classes, device=like.device)
        return (y.to(like.device)[..., None] == classes).to(like.dtype)

    def on_epoch_end(self, train: ImageData) -> None:
        """p(y) from the training labels' frequencies, add-one smoothed (every class keeps
        some mass), then the family's own epoch hook."""
        counts = torch.bincount(train.y.cpu(), minlength=self.num_classes)[:self.num_classes]
        prior = (counts.double() + 1) / (counts.sum() + self.num_classes)
        self.log_class_prior.copy_(prior.log().to(self.log_class_prior))
        super().on_epoch_end(train)

    # -- what each family gives -----------------------------------------------------------
    def log_prob_given(self, x: torch.Tensor, y: torch.Tensor, k: int = 1) -> torch.Tensor:
        """log p(x|y) in nats per image (B,): exact, or from k importance samples."""
        raise NotImplementedError

    def decode_given(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] of latents z (n, d) in classes y (n,)."""
        raise NotImplementedError

    def sample_given(self, n: int, temperature: float, y: torch.Tensor) -> torch.Tensor:
        """n images in [0, 1] of classes y (n,) at ``temperature``."""
        raise NotImplementedError

    # -- the contract, from those -----------------------------------------------------------
    @torch.inference_mode()
    def class_log_probs(self, x: torch.Tensor, k: int = 1) -> torch.Tensor:
        """log p(x|y) of every class y: (B, K), one likelihood per class (K times the cost
        of one log p(x); k importance samples each for a latent-variable model)."""
        cols = [self.log_prob_given(x, torch.full((len(x),), c, dtype=torch.long,
                                                  device=x.device), k)
                for c in range(self.num_classes)]
        return torch.stack(cols, dim=-1)

    def class_posterior(self, x: torch.Tensor, k: int = 1) -> torch.Tensor:
        """log p(y|x) (B, K) by Bayes' rule: log p(x|y) + log p(y), normalised over y."""
        return torch.log_softmax(self.class_log_probs(x, k) + self.log_class_prior, dim=-1)

    def log_prob_marginal(self, x: torch.Tensor, k: int, log_r: torch.Tensor) -> torch.Tensor:
        """log p(x) (B,) given a proposal over the classes, log r(y|x) (B, K) (normalised,
        no class at zero; eval makes it from the classifier). Exact families: the exact
        logsumexp_y [log p(x|y) + log p(y)] (r and k unused). An importance-weighted family
        overrides it: k joint draws y ~ r(y|x), z ~ its proposal given y, so that the k
        samples go to the classes that matter (:class:`~genlab.models.cvae.CVAE`)."""
        if self.caps.likelihood != "exact":
            raise NotImplementedError(f"{type(self).__name__} gives no log_prob_marginal")
        return self.log_prob(x)

    def predict(self, x: torch.Tensor, k: int = ENCODE_K) -> torch.Tensor:
        """The most probable class of each image (B,) by Bayes' rule."""
        return (self.class_log_probs(x, k) + self.log_class_prior).argmax(-1)

    @torch.inference_mode()
    def log_prob(self, x: torch.Tensor, y: torch.Tensor | int | None = None, k: int = 1,
                 **_) -> torch.Tensor:
        """log p(x|y) in nats per image (B,); without y the marginal log p(x) =
        logsumexp_y [log p(x|y) + log p(y)] (K likelihoods an image). For an
        importance-weighted family that marginal is itself an importance-weighted estimate,
        from k samples of each class's proposal."""
        if y is not None:
            return self.log_prob_given(x, self.labels(y, len(x)), k)
        return torch.logsumexp(self.class_log_probs(x, k) + self.log_class_prior, dim=-1)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               y: torch.Tensor | int | None = None) -> torch.Tensor:
        """n images in [0, 1] of classes y (an int: all of that class; None: y ~ p(y))."""
        t = self.check_temperature(temperature)
        return self.sample_given(n, t, self.labels(y, n))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """Images in [0, 1] of latents z (n, d) in classes y; without y the average over
        p(y) of each class's decode (the mean of p(x|z), y marginalised)."""
        if y is not None:
            return self.decode_given(z, self.labels(y, len(z)))
        w = self.log_class_prior.exp()
        out = 0.0
        for c in range(self.num_classes):
            out = out + w[c] * self.decode_given(z, self.labels(c, len(z)))
        return out

    def sample_grid(self, n: int, temperature: float = 1.0, *,
                    seed: int = 0) -> tuple[torch.Tensor, int]:
        """One row per class, ceil(n / K) samples each (the epoch grids, Home's tiles)."""
        per = max(1, math.ceil(n / self.num_classes))
        y = torch.arange(self.num_classes).repeat_interleave(per)
        return self.seeded_sample(len(y), temperature, seed=seed, y=y), per

    def infer(self, x: torch.Tensor, y: torch.Tensor | int | None) -> torch.Tensor:
        """The labels of images x: y checked, or the model's own prediction without y."""
        return self.predict(x) if y is None else self.labels(y, len(x))
