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


def test_a_variant_can_train_the_new_recipe_alone(capsys):
    assert set(_plan(capsys, "--recipes", "new")) == {"new"}
    lc.NEW_EXTRA.clear()


def test_combine_merges_a_new_only_file_recipe_by_recipe(tmp_path, capsys):
    import json

    def res(recipes: dict) -> dict:
        return {"entry": "realnvp", "model": "realnvp", "budget_min": 30, "metric": "bits_per_dim",
                "unit": "bits/dim", "goal": 2.0, "sources": [], "recipes": recipes}

    def rec(final: float) -> dict:
        return {"options": [], "snapshots": [{"cpu_min": 30.0, "metric": final}], "cpu_min": 30.0,
                "final": final, "minutes_to_goal": 5.0}

    meta = {"machine": "x, 2 CPU cores, torch 2", "wall_min": 1.0, "command": "c"}
    both, variant = tmp_path / "both.json", tmp_path / "variant.json"
    both.write_text(json.dumps({"meta": meta, "results": [res({"old": rec(1.47), "new": rec(1.46)})]}))
    variant.write_text(json.dumps({"meta": meta, "results": [res({"new": rec(1.43)})]}))
    assert lc.main(["--combine", str(both), str(variant), "--out", str(tmp_path / "c")]) == 0
    got = json.loads((tmp_path / "c.json").read_text())["results"][0]["recipes"]
    assert (got["old"]["final"], got["new"]["final"]) == (1.47, 1.43)
    assert "| 1.470 | 1.430 |" in (tmp_path / "c.md").read_text()


def test_each_curve_is_measured_by_what_its_model_declares():
    """No likelihood: FID; a likelihood on dequantised pixels: bits/dim; on binarised: nats
    (read from the model's caps and its preprocessing, not from its family's name)."""
    got = {f.entry: (f.metric, f.unit, f.goal) for f in lc.FAMILIES}
    assert got == {"vae-20d": lc.NATS, "vae-flow-prior": lc.NATS, "binary-vae": lc.NATS,
                   "nice": lc.BITS, "realnvp": lc.BITS, "gan": lc.FID}
    vae = next(e for e in lc.lineup.LINEUP if e.name == "vae-20d")
    dequantised = lc.lineup.Entry("vae-8bit", (*vae.options, "--preprocess", "dequantize"), None)
    assert lc.measure(dequantised) == lc.BITS
