#!/usr/bin/env bash
# Rebuilds the shipped runs under checkpoints/ (the app's embedded default).
#   GENLAB_DATA=../shared/datasets bash checkpoints/recipe.sh [mnist fashion-mnist]
# Each run trains in runs/recipe/, is shipped compactly (no optimiser state, float16
# weights) to checkpoints/<name>-<dataset>, and the shipped copy is evaluated on the
# full test split (IWAE k=$K for latent models, exact for flows; FID on 10,000 samples).
# The FID feature networks in checkpoints/fid/ come from benchmarks/train_fid_nets.py.
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

mkdir -p "$SCRATCH"
for ds in ${DATASETS[@]}; do
  ship vae-20d          "$ds" -- --model vae --latent-dim 20 --epochs 10
  ship vae-2d           "$ds" -- --model vae --latent-dim 2 --hidden 256,256 --epochs 10
  ship binary-vae       "$ds" -- --model binary-vae --hidden 256,256 --epochs 5
  ship ae-gmm           "$ds" -- --model ae-gmm --hidden 256,256 --epochs 5
  ship nice             "$ds" -- --model nice --hidden 256,256,256 --epochs 3
  ship realnvp          "$ds" -- --model realnvp --epochs 2
  ship vae-flow-decoder "$ds" -- --model vae-flow-decoder --hidden 256,256 --epochs 3
  ship vae-flow-prior   "$ds" -- --model vae-flow-prior --hidden 256,256 --epochs 5
  ship vae-planar       "$ds" -- --model vae-flow-posterior --flow planar --num-flows 10 --hidden 256,256 --epochs 5
  ship vae-realnvp-post "$ds" -- --model vae-flow-posterior --flow realnvp --num-flows 4 --hidden 256,256 --epochs 5
  ship gan              "$ds" -- --model gan --lr 2e-4 --epochs 10
done
du -sh checkpoints
