#!/usr/bin/env bash
# Train the paper's design as populations in one call on a lent GPU (the `device` tool), tune
# their training trajectories there, and pack what the analyses need into $OUT within the
# transfer limit (pack.py: manifests, trajectory tables, best checkpoints; weights only).
#
#   population   label corruptions CORRUPTIONS x SEEDS, the paper's recipe (augmented), as one
#                stacked model (`orisel train --population`)
#   memorize     MEMORIZE_CORRUPTIONS x MEMORIZE_SEEDS without augmentation, as Morcos et al.
#                trained networks to fit their (corrupted) training labels; empty: none
# Both run side by side for TRAIN_S seconds (CUDA MPS where it works), configured for EPOCHS
# and stopped by the clock: every manifest says how far each got, and `--resume` continues.
# Then `orisel trajectory` tunes each run's checkpoints at TRAJECTORY_EPOCHS on the GPU, and
# the benchmark measures the trainer's layouts and options (BENCH_OPTIONS) when time is left.
#
# Run from the repository root with the data set and the wheels orisel needs beyond the GPU
# image carried along:
#   .gpu/cifar10-jpeg.tar.gz   (a copy of ../shared/datasets/cifar10-jpeg.tar.gz)
#   .whl/*.whl                 (pydantic, pydantic-settings and their needs)
set -uo pipefail
EPOCHS=${EPOCHS:-200}
CORRUPTIONS=${CORRUPTIONS:-0,0.2,0.4,0.6}
SEEDS=${SEEDS:-0,1,2}
MEMORIZE_CORRUPTIONS=${MEMORIZE_CORRUPTIONS-0,0.4,1.0}
MEMORIZE_SEEDS=${MEMORIZE_SEEDS:-0}
DATA=${DATA:-.gpu/cifar10-jpeg.tar.gz}
ROOT=${ROOT:-/tmp/orisel}
OUT=${OUT:-/tmp/out}
DEVICE=${DEVICE:-cuda}
TRAIN_S=${TRAIN_S:-330}
TRAJECTORY_S=${TRAJECTORY_S:-80}
TRAJECTORY_EPOCHS=${TRAJECTORY_EPOCHS:-0,0.25,0.5,0.75,1,1.5,2,3,5,7,10,15,20,30,40,50,60,80,100,120,150,200}
TRAJECTORY_PERMUTATIONS=${TRAJECTORY_PERMUTATIONS:-200}
DEADLINE_S=${DEADLINE_S:-570}
EXTRA=${EXTRA:-}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl || exit 1
fi
export PYTHONPATH=$PWD/services:/tmp/site PYTHONUNBUFFERED=1 ORISEL_CACHE_DIR=${ORISEL_CACHE_DIR:-/tmp/orisel-cache}
t0=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi 2>/dev/null --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PYTHON" -c 'import torch; print("torch", torch.__version__)'
# MPS lets the two trainings' small kernels share the GPU instead of time-slicing contexts.
if [ "$DEVICE" != cpu ] && nvidia-cuda-mps-control -d 2>/dev/null; then
  if "$PYTHON" -c 'import torch; torch.ones(1, device="cuda").sum().item()'; then echo "MPS on"
  else echo quit | nvidia-cuda-mps-control; echo "MPS does not work here: off"; fi
fi
mkdir -p "$ROOT/population" "$ROOT/memorize" "$ROOT/analysis" "$OUT"
# Decode the archive once, before the runs start, so they share the cache.
"$PYTHON" -m orisel data info --data "$DATA" -q || exit 1
elapsed "data decoded"
train() {  # train FOLDER CORRUPTIONS SEEDS FLAGS...
  local dir=$1 corruptions=$2 seeds=$3; shift 3
  # shellcheck disable=SC2086  # EXTRA holds several flags
  timeout -s INT -k 30 "$TRAIN_S" "$PYTHON" -m orisel train --population \
    --label-corruptions "$corruptions" --seeds "$seeds" --epochs "$EPOCHS" --data "$DATA" \
    --device "$DEVICE" --out "$dir" --resume --json "$@" \
    --eval-batch-size "${EVAL_BATCH:-2000}" $EXTRA \
    >"$dir/population.json" 2>"$dir/population.log"
  echo "$dir: exit $?"
}
train "$ROOT/population" "$CORRUPTIONS" "$SEEDS" &
if [ -n "$MEMORIZE_CORRUPTIONS" ]; then
  train "$ROOT/memorize" "$MEMORIZE_CORRUPTIONS" "$MEMORIZE_SEEDS" --no-augment &
fi
wait
elapsed "trained"
tail -n 3 "$ROOT"/*/population.log
tune_trajectory() {  # tune_trajectory RUN OUT DEVICE
  timeout "$TRAJECTORY_S" "$PYTHON" -m orisel trajectory --run "$1" --out "$2" --force -q \
    --epochs "$TRAJECTORY_EPOCHS" --permutations "$TRAJECTORY_PERMUTATIONS" --device "$3"
}
for run in "$ROOT"/population/cnn7-* "$ROOT"/memorize/cnn7-*; do
  [ -f "$run/manifest.json" ] || continue
  dest=$ROOT/analysis/$(basename "$(dirname "$run")")/$(basename "$run")/trajectory
  # One thread each: fifteen processes of sixteen threads on sixteen cores did not finish
  # within 80 s on an H200 (2026-11-28). A failure on the device (not the clock) is tuned
  # again on the CPU.
  (export OMP_NUM_THREADS=1
   tune_trajectory "$run" "$dest" "$DEVICE" || { [ $? != 124 ] && [ "$DEVICE" != cpu ] &&
     tune_trajectory "$run" "$dest" cpu; }) >"$run.trajectory.log" 2>&1 &
done
wait
elapsed "trajectories tuned: $(ls -d "$ROOT"/analysis/*/*/trajectory 2>/dev/null | wc -l)"
"$PYTHON" deploy/device/pack.py "$ROOT" "$OUT" || tar cf "$OUT/manifests.tar" --exclude='*.pt' -C "$ROOT" .
elapsed "packed"
# The stacked step against the compute bound, both layouts against separate runs, and the
# trainer's options one by one; last, so that a slow one costs nothing above.
bench_s=$(( DEADLINE_S - $(date +%s) + t0 ))
if [ "${BENCH:-1}" = 1 ] && [ "$bench_s" -gt 10 ]; then
  timeout "$bench_s" "$PYTHON" bench/bench_population.py --data "$DATA" \
    --networks "${BENCH_NETWORKS:-12}" --steps "${BENCH_STEPS:-40}" --device "$DEVICE" \
    --repeats 1 ${BENCH_FLAGS:-} ${BENCH_OPTIONS---tf32 --amp bf16} \
    >"$OUT/bench_population.txt" 2>&1
  cat "$OUT/bench_population.txt"
fi
elapsed "done"
