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
EXACT_N=${EXACT_N:-1000}  # 2-D-latent VAEs: test images whose log p(x) eval integrates exactly
SCRATCH=${SCRATCH:-runs/recipe}
DATASETS=("${@:-mnist fashion-mnist}")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

ship() {  # ship NAME DATASET -- train options...
  local name=$1 ds=$2; shift 3
  local t0=$SECONDS
  rm -rf "$SCRATCH/$name-$ds" "checkpoints/$name-$ds"
  $PY -m genlab train --dataset "$ds" --run-dir "$SCRATCH/$name-$ds" --quiet "$@"
  $PY -m genlab ship "$SCRATCH/$name-$ds" "checkpoints/$name-$ds"
  $PY -m genlab eval "checkpoints/$name-$ds" --k "$K" --exact-n "$EXACT_N" --quiet > /dev/null
  $PY -m genlab.explore "checkpoints/$name-$ds" > /dev/null  # projections.npz (Latent explorer)
  echo "$name-$ds: $((SECONDS - t0)) s" | tee -a "$SCRATCH/times.txt"
}

# issue 15: 2-D-latent MNIST runs for the True posterior page, 40 epochs on one CPU thread
# (1.5-3 min each; Adam at a constant 1e-3, batch 128, no KL warm-up: the recipe before
# issue 12's VAE defaults), 128-unit MLPs and the last sample grid only (checkpoints/ stays under
# 60 MB); eval at k=1000 with log p(x) by quadrature on the first N test images (a planar
# posterior's grid costs ~2 s an image: its inverse is a bisection per grid point)
ship2d() {  # ship2d NAME EXACT_N -- train options...
  local name=$1 n=$2; shift 3
  rm -rf "$SCRATCH/$name-mnist" "checkpoints/$name-mnist"
  OMP_NUM_THREADS=1 $PY -m genlab train --dataset mnist --run-dir "$SCRATCH/$name-mnist" --quiet \
    --latent-dim 2 --hidden 128,128 --epochs 40 --max-minutes 5 --n-samples 16 \
    --batch-size 128 --lr-schedule constant --eps 1e-8 --kl-warmup-epochs 0 "$@"
  $PY -m genlab ship "$SCRATCH/$name-mnist" "checkpoints/$name-mnist"
  find "checkpoints/$name-mnist/samples" -name 'epoch_*.png' ! -name 'epoch_040.png' -delete
  $PY -m genlab eval "checkpoints/$name-mnist" --k 1000 --exact-n "$n" --quiet > /dev/null
  $PY -m genlab.explore "checkpoints/$name-mnist" > /dev/null  # projections.npz
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
if [[ " ${DATASETS[*]} " == *" mnist "* ]]; then
  ship2d vae-2d-planar 200 -- --model vae-flow-posterior --flow planar --num-flows 10
  ship2d vae-2d-realnvp-post 500 -- --model vae-flow-posterior --flow realnvp --num-flows 4 --flow-hidden 32,32
  ship2d vae-2d-iwae5 500 -- --model vae --iwae-k 5
fi
du -sh checkpoints
