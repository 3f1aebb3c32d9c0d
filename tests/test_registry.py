"""Every registry model on every dataset shape with its default config: the CLI and the
app build models this way (channels and size come from the dataset)."""
from __future__ import annotations

import pytest
import torch

from genlab.data import DATASETS
from genlab.models import MODELS, build_model

from contract import check_loss_finite, check_sample, tiny_batch, tiny_labels

SHAPES = sorted({tuple(spec.shape) for spec in DATASETS.values()})


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(MODELS))
def test_default_model_on_every_dataset_shape(name, shape):
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": shape})
    check_loss_finite(model)
    check_sample(model, n=2)
    x = tiny_batch(model, n=2)
    given = model.label_kwargs(tiny_labels(model, 2))  # {} unless class-conditional
    if model.caps.encode:
        for kw in ({}, given):  # a conditional model: its own class for x, then the given one
            z = model.encode(x, **kw)
            assert z.shape[0] == 2 and torch.isfinite(z).all()
            assert model.decode(z, **kw).shape == x.shape
    if model.caps.likelihood:
        for kw in ({}, given):  # log p(x), then log p(x|y)
            lp = model.log_prob(x, k=2, **kw)
            assert lp.shape == (2,) and torch.isfinite(lp).all()
    if model.caps.conditional:
        assert model.sample(2, **given).shape == x.shape


@pytest.mark.parametrize("name", list(MODELS))
def test_seeded_builds_are_identical(name):
    a = (torch.manual_seed(3), build_model(name, {}))[1].state_dict()
    b = (torch.manual_seed(3), build_model(name, {}))[1].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def no_distribution_checks():
    """torch.distributions validates arguments by reading values (a device sync on CUDA,
    impossible on the meta device); the model code itself must not need it."""
    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    yield
    torch.distributions.Distribution.set_default_validate_args(before)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_tensor_follows_the_models_device(name, no_distribution_checks):
    """No GPU here, so the CUDA path is checked with the meta device: tensors without data.
    A tensor made on the CPU inside the model (noise, masks, priors, constants) mixed with
    the model's own fails there as on CUDA, and so does reading a value back (.item(),
    bool(tensor): a device sync on every step on CUDA). One CPU forward first, so that
    data-dependent initialisations (ActNorm, NICE's scaling) have happened."""
    torch.manual_seed(0)
    model = build_model(name, {"image_shape": [3, 32, 32]})
    model.train()
    model.batch_loss(tiny_batch(model, n=4), tiny_labels(model, 4))
    model = model.to("meta")
    x = torch.rand(4, 3, 32, 32, device="meta")
    y = tiny_labels(model, 4).to("meta")  # the training loop's labels live on the device
    if model.preprocess != "dequantize":
        x = x.round()
    for part in model.batch_loss(x, y).values():
        assert part.device.type == "meta"
    assert model.sample(2).device.type == "meta"
    if model.caps.encode:
        assert model.decode(model.encode(x, **model.label_kwargs(y)),
                            **model.label_kwargs(y)).device.type == "meta"
    if model.caps.likelihood:
        assert model.log_prob(x, k=3, **model.label_kwargs(y)).device.type == "meta"
        assert model.log_prob(x, k=3).device.type == "meta"


LATENT = [n for n, (cls, _) in MODELS.items() if cls.caps.latent_stats]


@pytest.mark.parametrize("name", LATENT)
def test_eval_kl_per_dim_is_one_value_per_unit_summing_to_kl(name):
    """What eval writes for every latent model of the registry: the per-unit KL where the
    model declares it (one value per latent unit, summing to the split's "kl"), nothing
    where its KL does not split over units."""
    from genlab.data import ImageData
    from genlab.evaluation.metrics import evaluate, latent_stats

    torch.manual_seed(0)
    model = build_model(name, {"latent_dim": 5, "hidden": [32]})
    with torch.no_grad():  # a posterior far from the prior, so the KL is not ~0
        for p in model.encoder.parameters():
            p.mul_(4.0)
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (40, 1, 28, 28), generator=g, dtype=torch.uint8),
                     torch.zeros(40, dtype=torch.long), "mnist", "test")
    stats = latent_stats(model, data)
    assert stats["latent_dim"] == len(stats["code_variance"]) == 5
    if not model.caps.kl_per_dim:
        assert "kl_per_dim" not in stats
        with pytest.raises(TypeError, match="no per-dimension KL"):
            model.kl_per_dim(tiny_batch(model))
        return
    kl = evaluate(model, data)["kl"]
    assert len(stats["kl_per_dim"]) == 5 and min(stats["kl_per_dim"]) >= 0
    assert kl > 0.5 and sum(stats["kl_per_dim"]) == pytest.approx(kl, abs=5 * 5e-6, rel=1e-5)


def test_binary_vae_kl_per_dim_is_the_bernoulli_kl_of_each_unit():
    """Each unit's KL(Bernoulli(q_j) || Bernoulli(1/2)) = q log 2q + (1-q) log 2(1-q), from
    the encoder's probabilities in float64 (not a Gaussian reading of the logits)."""
    torch.manual_seed(0)
    model = build_model("binary-vae", {"latent_dim": 6, "hidden": [16]}).double()
    x = tiny_batch(model, 4).double()
    q = torch.sigmoid(model.encoder(x)).detach()  # (4, 6)
    expected = q * torch.log(2 * q) + (1 - q) * torch.log(2 * (1 - q))
    got = model.kl_per_dim(x)
    assert got.shape == (4, 6)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(-1), model.kl(None, None, model.posterior(x)))


def test_capabilities_are_declared_by_each_model_class():
    from genlab.models.base import Capabilities

    for name, (cls, _) in MODELS.items():
        assert "caps" in vars(cls), name  # its own declaration, not a parent's
        assert cls.kind == name  # the registry gave the class its name
    with pytest.raises(ValueError, match="likelihood must be one of"):
        Capabilities(likelihood="approximate")
    with pytest.raises(ValueError, match="q_density must be one of"):
        Capabilities(encode=True, decode=True, q_density="bernoulli")
    with pytest.raises(ValueError, match="q_density need encode"):
        Capabilities(decode=True, q_density="gaussian")


def test_register_refuses_a_class_without_its_own_caps_or_of_another_family():
    from genlab.models import FAMILIES, Family, register
    from genlab.models.base import Capabilities
    from genlab.models.vae import VAE, VAEConfig

    forgot = type("Forgot", (VAE,), {})  # inherits VAE's caps and kind
    with pytest.raises(TypeError, match="Forgot .family 'forgot'. must declare its own caps"):
        register(Family("forgot", forgot, VAEConfig))
    with pytest.raises(ValueError, match="VAE is family 'vae'.s class already"):
        register(Family("vae-again", VAE, VAEConfig))
    with pytest.raises(ValueError, match="'vae' is registered already"):
        register(Family("vae", type("Other", (VAE,), {"caps": VAE.caps}), VAEConfig))
    assert "forgot" not in FAMILIES and "vae-again" not in FAMILIES and FAMILIES["vae"].model_cls is VAE
    assert forgot.kind == "vae" and Capabilities().q_density is None


def _strings(node) -> list[str]:
    """The string constants of an expression: "vae", or ("vae", "gan")."""
    import ast

    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [n.value for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_family_name_is_compared_outside_the_registry():
    """The registry is the one place a family's name lives: no module of genlab/ (the model
    files aside: a config's choices, such as a flow "realnvp", may share a family's name),
    pages/ or benchmarks/ compares a value with a family's name, keys a table by one or lists
    families by name, so a new family misses no view. (Commands and run names that mention a family are fine.)"""
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    names, found = set(MODELS), []
    files = [*(p for p in repo.glob("genlab/**/*.py") if "models" not in p.parts),
             *repo.glob("pages/**/*.py"), *repo.glob("benchmarks/*.py")]
    assert len(files) > 60 and any("evaluation" in p.parts for p in files)
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                words = [w for side in (node.left, *node.comparators) for w in _strings(side)]
            elif isinstance(node, ast.Dict):
                words = [w for k in node.keys if k is not None for w in _strings(k)]
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):  # a list of families
                words = _strings(node) if len(names & set(_strings(node))) > 1 else []
            else:
                continue
            if names & set(words):
                found.append(f"{path.relative_to(repo)}:{node.lineno} {sorted(names & set(words))}")
    assert not found, found
