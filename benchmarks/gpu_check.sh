#!/usr/bin/env bash
# Seconds per epoch on CUDA GPUs (issue 14): the shipped vae-20d and realnvp configurations
# on MNIST (all 55,000 training images, batch 128 global), fp32 and bf16, on 1 process, then
# on 2, 4, ... processes (torchrun, one per GPU, NCCL) up to the GPUs visible. Each case trains
# 2 epochs from the shipped config.json; epoch 2 is reported (epoch 1 pays CUDA start-up
# and cuDNN autotuning): its training time and images/s from metrics.jsonl, and the wall time
# from epoch 1's end to epoch 2's end (validation, checkpoint and samples included).
#
#   GENLAB_DATA=path/to/datasets bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Prints one line per case and writes OUT_DIR/gpu_check.json (default: a temporary folder).
# Needs a CUDA GPU; never part of the tests. A dry run of the script on the CPU, on a few
# images (GPU_CHECK_PROCS=2 for the torchrun path too):
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_LIMIT=512 bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
DEVICE=${GPU_CHECK_DEVICE:-cuda}
LIMIT=${GPU_CHECK_LIMIT:-0}  # 0: the whole training split
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$DEVICE" = cpu ]; then GPUS=${GPU_CHECK_PROCS:-1}; NAME=cpu  # the dry run (gloo)
elif [ "$GPUS" -lt 1 ]; then
  echo "gpu_check: no CUDA GPU visible (torch.cuda.device_count() = 0): nothing to time" >&2
  exit 1
else NAME=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")
fi
echo "device: $GPUS x $NAME; runs under $OUT"
PROCS=1
LIST=()
while [ "$PROCS" -le "$GPUS" ]; do LIST+=("$PROCS"); PROCS=$((PROCS * 2)); done
for MODEL in vae-20d realnvp; do
  for PREC in fp32 bf16; do
    for N in "${LIST[@]}"; do
      RUN="$OUT/$MODEL-$PREC-$N"
      rm -rf "$RUN" && mkdir -p "$RUN"
      "$PY" - "$MODEL" "$PREC" "$RUN" "$DEVICE" "$LIMIT" <<'PYEOF'
import json, sys
model, prec, run, device, limit = sys.argv[1:]
cfg = json.load(open(f"checkpoints/{model}-mnist/config.json"))
cfg["train"].update(epochs=2, device=device, precision=prec, data_root="", limit=int(limit))
json.dump(cfg, open(f"{run}/config.json", "w"), indent=2)
PYEOF
      if [ "$N" -eq 1 ]; then
        CMD=("$PY" -m genlab train --run-dir "$RUN" --quiet)
      else
        CMD=("$PY" -m torch.distributed.run --standalone --nproc-per-node "$N" -m genlab train
             --run-dir "$RUN" --quiet)
      fi
      "${CMD[@]}" > "$RUN/train.log" 2>&1 || { echo "$MODEL $PREC x$N: failed (see $RUN/train.log)"; continue; }
      "$PY" - "$MODEL" "$PREC" "$N" "$RUN" "$NAME" "$OUT/gpu_check.json" "$LIMIT" <<'PYEOF'
import json, sys
model, prec, n, run, name, out, limit = sys.argv[1:]
images = int(limit) or 55000  # genlab's MNIST training split: 55,000 (5,000 are validation)
recs = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
train = {r["epoch"]: r for r in recs if r["event"] == "epoch" and r["split"] == "train"}
ends = {r["epoch"]: r["seconds"] for r in recs if r["event"] == "epoch"}  # last record of each epoch
row = {"model": model, "precision": prec, "processes": int(n), "device": name,
       "images_per_s": train[2]["images_per_s"], "train_s": round(images / train[2]["images_per_s"], 2),
       "epoch_s": round(ends[2] - ends[1], 2)}
print(f"{model:8s} {prec} x{n}: {row['train_s']:7.2f} s training ({row['images_per_s']:,.0f} images/s), "
      f"{row['epoch_s']:7.2f} s the whole epoch")
try:
    rows = json.load(open(out))
except OSError:
    rows = []
json.dump(rows + [row], open(out, "w"), indent=2)
PYEOF
    done
  done
done
echo "written to $OUT/gpu_check.json"
