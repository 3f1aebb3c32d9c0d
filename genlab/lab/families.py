"""The lab's small 2-D models, one per genlab family, built from genlab's own parts.

- flows trained by maximum likelihood on samples: RealNVP (``genlab.flows.vector_coupling``,
  affine, one conditioner net for scale and shift: half the work of two, which decides the
  speed of a 2-D flow), NICE (additive couplings and ``DiagonalScaling``), Glow-style (``ActNorm``,
  ``InvertibleLinear``, affine coupling);
- flows fitted by reverse KL to the target's (unnormalised) density: planar and radial
  (``genlab.flows.Planar``, ``Radial``), Rezende & Mohamed 2015, Figure 3;
- a VAE with a 1-D or 2-D latent: ``genlab.models.vae.VAE`` itself on (B, 1, 1, 2)
  "images" with its Gaussian decoder, trained on its ELBO;
- a GAN of small MLPs: ``genlab.models.gan._GAN``'s two-player step and losses;
- a Gaussian mixture fitted by EM: scikit-learn's GaussianMixture, one EM iteration a step.

Every family is a :class:`LabFamily`: ``step(batch)`` does one optimisation step and returns
its loss parts as floats; what it can show is declared once on the class (``density``:
"exact", "estimate" or None; ``view``: the extra picture it has), and the page asks those,
never the family's name.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import OptimConfig
from ..flows import (ActNorm, Bijection, Compose, ConditionerMLP, DiagonalScaling, InvertibleLinear, Planar, Radial,
                     vector_coupling)
from ..models.gan import GENERATOR_CAPS, _GAN
from ..models.mixture import Mixture
from ..models.vae import VAE, VAEConfig
from ..nn import log_std_normal, mlp
from ..models.base import build_optimizers
from .quadrature import log_normaliser
from .targets import BOX, Grid, Target


@dataclass(frozen=True)
class Options:
    """What shapes a lab model (the page's and the URL's knobs; genlab.lab.state bounds them)."""
    couplings: int = 8  # coupling flows: layers
    k: int = 32  # planar and radial flows: layers (the paper's K = 2, 8, 32)
    hidden: int = 64  # width of every small MLP (two hidden layers)
    latent: int = 2  # the VAE's latent size (1 or 2); the GAN's noise size
    components: int = 8  # the mixture's
    anneal: int = 1000  # reverse KL: steps over which beta rises from 0.01 to 1 (0: beta = 1): the
    # paper's annealing; p^beta, flattened, draws q over the whole target before beta = 1 sharpens it


class LabFamily:
    """A small 2-D model and its optimiser. Subclasses set the class fields and the hooks."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    objective: ClassVar[str] = ""  # what step() minimises, in words
    density: ClassVar[str | None] = None  # log_prob(x): "exact", "estimate" (a bound), None
    view: ClassVar[str | None] = None  # its own picture: "layers", "critic", "latent", "ellipses"
    uses_lr: ClassVar[bool] = True
    fits_by: ClassVar[str] = "samples"  # what it learns from: "samples" or the target's "density"
    headline: ClassVar[str] = "loss"  # the loss part the page plots
    suggested_lr: ClassVar[float] = 3e-3  # what the benchmark's pictures train at

    def __init__(self, target: Target, opts: Options, *, lr: float, seed: int = 0):
        self.target, self.opts, self.steps = target, opts, 0
        self.gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.build()
        self.set_lr(lr)

    # -- hooks ---------------------------------------------------------------------
    def build(self) -> None:
        """Make the networks and ``self.optimizers`` (their lr is set by set_lr after)."""
        raise NotImplementedError

    def step(self, batch: int) -> dict[str, float]:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) in nats (B,), exact or an estimate as ``density`` says."""
        raise TypeError(f"{self.label} has no density ({type(self).__name__}.density is None)")

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n model samples (n, 2), drawn with ``generator`` (default: the family's own, which
        also draws its training batches; a page draws its pictures with one of its own, so
        drawing never changes the training and the same model gives the same picture)."""
        raise NotImplementedError

    def on_start(self, grid: Grid) -> None:
        """Called once with the experiment's grid before the first step."""

    # -- shared --------------------------------------------------------------------
    optimizers: list[torch.optim.Optimizer] = []

    def set_lr(self, lr: float) -> None:
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] = lr

    def data(self, n: int) -> torch.Tensor:
        return self.target.sample(n, self.gen)

    def _adam(self, groups, betas=(0.9, 0.999)) -> list[torch.optim.Optimizer]:
        return build_optimizers(groups, OptimConfig(betas=betas), "cpu", lr=1e-3)

    @staticmethod
    def _minimise(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


# -- flows by maximum likelihood ------------------------------------------------------------
class CouplingFlow(LabFamily):
    """x -> z = f(x) through ``layers()``, z ~ N(0, I): log q(x) = log N(f(x)) + log|det J|,
    trained on fresh target samples by maximum likelihood."""

    objective = "maximum likelihood on samples"
    density = "exact"
    view = "layers"
    headline = "nll"

    def layers(self) -> list[Bijection]:
        raise NotImplementedError

    def build(self) -> None:
        self.flow = Compose(self.layers())
        self.optimizers = self._adam([self.flow.parameters()])

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det = self.flow(x)  # (B, 2), (B,)
        return log_std_normal(z).sum(-1) + log_det

    def step(self, batch: int) -> dict[str, float]:
        nll = -self.log_prob(self.data(batch)).mean()
        self._minimise(self.optimizers[0], nll)
        self.steps += 1
        return {"loss": nll.item(), "nll": nll.item()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.flow.inverse(torch.randn(n, 2, generator=self.gen if generator is None else generator))[0]

    @torch.no_grad()
    def trace(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Base points z (B, 2) carried towards the data, layer by layer: [z, ..., x]."""
        out = [z]
        for layer in reversed(self.flow.layers):
            out.append(layer.inverse(out[-1])[0])
        return out

    def layer_names(self) -> list[str]:
        return ["base"] + [type(layer).__name__ for layer in reversed(self.flow.layers)]


class RealNVP2D(CouplingFlow):
    """Affine couplings on alternating halves (Dinh, Sohl-Dickstein, Bengio, ICLR 2017)."""
    name, label = "realnvp", "RealNVP"

    def layers(self):
        h = (self.opts.hidden, self.opts.hidden)
        return [vector_coupling(2, h, i % 2, shared=True) for i in range(self.opts.couplings)]


class NICE2D(CouplingFlow):
    """Additive couplings and a diagonal scaling (Dinh, Krueger, Bengio 2014).

    The conditioners' last layers start at PyTorch's default init, not at zero (genlab's
    couplings start as the identity): an additive coupling x_B + m(x_A) at the identity has
    the NLL gradient E[x_B g(x_A)], zero for every g when the target is symmetric in x_B given
    x_A (8 Gaussians, U1, the rings), so a NICE started at the identity sits on that saddle
    and learns only its scale: it drew one Gaussian blob (KL 1.43 on 8 Gaussians after 1,200
    steps, two seeds; from this init 0.4-0.6). Volume preserving all the same: only the one
    diagonal scale changes the density's height, so separate peaks are carved by folding
    the plane, and it stays behind RealNVP and Glow on peaked targets."""
    name, label = "nice", "NICE"
    objective = ("maximum likelihood on samples; volume preserving (additive couplings, one "
                 "diagonal scale): it piles up density only by folding the plane, so sharp or "
                 "separate peaks (8 Gaussians) stay blurred")

    def layers(self):
        h = (self.opts.hidden, self.opts.hidden)
        couplings = [vector_coupling(2, h, i % 2, additive=True, mask_kind="alternate")
                     for i in range(self.opts.couplings)]
        for net in (m for c in couplings for m in c.modules() if isinstance(m, ConditionerMLP)):
            net.t_net[-1].reset_parameters()  # off the saddle (see the class)
        return [*couplings, DiagonalScaling(2)]


class Glow2D(CouplingFlow):
    """Glow's step (Kingma & Dhariwal 2018): ActNorm, an invertible linear map (the 1x1
    convolution of a 2-channel "image"), an affine coupling."""
    name, label = "glow", "Glow-style"

    def layers(self):
        h = (self.opts.hidden, self.opts.hidden)
        out: list[Bijection] = []
        for i in range(self.opts.couplings):
            out += [ActNorm(2), InvertibleLinear(2, seed=i), vector_coupling(2, h, 0, shared=True)]
        return out

    def on_start(self, grid: Grid) -> None:
        """ActNorm's data-dependent init on target samples (drawn apart from the training
        batches), before anything else runs the flow: else the page's first picture, the
        density on the grid, initialised it with the grid's points, uniform on the box."""
        with torch.no_grad():
            self.flow(self.target.sample(1024, torch.Generator().manual_seed(0)))


# -- flows by reverse KL -----------------------------------------------------------------------
LOG_E_MINUS_1 = math.log(math.e - 1)  # softplus(a) - 1 = 0 at a = log(e - 1)


class EnergyFlow(LabFamily):
    """z0 ~ N(0, I) pushed forward through K layers; fitted to the target's unnormalised
    log-density log p~ by reverse KL: minimises E[log q(z_K) - beta log p~(z_K)], which is
    KL(q || p) - log Z at beta = 1 (Rezende & Mohamed 2015, eq. 20, with their annealing
    beta = min(1, 0.01 + t / anneal) when ``anneal`` > 0).

    The density fitted is the target's on the box, walled: log p~(x) - WALL * (distance
    outside [-BOX, BOX]^2), what the grid's figures judge the model by (p normalised on the
    box). Rezende & Mohamed's U2-U4 do not decay along z1 at all: without the wall a flow
    spreads its samples along their bands far out of the box, where the target is as likely
    as inside, and leaves the box nearly empty (a fifth of its mass after 1,000 steps: an
    exact KL(p || q) of 76 nats, while the reverse KL against the box's normaliser looked small)."""

    objective = ("reverse KL to the target's density, KL(q‖p) = E_q[log q − log p]: it costs "
                 "nothing where q puts no mass, so it seeks modes and may leave some uncovered; "
                 "annealing (β rising to 1 over the anneal steps) spreads q over the target first")
    fits_by = "density"
    density = "exact"
    view = "layers"
    headline = "reverse_kl"
    suggested_lr = 1e-2
    WALL = 10.0  # nats a unit of distance outside the box (the picture targets' own wall)

    def layer(self) -> Bijection:
        raise NotImplementedError

    def build(self) -> None:
        self.flow = Compose([self.layer() for _ in range(self.opts.k)])
        self.optimizers = self._adam([self.flow.parameters()])
        self.log_z = 0.0  # the walled target's log normaliser, so KL(q || p) = loss + log Z

    def on_start(self, grid: Grid) -> None:
        # the wall's mass too: on a box one unit wider (where the wall is 10 nats), cells as the grid's
        wide = grid.box + 1.0
        self.log_z = log_normaliser(self.fitted_log_density, Grid(round(grid.n * wide / grid.box), wide))

    def fitted_log_density(self, x: torch.Tensor) -> torch.Tensor:
        """log p~(x) walled at the box (B,): the density the flow is fitted to."""
        outside = F.relu(x.abs() - BOX).sum(-1)
        return self.target.log_density(x) - self.WALL * outside

    def beta(self) -> float:
        a = self.opts.anneal
        return 1.0 if a <= 0 else min(1.0, 0.01 + self.steps / a)

    def step(self, batch: int) -> dict[str, float]:
        z0 = torch.randn(batch, 2, generator=self.gen)
        zk, log_det = self.flow(z0)
        log_q = log_std_normal(z0).sum(-1) - log_det  # (B,)
        log_p = self.fitted_log_density(zk)  # (B,)
        loss = (log_q - self.beta() * log_p).mean()
        self._minimise(self.optimizers[0], loss)
        self.steps += 1
        return {"loss": loss.item(), "reverse_kl": (log_q - log_p).mean().item() + self.log_z}

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_det = x.new_zeros(len(x))
        for layer in reversed(self.flow.layers):
            x, ld = self._invert(layer, x)
            log_det = log_det + ld
        return log_std_normal(x).sum(-1) + log_det

    def _invert(self, layer: Bijection, y: torch.Tensor):
        return layer.inverse(y)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.flow(torch.randn(n, 2, generator=self.gen if generator is None else generator))[0]

    @torch.no_grad()
    def trace(self, z: torch.Tensor) -> list[torch.Tensor]:
        out = [z]
        for layer in self.flow.layers:
            out.append(layer(out[-1])[0])
        return out

    def layer_names(self) -> list[str]:
        return ["base"] + [type(layer).__name__ for layer in self.flow.layers]


class Planar2D(EnergyFlow):
    """Planar layers started at the identity: genlab.flows.Planar draws u and w ~ N(0, 0.01^2),
    so w^T u ~ 0 and w^T u_hat = softplus(0) - 1 = -0.31, and u_hat is about 0.31 / ||w||
    long along w: each new layer shrinks the plane by 0.69 along w, and 32 of them start q
    with a standard deviation of 0.004 (log det -11.7). Here w ~ N(0, I) (tanh's bend where
    the points are), b = 0 and u = log(e - 1) w / ||w||^2 (so u_hat = 0), plus a little noise."""
    name, label = "planar", "Planar flow"
    NEWTON_TOL = 1e-6  # the inverse's residual along w, relative (float32 resolves 1.2e-7)
    NEWTON_ITERS = 50  # at most

    def layer(self):
        layer = Planar(2)
        with torch.no_grad():
            w = torch.randn(2)
            layer.w.copy_(w)
            layer.u.copy_(LOG_E_MINUS_1 * w / w.dot(w) + 0.01 * torch.randn(2))
            layer.b.zero_()
        return layer

    def _invert(self, layer, y):
        """y -> (z, log|det dz/dy|): the scalar a = w^T z solves g(a) = a + c tanh(a + b) - w^T y
        = 0 (c = w^T u_hat > -1), g increasing, by Newton's method from where it converges
        monotonically: g bends (g'' changes sign) only at a = -b, so for c >= 0 from -b (g is
        concave to its right and convex to its left, and each step stays on the root's near
        side), for c < 0 from the end of the bracket |a - w^T y| <= |c| on the root's side.
        A few iterations where Planar.inverse's bisection takes 40 (tests compare them)."""
        u_hat, w, b, c = layer._constrained()
        wy = (w * y).sum(-1, keepdim=True)  # (B, 1)
        if float(c) >= 0:
            a = (-b).expand_as(wy)
        else:  # the root lies right of -b where g(-b) < 0
            a = torch.where(-b - wy < 0, wy - c, wy + c)  # wy + |c| or wy - |c|
        tol = self.NEWTON_TOL * (1 + float(wy.abs().max()) + abs(float(c)))
        for _ in range(self.NEWTON_ITERS):
            t = torch.tanh(a + b)
            g = a + c * t - wy  # (B, 1)
            if float(g.abs().max()) <= tol:
                break
            a = a - g / (1 + c * (1 - t * t))
        z = y - u_hat * torch.tanh(a + b)
        _, log_det = layer(z)
        return z, -log_det


class Radial2D(EnergyFlow):
    name, label = "radial", "Radial flow"

    def layer(self):
        return Radial(2)


# -- VAE ---------------------------------------------------------------------------------------
class VAE2D(LabFamily):
    """genlab's VAE (Kingma & Welling 2014) on points as (B, 1, 1, 2) images: MLP encoder and
    Gaussian decoder with learned variance, 1-D or 2-D latent, its own ELBO."""

    name, label = "vae", "VAE"
    objective = "the ELBO on samples"
    density = "estimate"  # the importance-weighted bound, k = IW_K
    view = "latent"
    headline = "elbo"
    IW_K = 16

    def build(self) -> None:
        h = self.opts.hidden
        cfg = VAEConfig(image_shape=(1, 1, 2), latent_dim=self.opts.latent, hidden=(h, h),
                        preprocess="dequantize")
        self.vae = VAE(cfg)
        self.optimizers = self._adam([self.vae.parameters()])

    @staticmethod
    def _img(x: torch.Tensor) -> torch.Tensor:
        return x.view(-1, 1, 1, 2)

    def step(self, batch: int) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):  # the VAE draws z from the global RNG: seeded
            torch.manual_seed(int(torch.randint(2 ** 62, (1,), generator=self.gen)))  # by the family's
            out = self.vae.loss(self._img(self.data(batch)))
            self._minimise(self.optimizers[0], out["loss"])
        self.steps += 1
        return {k: out[k].item() for k in ("loss", "elbo", "recon", "kl")}

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.vae.log_prob(self._img(c), k=self.IW_K) for c in x.split(4096)])

    @torch.no_grad()
    def decoder_mean_logvar(self, z: torch.Tensor):
        out = self.vae.decoder_params(z)  # (B, 2, 1, 2): mean, log-variance
        return out[:, 0, 0], out[:, 1, 0]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        g = self.gen if generator is None else generator
        mean, logvar = self.decoder_mean_logvar(torch.randn(n, self.opts.latent, generator=g))
        return mean + torch.exp(0.5 * logvar) * torch.randn(n, 2, generator=g)

    @torch.no_grad()
    def posterior(self, x: torch.Tensor):
        """q(z|x): mean, log-variance (B, d)."""
        post = self.vae.posterior(self._img(x))
        return post.mu, post.logvar


# -- GAN ---------------------------------------------------------------------------------------
@dataclass
class SmallGANConfig:
    latent_dim: int = 2
    hidden: int = 64


class SmallGAN(_GAN):
    """genlab's GAN training (Goodfellow et al. 2014; non-saturating G loss) with MLPs on
    the plane. _GAN works on images in [0, 1] mapped to [-1, 1]; the lab feeds it points
    scaled by 1 / BOX that way, so the networks see the box as [-1, 1]^2."""

    caps = GENERATOR_CAPS

    def __init__(self, cfg: SmallGANConfig):
        super().__init__(cfg)
        h = cfg.hidden
        self.generator = mlp([cfg.latent_dim, h, h, 2], act=nn.LeakyReLU)  # linear output
        self.discriminator = nn.Sequential(mlp([2, h, h, 1], act=nn.LeakyReLU), nn.Flatten(0))


class GAN2D(LabFamily):
    """The two-player game with D_STEPS discriminator steps a generator step (each on a fresh
    real batch), the last of them and the generator's step being _GAN.train_step's. With
    one D step a G step the generator of these small MLPs collapsed onto one to three of the
    8 Gaussians, and onto a part of one moon (up to 1,200 steps, 4 seeds, lr 1e-3); with
    three, all 8 modes by step 200 (5 seeds) and both whole moons by step 300 (4 seeds); two
    did as well on 8 Gaussians. A smaller lr of 2e-4, Adam (0, 0.9), a wider net, 8 latent
    dimensions or spectral norm on D each left one seed in four or more on a few modes at
    1,200 steps. A D that keeps up gives G a gradient that points
    at all the data, not only at where D is weakest."""
    name, label = "gan", "GAN"
    objective = "the two-player game (D: cross-entropy, 3 steps a G step; G: −log D(G(z)))"
    view = "critic"
    headline = "d_loss"
    suggested_lr = 1e-3  # the game is unstable at 3e-3
    D_STEPS = 3

    def build(self) -> None:
        self.gan = SmallGAN(SmallGANConfig(self.opts.latent, self.opts.hidden))
        self.optimizers = self._adam(self.gan.param_groups(), betas=(0.5, 0.999))

    @staticmethod
    def to_unit(x: torch.Tensor) -> torch.Tensor:
        return (x / BOX + 1) / 2  # the box -> [0, 1], what _GAN takes

    def _d_step(self, x: torch.Tensor) -> None:
        """One discriminator step alone on x (B, 2) in [0, 1]^2, as _GAN.train_step's first half."""
        gan = self.gan
        with torch.no_grad():
            fake = gan.generate(gan.sample_prior(len(x)))
        d_loss = gan._bce(gan.critic(2 * x - 1), 1.0) + gan._bce(gan.critic(fake), 0.0)
        gan._step(self.optimizers[0], d_loss, gan.discriminator, None)

    def step(self, batch: int) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):  # _GAN draws z from the global RNG
            torch.manual_seed(int(torch.randint(2 ** 62, (1,), generator=self.gen)))
            for _ in range(self.D_STEPS - 1):
                self._d_step(self.to_unit(self.data(batch)))
            out = self.gan.train_step(self.to_unit(self.data(batch)), self.optimizers)
        self.steps += 1
        return {k: out[k].item() for k in ("loss", "d_loss", "g_loss", "d_real", "d_fake")}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.opts.latent, generator=self.gen if generator is None else generator)
        return BOX * self.gan.generator(z)

    @torch.no_grad()
    def critic(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) in (0, 1) at points x (B, 2)."""
        return torch.sigmoid(self.gan.discriminator(x / BOX))

    def generator_pull(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated points (n, 2) and the direction the generator's loss moves each one,
        -d(-log D(x))/dx in data space (n, 2): GAN Lab's arrows."""
        with torch.no_grad():
            fake = self.gan.generator(torch.randn(n, self.opts.latent, generator=self.gen if generator is None else generator))
        fake.requires_grad_(True)
        g_loss = F.softplus(-self.gan.discriminator(fake)).sum()  # -log sigmoid(logit)
        (grad,) = torch.autograd.grad(g_loss, fake)
        return BOX * fake.detach(), -grad / BOX


# -- Gaussian mixture by EM ---------------------------------------------------------------------
class Mixture2D(LabFamily):
    """A full-covariance Gaussian mixture, scikit-learn's EM one iteration a step
    (warm start), from components at random data points, on a fixed sample of EM_POINTS."""

    name, label = "gmm", "Gaussian mixture (EM)"
    objective = "log-likelihood by EM (one E and M step a step)"
    density = "exact"
    view = "ellipses"
    uses_lr = False
    headline = "nll"
    EM_POINTS = 2000
    HISTORY = 30

    def build(self) -> None:
        from sklearn.mixture import GaussianMixture

        seed = int(torch.randint(2 ** 31, (1,), generator=self.gen))
        self.gm = GaussianMixture(self.opts.components, covariance_type="full", max_iter=1,
                                  warm_start=True, init_params="random_from_data", random_state=seed)
        self.points = self.data(self.EM_POINTS).double().numpy()
        self.history: list[Mixture] = []
        self.optimizers = []

    def step(self, batch: int) -> dict[str, float]:
        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gm.fit(self.points)
        self.steps += 1
        self.history = [*self.history, self.mixture()][-self.HISTORY:]
        nll = -float(self.gm.score(self.points))
        return {"loss": nll, "nll": nll}

    def mixture(self) -> Mixture:
        return Mixture(self.gm.weights_.copy(), self.gm.means_.copy(), self.gm.covariances_.copy())

    def fitted(self) -> bool:
        return hasattr(self.gm, "means_")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fitted():
            return torch.full((len(x),), -math.log((2 * BOX) ** 2))  # before the first step: flat
        return torch.as_tensor(self.gm.score_samples(x.double().numpy()), dtype=torch.float32)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        g = self.gen if generator is None else generator
        if not self.fitted():
            return (torch.rand(n, 2, generator=g) * 2 - 1) * BOX
        rng = np.random.default_rng(int(torch.randint(2 ** 31, (1,), generator=g)))
        k = rng.choice(len(self.gm.weights_), size=n, p=self.gm.weights_ / self.gm.weights_.sum())
        z = rng.standard_normal((n, 2))
        chol = np.linalg.cholesky(self.gm.covariances_)  # (K, 2, 2)
        return torch.as_tensor(self.gm.means_[k] + np.einsum("nij,nj->ni", chol[k], z), dtype=torch.float32)


FAMILIES: dict[str, type[LabFamily]] = {c.name: c for c in (
    RealNVP2D, NICE2D, Glow2D, Planar2D, Radial2D, VAE2D, GAN2D, Mixture2D)}


def make_family(name: str, target: Target, opts: Options, *, lr: float, seed: int = 0) -> LabFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name](target, opts, lr=lr, seed=seed)
