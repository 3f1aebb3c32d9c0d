"""genlab.evaluation.metrics: bits/dim against hand-computed values, the Bernoulli log-likelihood
against float64, the importance-weighted estimate of trained models against their ELBO
and across k, and `eval` on tiny real runs writing a complete eval.json (with the
proposal of the estimate). FID's own properties are in tests/test_fid.py; tables that
never mix nats with bits/dim in tests/app/test_train_compare_plots.py."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genlab.cli import main
from genlab.data import ImageData, load_split, prepare, preprocess
from genlab.evaluation.metrics import bits_per_dim, log_prob_split
from genlab.models import build_model
from genlab.models.base import Capabilities, GenerativeModel
from genlab.nn import bernoulli_log_prob
from genlab.runs import store
from genlab.training.train import TrainConfig, fit, train_run


# -- bits/dim -------------------------------------------------------------------------------
@pytest.mark.parametrize("D", [1, 784, 3072])
def test_bits_per_dim_hand_computed(D):
    # a uniform density on [0, 1]^D (log p = 0) gives every 8-bit value probability 1/256
    assert bits_per_dim(0.0, D) == pytest.approx(8.0, abs=1e-12)
    # density 2^D on [0, 1/2]^D: 1/128 per 8-bit value in the lower half, 7 bits
    assert bits_per_dim(-D * math.log(2), D) == pytest.approx(7.0, abs=1e-12)
    # -log p(x) = D ln 256 on [0, 1]-scaled pixels: 8 more bits per dimension
    assert bits_per_dim(D * math.log(256), D) == pytest.approx(16.0, abs=1e-12)
    # on tensors (the models' loss parts) the same hand values
    got = bits_per_dim(torch.tensor([0.0, -D * math.log(2)], dtype=torch.float64), D)
    assert got.tolist() == pytest.approx([8.0, 7.0], abs=1e-12)


def test_bits_per_dim_of_a_worked_example():
    # MNIST, -log p(x) = -2000 nats on [0,1]-scaled pixels:
    # (-2000 + 784 * 5.545177444) / (784 * 0.693147181) = 2347.4191 / 543.42739 = 4.319656
    assert bits_per_dim(-2000.0, 784) == pytest.approx(4.319656, abs=1e-6)


def test_bits_per_dim_is_the_code_length_of_the_8_bit_bins():
    """From first principles, in float64 numpy: a density p on [0, 1]^D that is constant
    on each 8-bit bin (side 1/256) gives bin b the probability P(b) = p * 256^-D, so the
    code length is -log2 P(b) bits over D dimensions. Pixels uniform on [0, 1/4] (density
    4 per pixel): each of the 64 lower bins has P = 1/64 per pixel, 6 bits each."""
    import numpy as np

    rng = np.random.default_rng(0)
    for D in (1, 5, 784):
        log_density = D * math.log(4.0)  # nats of p(x) = 4^D on [0, 1/4]^D
        probs = np.full(D, 4.0 / 256)  # each pixel's 8-bit bin probability
        bits = -np.log2(probs).sum() / D
        assert bits == pytest.approx(6.0)
        assert bits_per_dim(-log_density, D) == pytest.approx(bits, abs=1e-12)
        # an arbitrary density value, through the bin probability in float64
        lp = float(rng.normal(0, 50))
        expected = -(lp / np.log(2) - D * np.log2(256.0)) / D  # -log2(p 256^-D) / D
        assert bits_per_dim(-lp, D) == pytest.approx(expected, rel=1e-12)


class Uniform(GenerativeModel):
    """log p(x) = 0 on [0, 1]^D: a model of dequantised pixels with a known answer."""

    caps = Capabilities(likelihood="exact")
    log_prob_method, proposal = "exact (uniform)", "exact (uniform)"

    def __init__(self):
        super().__init__(type("Cfg", (), {"image_shape": (1, 28, 28), "preprocess": "dequantize"})())
        self.w = torch.nn.Parameter(torch.zeros(()))

    def log_prob(self, x, k=1, **_):
        assert ((x > 0) & (x < 1)).all()  # dequantised
        return torch.zeros(len(x))


def test_eval_reports_8_bits_per_dim_for_the_uniform_density():
    from genlab.evaluation.metrics import _nll

    x = torch.randint(0, 256, (30, 1, 28, 28), dtype=torch.uint8)
    out = _nll(Uniform(), ImageData(x, torch.zeros(30, dtype=torch.long), "mnist", "test"),
               k=1, progress=False)
    assert out["nll_nats"] == 0.0 and out["bpd"] == 8.0 and out["proposal"] == "exact (uniform)"


# -- the Bernoulli log-likelihood every binarised-pixel decoder uses --------------------------
def test_bernoulli_log_prob_matches_float64_and_has_the_right_gradient():
    g = torch.Generator().manual_seed(0)
    logits = torch.cat([30 * torch.randn(5000, generator=g),
                        torch.tensor([0.0, 1e-30, -1e-30, 17.0, -17.0, 88.0, -88.0, 1e4, -1e4])])
    for x in ((torch.rand(len(logits), generator=g) < 0.5).float(), torch.rand(len(logits), generator=g)):
        ref = -F.binary_cross_entropy_with_logits(logits.double(), x.double(), reduction="none")
        lg = logits.clone().requires_grad_()
        got = bernoulli_log_prob(lg, x)
        assert got.dtype == torch.float32
        err = (got.double() - ref).abs()
        assert (err <= 2e-6 + 2e-7 * ref.abs()).all(), float(err.max())
        got.sum().backward()
        torch.testing.assert_close(lg.grad.double(), x.double() - torch.sigmoid(logits.double()),
                                   atol=2e-7, rtol=0)
    # x broadcasts over leading sample dimensions: (k, B, D) logits, (B, D) pixels
    l3, x2 = torch.randn(3, 2, 5, generator=g), (torch.rand(2, 5, generator=g) < 0.5).float()
    torch.testing.assert_close(bernoulli_log_prob(l3, x2), -F.binary_cross_entropy_with_logits(
        l3, x2.expand_as(l3), reduction="none"))


# -- the importance-weighted estimate of briefly trained models --------------------------------
TRAINED = {
    "vae": {"latent_dim": 10, "hidden": [200]},
    "binary-vae": {"latent_dim": 16, "hidden": [200]},
    "ae-gmm": {"latent_dim": 4, "hidden": [200], "n_components": 10},
}


@pytest.fixture(scope="module")
def test_images(data_root):
    """300 MNIST test images, binarised once (seeded): the same x for every k."""
    test = prepare(load_split("mnist", "test", data_root, download=False, limit=300), "dynamic")
    return preprocess(test.x, "dynamic", generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", list(TRAINED))
def test_iw_estimate_is_above_the_elbo_and_tightens_with_k(name, mnist_small, test_images):
    """Two epochs on 2,000 images, then on 300 test images: L_1 averages to the ELBO,
    L_10 and L_100 lie above it, and each step in k raises the estimate. All comparisons
    are paired over the same images, with 3 standard errors of the per-image differences."""
    torch.manual_seed(0)
    model = build_model(name, {"preprocess": "dynamic", **TRAINED[name]})
    fit(model, mnist_small[0], None, TrainConfig(epochs=2, batch_size=100, log_every=1000))
    model.eval()
    x = test_images
    with torch.inference_mode():
        L = {k: model.log_prob(x, k=k).double() for k in (1, 10, 100)}  # (300,) each

    def above(a: torch.Tensor, b: torch.Tensor) -> bool:  # mean(a - b) > 3 s.e.
        d = a - b
        return float(d.mean()) > 3 * float(d.std()) / math.sqrt(len(d))

    assert above(L[10], L[1]) and above(L[100], L[10]), {k: float(v.mean()) for k, v in L.items()}
    if name != "ae-gmm":  # a model with an ELBO: E_q[log w], 2,000 samples per image
        with torch.inference_mode():
            elbo = torch.cat([model.log_weights(x[i:i + 10], 2000).double().mean(0)
                              for i in range(0, len(x), 10)])
        d = L[1] - elbo  # L_1 is an unbiased estimate of the ELBO
        assert abs(float(d.mean())) < 4 * float(d.std()) / math.sqrt(len(d)), float(d.mean())
        assert above(L[10], elbo) and above(L[100], elbo)


def test_split_batches_fill_one_pass_at_large_k(mnist_small):
    """At large k, log_prob_split hands the model few images a batch, so that the batch's
    k samples fill about one pass of SAMPLES_PER_PASS decoder rows (each image encoded
    once, memory bounded up to k = 5000)."""
    model = build_model("vae", {"latent_dim": 2, "hidden": [16]})
    model.eval()
    calls = []
    real = model.log_prob
    model.log_prob = lambda x, k=1: calls.append(len(x)) or real(x, k=k)
    data = mnist_small[1]
    split = ImageData(data.x[:10], data.y[:10], "mnist", "val")
    per_pass = model.SAMPLES_PER_PASS
    for k, want in ((1, [10]), (per_pass // 3, [3, 3, 3, 1]), (per_pass, [1] * 10), (5000, [1] * 10)):
        calls.clear()
        lp = log_prob_split(model, split, k=k)
        assert lp.shape == (10,) and torch.isfinite(lp).all() and lp.dtype == torch.float64
        assert calls == want, (k, calls)  # images a batch: k of them fill one pass


# -- eval on tiny real runs writes a complete eval.json ---------------------------------------
TINY = {  # model: (config, expected proposal text, data kind)
    "vae": ({"latent_dim": 4, "hidden": [64]}, "q(z|x), the Gaussian encoder", "binarised"),
    "binary-vae": ({"latent_dim": 8, "hidden": [64]}, "factorised Bernoulli encoder", "binarised"),
    "ae-gmm": ({"latent_dim": 2, "hidden": [64], "n_components": 3}, "defensive mixture", "binarised"),
    "nice": ({"couplings": 2, "hidden": [64]}, "exact (change of variables)", "8-bit"),
    "gan": ({"latent_dim": 8, "hidden": [32], "d_hidden": [32]}, None, "8-bit"),
}


@pytest.fixture(scope="module")
def tiny_runs(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, (cfg, _, _) in TINY.items():
        run = store.new_run_dir(root, name)
        model = build_model(name, cfg)
        train_cfg = TrainConfig(dataset="mnist", epochs=1, batch_size=100, limit=300, log_every=100,
                                n_samples=4, data_root=str(data_root), device="cpu")
        store.write_config(run, name, model.cfg, train_cfg)
        assert train_run(run)["state"] == "done"
        out[name] = run
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_eval_writes_a_complete_eval_json(name, tiny_runs, capsys):
    run, (_, proposal, kind) = tiny_runs[name], TINY[name]
    code = main(["eval", str(run), "--k", "5", "--limit", "100", "--fid-n", "100", "--quiet",
                 "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0
    ev = json.loads((run / store.EVAL).read_text())
    assert ev["split"] == "test" and ev["n_images"] == 100 and ev["k"] == 5
    assert ev["data"] == kind and ev["dataset"] == "mnist" and ev["epoch"] == 1
    assert ev["seconds"] > 0 and math.isfinite(ev["fid"]) and ev["fid"] > 0 and ev["fid_n"] == 100
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                          text=True).stdout.strip()  # provenance: the code and the command
    assert ev["genlab_commit"] in (head, head + "+dirty") and head
    assert ev["command"] == f"python -m genlab eval {run} --k 5 --limit 100 --fid-n 100 --quiet --device cpu"
    if proposal is None:  # a GAN: no likelihood, so no log p(x), no bits/dim, no proposal
        assert not {"nll_nats", "bpd", "proposal", "elbo"} & set(ev)
        return
    assert math.isfinite(ev["nll_nats"]) and ev["nll_sem"] >= 0 and ev["nll_seconds"] >= 0
    assert proposal in ev["proposal"] and ev["nll_method"]
    assert f"proposal: {ev['proposal']}" in printed  # the CLI says it too
    if kind == "8-bit":
        assert ev["bpd"] == pytest.approx(bits_per_dim(ev["nll_nats"], 784))
    else:
        assert "bpd" not in ev  # nats on binarised pixels are never turned into bits/dim
    if name in ("vae", "binary-vae"):
        assert ev["elbo"] == pytest.approx(-(ev["recon"] + ev["kl"]), rel=1e-5)
        assert ev["elbo"] <= -ev["nll_nats"] + 3 * ev["nll_sem"] + 1.0  # L_5 is not below the ELBO
    if name == "ae-gmm":
        assert "GMM(z)" in ev["proposal"] and "s = 0.3" in ev["proposal"]
