#!/usr/bin/env bash
# Train the paper's full population in one call on a lent GPU (the `device` tool): four
# label-corruption levels, 1.0 among them (random labels: a network can only memorize), x
# eight seeds = 32 cnn7 networks, 200 epochs of the paper's recipe, as one stacked model
# (`orisel train --population`), then pack what the analyses need into $OUT within the
# transfer limit (pack.py: manifests, best and last checkpoints, trajectories; weights only).
#
# Run from the repository root with the data set and the wheels orisel needs beyond the GPU
# image carried along:
#   .gpu/cifar10-jpeg.tar.gz   (a copy of ../shared/datasets/cifar10-jpeg.tar.gz)
#   .whl/*.whl                 (pydantic, pydantic-settings and their needs)
# TRAIN_S bounds the training (the runs resume with --resume if the clock stops them).
# The benchmark also measures the trainer's options one by one (BENCH_OPTIONS: CUDA graphs,
# TF32, bf16); the training itself stays float32 unless EXTRA names them (for example
# EXTRA="--compile cudagraphs", which computes the same steps faster where it pays).
set -uo pipefail
EPOCHS=${EPOCHS:-200}
CORRUPTIONS=${CORRUPTIONS:-0,0.2,0.4,1.0}
SEEDS=${SEEDS:-0,1,2,3,4,5,6,7}
DATA=${DATA:-.gpu/cifar10-jpeg.tar.gz}
RUNS=${RUNS:-/tmp/orisel-population}
OUT=${OUT:-/tmp/out}
DEVICE=${DEVICE:-cuda}
TRAIN_S=${TRAIN_S:-500}
EXTRA=${EXTRA:-}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl || exit 1
fi
export PYTHONPATH=$PWD/services:/tmp/site PYTHONUNBUFFERED=1 ORISEL_CACHE_DIR=${ORISEL_CACHE_DIR:-/tmp/orisel-cache}
nvidia-smi 2>/dev/null --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PYTHON" -c 'import torch; print("torch", torch.__version__)'
mkdir -p "$RUNS" "$OUT"
# The stacked step against the compute bound, and both layouts against 32 separate runs.
if [ "${BENCH:-1}" = 1 ]; then
  "$PYTHON" bench/bench_population.py --data "$DATA" --networks "${BENCH_NETWORKS:-32}" \
    --steps "${BENCH_STEPS:-50}" --device "$DEVICE" --repeats 1 ${BENCH_FLAGS:-} \
    ${BENCH_OPTIONS---compile cudagraphs --tf32 --amp bf16} \
    | tee "$OUT/bench_population.txt"
fi
start=$(date +%s)
# shellcheck disable=SC2086  # EXTRA holds several flags
timeout -s INT "$TRAIN_S" "$PYTHON" -c 'import sys; from orisel.client.cli import main; sys.exit(main())' \
  train --population --label-corruptions "$CORRUPTIONS" --seeds "$SEEDS" --epochs "$EPOCHS" \
  --data "$DATA" --device "$DEVICE" --out "$RUNS" --resume --json $EXTRA \
  >"$RUNS/population.json" 2>"$RUNS/population.log"
echo "trained for $(( $(date +%s) - start )) s (exit $?)"
tail -3 "$RUNS/population.log"
cp "$RUNS/population.json" "$RUNS/population.log" "$OUT/" 2>/dev/null
"$PYTHON" deploy/device/pack.py "$RUNS" "$OUT" || tar cf "$OUT/manifests.tar" -C "$RUNS" .
