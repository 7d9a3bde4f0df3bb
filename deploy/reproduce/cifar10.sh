#!/usr/bin/env bash
# The reproduction's analysis on trained cnn7 runs (see docs/results/cifar10.md): tune the
# analysed checkpoint of every run (best.pt, or CHECKPOINT=last for networks analysed as
# trained, such as the memorizing regime's), tune the training trajectory of every run that
# kept its checkpoints, then ablation sweeps and shift-invariance on ABLATE_RUNS. Steps whose
# output exists are skipped, so the script resumes after an interruption.
#
# usage: deploy/reproduce/cifar10.sh RUNS_DIR ANALYSIS_DIR   (orisel on PATH, ORISEL_DATA set)
set -euo pipefail
RUNS=${1:?runs folder (one sub-folder per trained run)}
OUT=${2:?analysis folder}
CHECKPOINT=${CHECKPOINT:-best}
PERMUTATIONS=${PERMUTATIONS:-1000}
TRAJECTORY_PERMUTATIONS=${TRAJECTORY_PERMUTATIONS:-200}
ABLATE_RUNS=${ABLATE_RUNS-cnn7-c0-s0 cnn7-c0-s1 cnn7-c0-s2}
# The claims use gOSI and class selectivity orders; OSI's would add a third of the sweep.
ABLATE_ORDERS=${ABLATE_ORDERS:-gosi,csi}

step() {  # step OUTPUT_DIR COMMAND...: run unless OUTPUT_DIR/summary.json exists
  local dir=$1; shift
  [ -f "$dir/summary.json" ] && return 0
  echo "$(date +%T) $*"
  "$@" -q --out "$dir"
}

checkpoint() {  # checkpoint RUN: the file analysed
  if [ "$CHECKPOINT" = best ]; then echo "$1/best.pt"
  elif [ -f "$1/last.pt" ]; then echo "$1/last.pt"
  else find "$1/checkpoints" -name 'e*.pt' 2>/dev/null | sort | tail -n 1
  fi
}

for run in "$RUNS"/cnn7-*/; do
  name=$(basename "$run") ckpt=$(checkpoint "${run%/}")
  if [ ! -f "$ckpt" ]; then echo "$name: no $CHECKPOINT checkpoint kept, not analysed"; continue; fi
  mkdir -p "$OUT/$name"
  cp "$run/manifest.json" "$OUT/$name/manifest.json"  # the report reads it beside the analyses
  step "$OUT/$name/$CHECKPOINT/tune" orisel tune --checkpoint "$ckpt" --permutations "$PERMUTATIONS"
done
for name in $ABLATE_RUNS; do
  [ -d "$RUNS/$name" ] || continue
  ckpt=$(checkpoint "$RUNS/$name") scores=$OUT/$name/$CHECKPOINT/tune
  step "$OUT/$name/$CHECKPOINT/ablate" orisel ablate --checkpoint "$ckpt" --scores "$scores" \
    --orders "$ABLATE_ORDERS"
  step "$OUT/$name/$CHECKPOINT/invariance" orisel invariance --checkpoint "$ckpt" \
    --scores "$scores"
done
for run in "$RUNS"/cnn7-*/; do
  name=$(basename "$run")
  # Runs kept with their checkpoints over training (a copy kept for re-analysis may hold
  # only the analysed one).
  [ "$(find "$run" -path '*/checkpoints/e*.pt' | wc -l)" -ge 2 ] || continue
  step "$OUT/$name/trajectory" orisel trajectory --run "$run" \
    --permutations "$TRAJECTORY_PERMUTATIONS"
done
echo "$(date +%T) analysis complete in $OUT"
