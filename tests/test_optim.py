"""genlab.training.optim: learning rates against their formulas, the weight average against its
recursion, the fused/foreach step, the KL ramp, and a stopped-and-resumed run (schedule,
average and warm-up all on) equal to one that never stopped."""
from __future__ import annotations

import io
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from genlab.config import TRAIN_KEYS, OptimConfig, option_names
from genlab.config import from_dict, to_dict, validate
from genlab.flows import ActNorm
from genlab.models import FAMILIES, Family, family_defaults, family_sources
from genlab.models.base import build_optimizers, step_kind
from genlab.training.optim import (EMA, TrainingSchedule, beta_at, build_schedulers, burda_stage,
                                   lr_factor)

SPE = 10  # steps per epoch in the schedule tests


class Norm(ActNorm):
    """ActNorm (data-dependent init, a bool ``initialized`` buffer) as a plain layer."""

    def forward(self, x):
        return super().forward(x)[0]


def factor(cfg: OptimConfig, step: int, total: int = 100) -> float:
    return lr_factor(step, cfg, steps_per_epoch=SPE, total_steps=total)


def lrs_used(cfg: OptimConfig, n: int, *, lr: float = 0.1, total: int = 100) -> list[float]:
    """The lr each of n optimiser steps ran with, read off the optimiser before its step."""
    p = nn.Parameter(torch.zeros(3))
    (o,) = build_optimizers([[p]], cfg, "cpu", lr=lr)
    (s,) = build_schedulers([o], cfg, steps_per_epoch=SPE, total_steps=total)
    used = []
    for _ in range(n):
        used.append(o.param_groups[0]["lr"])
        p.grad = torch.ones(3)
        o.step()
        s.step()
    return used


# -- learning-rate schedules -----------------------------------------------------------
def test_warmup_is_linear_then_constant():
    cfg = OptimConfig(warmup_steps=4)
    assert lrs_used(cfg, 7) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1], abs=1e-15)


def test_constant_ignores_the_floor():
    cfg = OptimConfig(lr_floor=0.5)
    assert [factor(cfg, s) for s in (0, 50, 10_000)] == [1.0, 1.0, 1.0]


def test_cosine_with_warmup_and_floor():
    cfg = OptimConfig(lr_schedule="cosine", warmup_steps=10, lr_floor=0.1)
    total = 110  # T = 100 steps of decay after the warm-up
    # t = 0: 1; t = T/2: 0.1 + 0.9 * 0.5 = 0.55; t = T/4: 0.1 + 0.9 (1 + cos(pi/4))/2
    assert factor(cfg, 9, total) == pytest.approx(1.0)
    assert factor(cfg, 10, total) == pytest.approx(1.0)
    assert factor(cfg, 35, total) == pytest.approx(0.1 + 0.9 * (1 + math.sqrt(0.5)) / 2)
    assert factor(cfg, 60, total) == pytest.approx(0.55)
    assert factor(cfg, 110, total) == pytest.approx(0.1)
    assert factor(cfg, 500, total) == pytest.approx(0.1)  # past the horizon: the floor
    used = lrs_used(cfg, 61, lr=0.2, total=total)
    assert used[4] == pytest.approx(0.2 * 5 / 10) and used[60] == pytest.approx(0.2 * 0.55)


def test_exponential_per_epoch_down_to_the_floor():
    cfg = OptimConfig(lr_schedule="exponential", lr_gamma=0.5, lr_floor=0.2, warmup_steps=2)
    assert factor(cfg, 2) == 1.0  # t = 0
    assert factor(cfg, 2 + SPE) == pytest.approx(0.5)  # one epoch after the warm-up
    assert factor(cfg, 2 + SPE // 2) == pytest.approx(0.5 ** 0.5)  # continuous in the step
    assert factor(cfg, 2 + 2 * SPE) == pytest.approx(0.25)
    assert factor(cfg, 2 + 3 * SPE) == pytest.approx(0.2)  # 0.125 < floor


def test_burda_stages_and_factors():
    # stage i lasts 3^i epochs: epoch 0 | 1-3 | 4-12 | 13-39 | ... ; after 3280 epochs stage 7
    assert [burda_stage(e) for e in (0, 1, 3, 4, 12, 13, 39, 40, 3279, 10 ** 6)] == \
        [0, 1, 1, 2, 2, 3, 3, 4, 7, 7]
    cfg = OptimConfig(lr_schedule="burda")
    for epoch, i in ((0, 0), (2, 1), (5, 2), (20, 3), (5000, 7)):
        assert factor(cfg, epoch * SPE + 3) == pytest.approx(10 ** (-i / 7))
    assert factor(replace(cfg, lr_floor=0.5), 20 * SPE) == 0.5  # 10^(-3/7) = 0.37 < floor


def test_every_optimizer_follows_the_schedule():
    """Both optimisers of a two-player model get the same schedule from their own lr."""
    cfg = OptimConfig(lr_schedule="exponential", lr_gamma=0.1, warmup_steps=1)
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opts = build_optimizers([[a], [b]], cfg, "cpu", lr=1e-3)
    scheds = build_schedulers(opts, cfg, steps_per_epoch=SPE, total_steps=100)
    for _ in range(1 + SPE):
        for p, o in ((a, opts[0]), (b, opts[1])):
            p.grad = torch.ones(2)
            o.step()
        for s in scheds:
            s.step()
    assert [o.param_groups[0]["lr"] for o in opts] == pytest.approx([1e-4, 1e-4])


# -- optimisers ---------------------------------------------------------------------------
def test_fused_step_where_torch_has_one_else_foreach():
    p = [nn.Parameter(torch.zeros(2))]
    kinds = {name: step_kind(build_optimizers([p], OptimConfig(optimizer=name), "cpu", lr=1e-3)[0])
             for name in ("adam", "adamw", "adamax")}
    try:  # fused Adam on CPU exists in recent PyTorch (it does in 2.14)
        torch.optim.Adam(p, fused=True)
        cpu_fused = True
    except RuntimeError:
        cpu_fused = False
    want = "fused" if cpu_fused else "foreach"
    assert kinds == {"adam": want, "adamw": want, "adamax": "foreach"}


def test_optimizer_settings_reach_torch():
    cfg = OptimConfig(optimizer="adamw", betas=(0.5, 0.99), eps=1e-4, weight_decay=0.01)
    (o,) = build_optimizers([[nn.Parameter(torch.zeros(2))]], cfg, "cpu", lr=3e-4)
    assert isinstance(o, torch.optim.AdamW)
    g = o.param_groups[0]
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"]) == (3e-4, (0.5, 0.99), 1e-4, 0.01)


def test_adam_weight_decay_is_l2_and_adamw_decoupled():
    """One step from w = 1 with zero gradient: Adam's L2 gradient wd*w normalised by its own
    RMS moves w by lr; AdamW shrinks it by lr*wd."""
    out = {}
    for name in ("adam", "adamw"):
        p = nn.Parameter(torch.ones(1))
        (o,) = build_optimizers([[p]], OptimConfig(optimizer=name, weight_decay=0.1), "cpu", lr=0.01)
        p.grad = torch.zeros(1)
        o.step()
        out[name] = float(p.detach())
    assert out["adam"] == pytest.approx(1 - 0.01, abs=1e-6)
    assert out["adamw"] == pytest.approx(1 - 0.01 * 0.1, abs=1e-7)


# -- weight averaging ---------------------------------------------------------------------
@pytest.mark.parametrize("warmup", [False, True])
def test_ema_matches_its_recursion(warmup):
    model = nn.Linear(3, 2)
    ema = EMA(model, 0.9, warmup=warmup)
    g = torch.Generator().manual_seed(0)
    avg = None
    for n in range(1, 8):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        ema.update(model)
        w = [p.detach().clone() for p in model.parameters()]
        d = min(0.9, (1 + n) / (10 + n)) if warmup else 0.9
        avg = w if avg is None else [d * a + (1 - d) * x for a, x in zip(avg, w)]
        for a, b in zip(ema.params, avg):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert ema.num_updates == 7
    if warmup:  # (1+n)/(10+n) < 0.9 up to n = 80: the warm-up really changed the decays
        assert ema.decay_at(3) == pytest.approx(4 / 13)


def test_averaged_swaps_in_and_restores_even_on_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(model, 0.5, warmup=False)
    ema.update(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)  # avg = w0 + 0.5
    live = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.averaged(model):
        for p, a in zip(model.parameters(), ema.params):
            assert torch.equal(p, a)
    with pytest.raises(KeyError), ema.averaged(model):
        raise KeyError("boom")
    for k, v in model.state_dict().items():
        assert torch.equal(v, live[k]), k


def test_averaged_state_dict_has_the_models_keys_and_live_buffers():
    model = nn.Sequential(nn.Linear(2, 2), Norm(2), nn.BatchNorm1d(2))
    model(torch.randn(8, 2))  # ActNorm initialises (bool buffer), BatchNorm stats move
    ema = EMA(model, 0.99)
    ema.update(model)
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    ema.update(model)
    sd, avg = model.state_dict(), ema.averaged_state_dict(model)
    assert list(avg) == list(sd)
    assert bool(avg["1.initialized"]) and torch.equal(avg["2.running_mean"], sd["2.running_mean"])
    assert not torch.equal(avg["0.weight"], sd["0.weight"])  # averaged, not the live weight
    fresh = nn.Sequential(nn.Linear(2, 2), Norm(2), nn.BatchNorm1d(2))
    fresh.load_state_dict(avg)  # ships as an ordinary state dict
    torch.testing.assert_close(fresh[0].weight, ema.params[0])


def test_ema_refuses_weights_of_another_model():
    ema = EMA(nn.Linear(3, 2), 0.9)
    with pytest.raises(ValueError, match="shape"):
        ema.load_state_dict(EMA(nn.Linear(4, 2), 0.9).state_dict())
    with pytest.raises(ValueError, match="do not fit"):
        ema.load_state_dict(EMA(nn.Sequential(nn.Linear(3, 2)), 0.9).state_dict())


# -- KL warm-up ---------------------------------------------------------------------------
def test_kl_weight_ramps_linearly_to_beta():
    assert [beta_at(e, 4.0, 2.0) for e in (0.0, 1.0, 2.5, 4.0, 9.0)] == [0.0, 0.5, 1.25, 2.0, 2.0]
    assert beta_at(0.0, 0.0, 0.7) == 0.7
    model = nn.Linear(2, 1)
    (o,) = build_optimizers([model.parameters()], OptimConfig(), "cpu", lr=1e-3)
    sched = TrainingSchedule(model, [o], OptimConfig(kl_warmup_epochs=2.0), steps_per_epoch=5,
                             total_steps=50)
    seen = []
    for _ in range(12):
        seen.append(sched.kl_weight(1.0))
        model(torch.ones(1, 2)).sum().backward()
        o.step()
        sched.step(model)
    assert seen == pytest.approx([s / 10 for s in range(10)] + [1.0, 1.0])
    assert sched.record(beta=1.0) == {"lr": 1e-3, "kl_weight": 1.0}
    sched.steps = 3  # the weight the 3rd step used: 2 steps done, 2 / 5 / 2 epochs = 0.2
    assert sched.record(beta=0.5) == {"lr": 1e-3, "kl_weight": pytest.approx(0.1)}


# -- options ------------------------------------------------------------------------------
def test_options_validate_like_every_other_config():
    cfg = from_dict(OptimConfig, {"optimizer": "adamax", "betas": "0.5,0.9", "ema_decay": 0.999})
    assert cfg.betas == (0.5, 0.9) and from_dict(OptimConfig, to_dict(cfg)) == cfg
    for bad in ({"optimizer": "sgd"}, {"betas": "0.9,1.5"}, {"eps": 0}, {"lr_schedule": "step"},
                {"ema_decay": 1.0}, {"lr_floor": 2.0}, {"warmup_steps": -1}):
        with pytest.raises(ValueError) as e:
            from_dict(OptimConfig, bad)
        assert str(e.value).count("\n") == 0 and next(iter(bad)) in str(e.value)
    with pytest.raises(ValueError, match="two comma-separated numbers"):
        OptimConfig(betas=(0.9,))
    assert set(option_names()) >= {"optimizer", "betas", "eps", "weight_decay", "lr_schedule",
                                   "warmup_steps", "lr_floor", "ema_decay", "kl_warmup_epochs"}


def test_family_defaults_are_valid_options_with_sources():
    names = set(option_names())
    for kind, fam in FAMILIES.items():
        assert fam.defaults, kind  # every registered family has a recipe
        d = family_defaults(kind)
        assert set(d) <= names | set(TRAIN_KEYS), kind
        validate(OptimConfig(**{k: v for k, v in d.items() if k in names}))
        assert 0 < d.get("lr", 1e-3) <= 1 and d.get("batch_size", 128) >= 1
        assert family_sources(kind) and all(len(s) > 20 for s in family_sources(kind))
    assert family_defaults("gan")["lr"] == 2e-4 and family_defaults("gan")["betas"] == (0.5, 0.999)
    assert family_defaults("vae")["eps"] == 1e-4 and family_defaults("vae")["lr_schedule"] == "constant"
    assert family_defaults("realnvp")["weight_decay"] == 5e-5
    with pytest.raises(ValueError, match="no training defaults"):
        family_defaults("pixelcnn")


def test_a_family_entry_refuses_defaults_that_are_not_training_options_or_lack_sources():
    from genlab.models.vae import VAE, VAEConfig

    with pytest.raises(ValueError, match="'epochs', not a training option a family sets"):
        Family("new-vae", VAE, VAEConfig, defaults={"epochs": 3}, sources=("why" * 10,))
    with pytest.raises(ValueError, match="need their sources"):
        Family("new-vae", VAE, VAEConfig, defaults={"lr": 1e-3})
    with pytest.raises(ValueError, match="lower-case words joined by hyphens"):
        Family("New VAE", VAE, VAEConfig)
    assert family_defaults("vae") is not FAMILIES["vae"].defaults  # a copy: callers may edit it


# -- stop and resume ------------------------------------------------------------------------
class Tiny(nn.Module):
    """A model with the buffers that matter: ActNorm's bool flag and BatchNorm statistics."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), Norm(8), nn.BatchNorm1d(8), nn.Tanh(),
                                 nn.Linear(8, 4))

    def loss(self, x: torch.Tensor, kl_weight: float) -> torch.Tensor:
        h = self.net(x)
        return ((h - x) ** 2).mean() + kl_weight * (h ** 2).mean()


FULL = OptimConfig(optimizer="adamw", betas=(0.8, 0.99), weight_decay=0.01, lr_schedule="cosine",
                   warmup_steps=5, lr_floor=0.1, ema_decay=0.9, kl_warmup_epochs=1.5)


def batch(step: int) -> torch.Tensor:
    return torch.randn(16, 4, generator=torch.Generator().manual_seed(1000 + step))


def make(seed: int, cfg: OptimConfig, optimizer_state: dict | None = None):
    """Model, optimiser and schedule; with ``optimizer_state``, the optimiser's is loaded
    before the schedule is built (the order of a resume in fit)."""
    torch.manual_seed(seed)
    model = Tiny()
    opts = build_optimizers([model.parameters()], cfg, "cpu", lr=0.05)
    if optimizer_state is not None:
        opts[0].load_state_dict(optimizer_state)
    return model, opts, TrainingSchedule(model, opts, cfg, steps_per_epoch=4, total_steps=24)


def train(model, opts, sched, steps: range) -> None:
    for s in steps:
        loss = model.loss(batch(s), sched.kl_weight(0.5))
        opts[0].zero_grad(set_to_none=True)
        loss.backward()
        opts[0].step()
        sched.step(model)


def roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("cfg,optimizer_first", [
    (FULL, True), (FULL, False),
    (replace(FULL, optimizer="adamax", lr_schedule="burda", ema_warmup=False), True)],
    ids=["adamw-cosine", "adamw-cosine-schedule-first", "adamax-burda"])
def test_stopped_and_resumed_equals_uninterrupted(cfg, optimizer_first):
    n = 24
    straight = make(0, cfg)
    train(*straight, range(n))

    first = make(0, cfg)
    train(*first, range(n // 2))
    model, opts, sched = first
    ckpt = roundtrip({"model": model.state_dict(), "optimizers": [o.state_dict() for o in opts],
                      "schedule": sched.state_dict()})
    # other initial weights: everything must come from the checkpoint
    if optimizer_first:  # the optimiser's state, then a schedule built on it (as fit resumes)
        resumed = make(1, cfg, ckpt["optimizers"][0])
        resumed[2].load_state_dict(ckpt["schedule"])
    else:  # a schedule first, then the optimiser's state: the order must not matter
        resumed = make(1, cfg)
        resumed[2].load_state_dict(ckpt["schedule"])
        resumed[1][0].load_state_dict(ckpt["optimizers"][0])
    resumed[0].load_state_dict(ckpt["model"])
    train(*resumed, range(n // 2, n))

    (m1, _, s1), (m2, _, s2) = straight, resumed
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(s1.ema.params, s2.ema.params):
        assert torch.equal(a, b)
    assert s1.lr == s2.lr and s1.steps == s2.steps == n
    assert s1.kl_weight(0.5) == s2.kl_weight(0.5) == 0.5
    assert s1.ema.num_updates == s2.ema.num_updates == n
    assert s1.lr < 0.05  # the schedule really moved (cosine or burda below the base lr)
    # the averaged weights are not the live ones, and ship under the model's keys
    assert not torch.equal(s1.model_state_dict(m1)["net.0.weight"], m1.state_dict()["net.0.weight"])


def test_state_dicts_load_with_weights_only():
    model, opts, sched = make(0, FULL)
    train(model, opts, sched, range(3))
    state = roundtrip({"schedule": sched.state_dict(), "ship": sched.model_state_dict(model)})
    # only plain containers, numbers, strings, None and tensors: nothing that runs code
    def plain(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return all(plain(v) for v in x)
        return x is None or isinstance(x, (bool, int, float, str, torch.Tensor))
    assert plain(state)
    assert state["schedule"]["steps"] == 3 and set(state["ship"]) == set(model.state_dict())


def test_resume_with_other_averaging_settings_is_refused():
    _, _, with_ema = make(0, FULL)
    _, _, without = make(0, replace(FULL, ema_decay=0.0))
    with pytest.raises(ValueError, match="averaged weights"):
        without.load_state_dict(with_ema.state_dict())
    with pytest.raises(ValueError, match="averaged weights"):
        with_ema.load_state_dict(without.state_dict())


def test_two_optimizers_resume_their_learning_rates():
    """A two-player model (a GAN: discriminator, generator) has one schedule per optimiser;
    both come back from the checkpoint."""
    cfg = replace(FULL, lr_schedule="exponential", lr_gamma=0.5, ema_decay=0.0)

    def build():
        d, g = nn.Linear(2, 1), nn.Linear(2, 2)
        opts = build_optimizers([d.parameters(), g.parameters()], cfg, "cpu", lr=0.01)
        return (d, g), opts, TrainingSchedule(nn.ModuleList([d, g]), opts, cfg, steps_per_epoch=4,
                                              total_steps=40)

    (d, g), opts, sched = build()
    for _ in range(9):
        for net, o in ((d, opts[0]), (g, opts[1])):
            net(torch.ones(1, 2)).sum().backward()
            o.step()
        sched.step(None)
    ckpt = roundtrip({"optimizers": [o.state_dict() for o in opts], "schedule": sched.state_dict()})
    _, opts2, sched2 = build()
    for o, sd in zip(opts2, ckpt["optimizers"]):
        o.load_state_dict(sd)
    sched2.load_state_dict(ckpt["schedule"])
    want = 0.01 * 0.5 ** ((9 - 5) / 4)  # 5 warm-up steps, then one epoch of decay
    assert [o.param_groups[0]["lr"] for o in opts2] == pytest.approx([want, want])
    assert [o.param_groups[0]["lr"] for o in opts2] == [o.param_groups[0]["lr"] for o in opts]


def test_start_at_places_a_fresh_schedule_like_one_that_ran():
    """A checkpoint from before these options has no schedule state: start_at(k) gives the
    learning rate and KL weight of a schedule stepped k times."""
    cfg = replace(FULL, ema_decay=0.0)
    ran, fresh = make(0, cfg), make(0, cfg)
    train(*ran, range(9))
    fresh[2].start_at(9)
    assert fresh[2].lr == ran[2].lr and fresh[2].kl_weight(0.5) == ran[2].kl_weight(0.5)
    train(*fresh, range(9, 12))
    train(*ran, range(9, 12))
    assert fresh[2].lr == ran[2].lr == pytest.approx(0.05 * factor_at(cfg, 12))


def factor_at(cfg: OptimConfig, step: int) -> float:
    return lr_factor(step, cfg, steps_per_epoch=4, total_steps=24)


def test_legacy_values_are_the_recipe_before_these_options():
    from genlab.config import TrainConfig, defaults
    from genlab.models import MODELS, legacy_values, unconditional_family

    plain = defaults(TrainConfig)
    for kind in MODELS:
        old = legacy_values(kind)
        assert set(old) == set(family_defaults(kind))
        gan = (unconditional_family(kind) or kind) in ("gan", "dcgan")  # cgan: a GAN's recipe
        want = {k: plain[k] for k in old} | ({"betas": (0.5, 0.999)} if gan else {})
        assert old == want, kind
    # what an old GAN's config.json (model option adam_beta1 = 0.5) now reads as
    from genlab.models import upgrade_config
    assert tuple(upgrade_config("gan", {"adam_beta1": 0.5}, {})[1]["betas"]) == legacy_values("gan")["betas"]
