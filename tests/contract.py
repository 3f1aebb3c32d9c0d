"""Checks every registry model must pass; each model's test file calls them with a
tiny config (see tests/test_vae.py for the pattern)."""
from __future__ import annotations

import math

import torch

from genlab.config import from_dict
from genlab.data import ImageData, preprocess
from genlab.models import MODELS, build_model
from genlab.runs.store import load_model, write_config
from genlab.training.train import TrainConfig, fit


def tiny_batch(model, n: int = 8, seed: int = 0) -> torch.Tensor:
    c, h, w = model.cfg.image_shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    return preprocess(x, model.preprocess, generator=g)


def tiny_labels(model, n: int = 8, seed: int = 0) -> torch.Tensor:
    """n class labels (n,), one of each class in turn from ``seed`` on: what a batch of
    labelled images brings (only class-conditional models read them, through
    ``batch_loss`` / ``label_kwargs``, which the others ignore)."""
    k = model.num_classes if model.caps.conditional else 10
    return (torch.arange(n) + seed) % k


def check_loss_finite(model) -> dict:
    out = model.batch_loss(tiny_batch(model), tiny_labels(model))
    assert "loss" in out and out["loss"].dim() == 0
    for k, v in out.items():
        assert torch.isfinite(v).all(), f"{k} is not finite"
    return out


def check_step_changes_weights(model, lr: float = 1e-3) -> None:
    """One train_step changes the parameters (buffers such as moving averages or batch-norm
    statistics do not count: they change without any gradient)."""
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    model.train()
    out = model.train_step(tiny_batch(model), model.configure_optimizers(lr), y=tiny_labels(model))
    assert all(torch.isfinite(v).all() for v in out.values())
    changed = [k for k, p in model.named_parameters() if not torch.equal(p, before[k])]
    assert changed, "one train_step changed no parameters"


def check_sample(model, n: int = 5) -> None:
    model.eval()
    x = model.sample(n)
    assert x.shape == (n, *model.cfg.image_shape)
    assert x.min() >= 0 and x.max() <= 1 and torch.isfinite(x).all()


def check_short_run_lowers_loss(name: str, cfg: dict, train: ImageData, val: ImageData, *,
                                epochs: int = 3, lr: float = 1e-3, batch_size: int = 64,
                                margin: float = 0.05, unused: tuple[str, ...] = ()) -> tuple[float, float]:
    """A registry model after a short fit on real MNIST: see :func:`check_short_run`."""
    torch.manual_seed(0)
    return check_short_run(build_model(name, cfg), train, val, epochs=epochs, lr=lr,
                           batch_size=batch_size, margin=margin, unused=unused)


def check_short_run(model, train: ImageData, val: ImageData, *, epochs: int = 3, lr: float = 1e-3,
                    batch_size: int = 64, margin: float = 0.05,
                    unused: tuple[str, ...] = ()) -> tuple[float, float]:
    """After a short fit every parameter tensor has been trained (an encoder cut off from the
    gradient fails here even when the decoder alone lowers the loss), except those whose
    names start with one of ``unused`` (parameters the model keeps but does not use), and
    the validation loss is clearly below the initial one."""
    from genlab.evaluation.metrics import evaluate

    before = evaluate(model, val)["loss"]
    start = {k: p.detach().clone() for k, p in model.named_parameters()}
    fit(model, train, val, TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, log_every=10))
    untrained = [k for k, p in model.named_parameters()
                 if torch.equal(p, start[k]) and not k.startswith(unused)]
    assert not untrained, f"parameters left untouched by training: {', '.join(untrained)}"
    after = evaluate(model, val)["loss"]
    assert math.isfinite(after) and after < before - margin * abs(before), (before, after)
    return before, after


def check_checkpoint_round_trip(name: str, cfg: dict, tmp_path, train: ImageData) -> None:
    """fit one epoch into a run dir, reload it: identical outputs on the same input."""
    torch.manual_seed(0)
    model = build_model(name, cfg)
    tc = TrainConfig(epochs=1, batch_size=64, limit=len(train))
    write_config(tmp_path, name, from_dict(MODELS[name][1], cfg), tc)
    fit(model, train, None, tc, run_dir=tmp_path)
    model.eval()
    loaded, ckpt, _ = load_model(tmp_path)
    assert ckpt["epoch"] == 1
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    x, y = tiny_batch(model), tiny_labels(model)
    torch.manual_seed(1)
    a = model.batch_loss(x, y)["loss"]
    torch.manual_seed(1)
    b = loaded.batch_loss(x, y)["loss"]
    assert torch.allclose(a, b)
