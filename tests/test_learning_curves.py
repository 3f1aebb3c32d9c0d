"""benchmarks/learning_curves.py's plan: what each recipe trains with (no training here)."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks")]

import learning_curves as lc  # noqa: E402


def _plan(capsys, *argv: str) -> dict[str, str]:
    assert lc.main(["--families", "vae-20d", "--dry-run", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    return {ln.split(":")[0].strip(): ln for ln in out if ln.strip().startswith(("old:", "new:"))}


def test_old_and_new_differ_by_the_family_defaults_and_chunks_count_cpu_minutes(capsys):
    plan = _plan(capsys)
    assert "--ema-decay 0.0" in plan["old"] and "--batch-size 128" in plan["old"]
    assert "--ema-decay 0.9982" in plan["new"] and "--batch-size 100" in plan["new"]
    assert all("--max-minutes 2 --budget-clock cpu" in line for line in plan.values())


def test_a_variant_adds_its_flags_to_the_new_recipe_only(capsys):
    plan = _plan(capsys, "--new-options", "--kl-warmup-epochs 10 --batch-size 50")
    assert "--kl-warmup-epochs 10" in plan["new"] and "--batch-size 50" in plan["new"]
    assert "--batch-size 100" not in plan["new"]  # replaced, not repeated
    assert "--kl-warmup-epochs 10" not in plan["old"] and "--batch-size 128" in plan["old"]
    lc.NEW_EXTRA.clear()
