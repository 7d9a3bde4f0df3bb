#!/usr/bin/env bash
# Train the reproduction's cnn7 variants side by side on one lent GPU (the `device` tool), for
# a fixed wall-clock budget, then pack what fits the transfer back (pack.py) into $OUT.
#
# Run from the repository root with the data set and the wheels orisel needs beyond the GPU
# image carried along:
#   .gpu/cifar10-jpeg.tar.gz   (a copy of ../shared/datasets/cifar10-jpeg.tar.gz)
#   .whl/*.whl                 (pydantic, pydantic-settings and their needs, for Python 3.12)
# TRAIN_S bounds the training; runs are configured for the paper's 200 epochs and stopped by
# the clock, so every manifest says how far each got and `--resume` continues it later.
set -uo pipefail
TRAIN_S=${TRAIN_S:-420}
RUNS=${RUNS:-/tmp/orisel-runs}
VARIANTS=${VARIANTS:-"0:0 0:1 0:2 0.1:0 0.2:0 0.4:0 0.6:0 0.8:0"}
OUT=${OUT:-/tmp/out}

DEVICE=${DEVICE:-cuda}
EXTRA=${EXTRA:-}
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl || exit 1
fi
export OMP_NUM_THREADS=2 PYTHONPATH=$PWD/services:/tmp/site PYTHONUNBUFFERED=1 ORISEL_CACHE_DIR=/tmp/orisel-cache
nvidia-smi 2>/dev/null --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'
# MPS lets the small kernels of several training processes share the GPU instead of
# time-slicing whole contexts; training still runs without it.
if nvidia-cuda-mps-control -d 2>/dev/null; then
  if python3 -c 'import torch; torch.ones(1, device="cuda").sum().item()'; then echo "MPS on"
  else echo quit | nvidia-cuda-mps-control; echo "MPS does not work here: off"; fi
else echo "MPS unavailable"; fi

orisel() { python3 -c 'import sys; from orisel.client.cli import main; sys.exit(main())' "$@"; }
# Decode the archive once, before the runs start, so they share the cache.
orisel data info --data .gpu/cifar10-jpeg.tar.gz || exit 1

mkdir -p "$RUNS" "$OUT"
start=$(date +%s)
for v in $VARIANTS; do
  c=${v%%:*} s=${v##*:}
  name=cnn7-c$c-s$s
  timeout -s INT "$TRAIN_S" bash -c "$(declare -f orisel); orisel train -q \
    --data .gpu/cifar10-jpeg.tar.gz --out $RUNS/$name --label-corruption $c --seed $s \
    --device $DEVICE $EXTRA --resume" >"$RUNS/$name.log" 2>&1 &
done
wait
echo "trained for $(( $(date +%s) - start )) s"
python3 deploy/device/pack.py "$RUNS" "$OUT" || tar cf "$OUT/manifests.tar" -C "$RUNS" .
