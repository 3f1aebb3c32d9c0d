"""The proof that a model family is its model file, one registry entry and its test file:
a family written here, against the model contract alone, registered at run time with
genlab.models.register, and nothing else in the repository told about it. The CLI trains it
with its own training defaults (and lists them, with their sources, in ``train --help``),
evaluates it (the importance-weighted log p(x), and the quadrature of the True posterior
through its ``log_q`` hook), the browser's decoder exports it through its ``mlp_decoder``
hook, and Home (an AppTest of the app) offers exactly the pages whose run pickers list it,
decided from its declared capabilities."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from genlab.cli import main
from genlab.config import opt
from genlab.evaluation.mlp_export import export_decoder
from genlab.models import FAMILIES, Family, register
from genlab.models.base import (Capabilities, LatentVariableModel, image_shape_field,
                                latent_dim_field, preprocess_field)
from genlab.nn import bernoulli_log_prob, log_normal, log_std_normal
from genlab.runs import store
from pages import PAGES

from contract import check_checkpoint_round_trip, check_loss_finite, check_sample, check_step_changes_weights

REPO = Path(__file__).resolve().parents[1]
NAME = "tiny-gauss"
SOURCE = "Chosen for this test: a rate and a batch small enough that one epoch on 500 images moves the loss."


# -- the family: its model file would hold this ---------------------------------------------
@dataclass
class TinyGaussConfig:
    image_shape: tuple[int, ...] = image_shape_field()
    latent_dim: int = latent_dim_field(2)
    width: int = opt(32, "hidden units of the encoder and the decoder", lo=1, hi=4096)
    preprocess: str = preprocess_field("dynamic")


class TinyGauss(LatentVariableModel):
    """A Gaussian-latent model with one tanh layer each way: q(z|x) = N(mu(x), diag
    sigma(x)^2), p(z) = N(0, I), Bernoulli pixels; trained on the ELBO. Written against the
    contract of genlab.models.base, not as a subclass of genlab's VAE."""

    caps = Capabilities(encode=True, decode=True, prior="normal", likelihood="importance",
                        temperature=1.0, q_density="gaussian")
    log_prob_method = "importance sampling with q(z|x) as proposal"
    proposal = "q(z|x), a diagonal Gaussian"

    def __init__(self, cfg: TinyGaussConfig):
        super().__init__(cfg)
        D, d, w = math.prod(cfg.image_shape), cfg.latent_dim, cfg.width
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(D, w), nn.Tanh(), nn.Linear(w, 2 * d))
        self.decoder = nn.Sequential(nn.Linear(d, w), nn.Tanh(), nn.Linear(w, D),
                                     nn.Unflatten(1, tuple(cfg.image_shape)))

    def q(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x).chunk(2, dim=-1)  # mu, logvar: (B, d) each

    def log_q(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.q(x)
        return log_normal(z, mu, logvar).sum(-1)  # (G, B)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return log_std_normal(z).sum(-1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(z.reshape(-1, z.shape[-1])).view(*z.shape[:-1], *x.shape[1:])
        return bernoulli_log_prob(logits, x).flatten(2).sum(-1)  # (k, B)

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        mu, logvar = self.q(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(k, *mu.shape, device=mu.device)  # (k, B, d)
        return self.log_likelihood(x, z) + self.log_prior(z) - log_normal(z, mu, logvar).sum(-1)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.q(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = -self.log_likelihood(x, z[None])[0]
        kl = 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(-1)
        return {"loss": (recon + kl).mean(), "elbo": -(recon + kl).mean(), "recon": recon.mean(),
                "kl": kl.mean()}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def mlp_decoder(self) -> tuple[nn.Module, str]:
        return self.decoder, "sigmoid"

    def sample_prior(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        return self.check_temperature(temperature) * torch.randn(n, self.cfg.latent_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        return self.decode(self.sample_prior(n, temperature))


# -- its one registry entry ------------------------------------------------------------------
ENTRY = Family(NAME, TinyGauss, TinyGaussConfig, defaults={"lr": 3e-3, "batch_size": 50},
               sources=(SOURCE,), tiny={"latent_dim": 2, "width": 8})


@pytest.fixture(scope="module")
def family():
    register(ENTRY)
    yield ENTRY
    del FAMILIES[NAME]


@pytest.fixture(scope="module")
def trained(family, data_root, tmp_path_factory):
    """A run of the new family, trained by the CLI and evaluated by it."""
    root = tmp_path_factory.mktemp("new-family")
    assert main(["train", "--model", NAME, "--runs-dir", str(root), "--name", "tg", "--epochs", "2",
                 "--limit", "500", "--data-root", str(data_root), "--device", "cpu", "--quiet"]) == 0
    run = root / "tg"
    assert main(["eval", str(run), "--k", "20", "--limit", "40", "--exact-n", "8", "--fid-n", "0",
                 "--device", "cpu", "--quiet"]) == 0
    return run


# -- the tests -------------------------------------------------------------------------------
def test_the_family_passes_the_contract_on_its_tiny_config(family, tmp_path, mnist_small):
    from genlab.models import build_model

    model = build_model(NAME, {"image_shape": (1, 8, 8), **family.tiny})
    assert model.kind == NAME  # the registry named the class
    check_loss_finite(model)
    check_step_changes_weights(model)
    check_sample(model)
    check_checkpoint_round_trip(NAME, {**family.tiny}, tmp_path, mnist_small[0])


def test_train_help_lists_the_family_its_options_and_its_defaults_with_the_source(family, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    choices = re.search(r"--model MODEL one of (.*?) --dataset", text).group(1)
    assert NAME in choices.split(", ") and "vae" in choices.split(", ")
    assert f"{NAME}: 32" in text  # --width, with this family's default
    assert f"{NAME}: 0.003" in text and f"{NAME}: 50" in text  # --lr and --batch-size defaults
    assert f"{NAME}: {SOURCE}" in text  # the epilog's sources


def test_the_cli_trains_it_with_its_defaults_and_evaluates_it(trained):
    cfg = json.loads((trained / store.CONFIG).read_text())
    assert cfg["model"] == NAME and cfg["train"]["lr"] == 3e-3 and cfg["train"]["batch_size"] == 50
    records = [json.loads(line) for line in (trained / store.METRICS).read_text().splitlines()]
    val = [r["loss"] for r in records if r.get("event") == "epoch" and r.get("split") == "val"]
    assert len(val) == 2 and val[1] < val[0]  # it learned something
    ev = json.loads((trained / store.EVAL).read_text())
    assert ev["model"] == NAME and ev["k"] == 20 and ev["n_images"] == 40
    assert 50 < ev["nll_nats"] < 800 and ev["elbo"] < -ev["nll_nats"] + 1e-6  # ELBO <= log p(x), in nats
    # the True posterior's quadrature, through the family's own log_q: beside the estimate
    assert ev["nll_exact_n_images"] == 8 and ev["nll_exact_converged"] >= 7
    assert ev["nll_exact_nats"] <= ev["nll_nats_same_images"] + 1e-6  # IW(k) is low in expectation
    assert ev["latent_dim"] == 2 and len(ev["code_variance"]) == 2
    model, _, _ = store.load_model(trained, map_location="cpu")
    export = export_decoder(model)  # the browser's live decoder, through mlp_decoder
    assert isinstance(model, TinyGauss) and export is not None and export.output == "sigmoid"


def test_home_offers_the_pages_that_fit_its_capabilities(trained, monkeypatch):
    """Home's run card offers a page exactly when that page's run picker lists the run
    (PageSpec.can_show, the picker's own function): here every page that takes a run, as
    the family encodes, decodes, has a prior, a likelihood and q(z|x) on a 2-D latent."""
    cfg = json.loads((trained / store.CONFIG).read_text())["model_config"]
    fits = {p.title for p in PAGES if p.can_show(TinyGauss, cfg)}
    assert fits >= {"Latent explorer", "Clusters", "Interpolation", "True posterior", "Out-of-distribution"}
    monkeypatch.setenv("GENLAB_RUNS", str(trained.parent))
    monkeypatch.chdir(REPO)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.session_state["run"] = str(trained)  # the run the card is open on
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    offered = {b.label for b in at.button if (b.key or "").startswith("open-") and str(trained) in b.key}
    assert offered == {p.title for p in PAGES if p.takes_run and p.can_show(TinyGauss, cfg)}
    assert fits <= offered
