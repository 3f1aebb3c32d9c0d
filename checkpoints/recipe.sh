#!/usr/bin/env bash
# Rebuilds the shipped runs under checkpoints/ (the app's embedded default):
#   GENLAB_DATA=../shared/datasets bash checkpoints/recipe.sh [--datasets mnist] [--commit]
# Every run of the line-up (benchmarks/lineup.py) trains on its CPU budget, one thread,
# two side by side; each is shipped compactly, evaluated on the full test split (k = 1000,
# FID on 10,000 samples) and recorded in checkpoints/<run>/recipe.json. Idempotent and
# resumable: see benchmarks/recipe.py (--dry-run says what it would do).
# The FID feature networks in checkpoints/fid/ come from benchmarks/train_fid_nets.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PY:-.venv/bin/python}" benchmarks/recipe.py "$@"
