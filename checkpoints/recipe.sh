#!/usr/bin/env bash
# Rebuilds the shipped runs under checkpoints/ (the app's embedded default).
#   GENLAB_DATA=../shared/datasets bash checkpoints/recipe.sh [mnist fashion-mnist]
# Each run trains in runs/recipe/, is shipped compactly (no optimiser state, float16
# weights) to checkpoints/<name>-<dataset>, and the shipped copy is evaluated on the
# full test split (IWAE k=$K for latent models, exact for flows; FID on 10,000 samples).
# The FID feature networks in checkpoints/fid/ come from benchmarks/train_fid_nets.py.
# The runs and their options are the line-up in benchmarks/lineup.py (entries with a
# fixed epoch count); `python benchmarks/zoo.py` trains the same line-up on a time budget.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
K=${K:-100}
SCRATCH=${SCRATCH:-runs/recipe}
DATASETS=("${@:-mnist fashion-mnist}")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

ship() {  # ship NAME DATASET -- train options...
  local name=$1 ds=$2; shift 3
  local t0=$SECONDS
  rm -rf "$SCRATCH/$name-$ds" "checkpoints/$name-$ds"
  $PY -m genlab train --dataset "$ds" --run-dir "$SCRATCH/$name-$ds" --quiet "$@"
  $PY -m genlab ship "$SCRATCH/$name-$ds" "checkpoints/$name-$ds"
  $PY -m genlab eval "checkpoints/$name-$ds" --k "$K" --quiet > /dev/null
  echo "$name-$ds: $((SECONDS - t0)) s" | tee -a "$SCRATCH/times.txt"
}

# the line-up (names, model options, epochs) lives in benchmarks/lineup.py, shared with
# benchmarks/zoo.py; it prints "name<TAB>train options" for each shipped run
LINEUP=$($PY benchmarks/lineup.py)
mkdir -p "$SCRATCH"
for ds in ${DATASETS[@]}; do
  while IFS=$'\t' read -r name opts; do
    ship "$name" "$ds" -- $opts < /dev/null
  done <<< "$LINEUP"
done
du -sh checkpoints
