#!/usr/bin/env bash
# The reproduction's analysis on trained cnn7 runs (see docs/results/cifar10.md): tune the best
# and the stored training-trajectory checkpoints of every run, then ablation sweeps and
# shift-invariance on the clean runs' best checkpoints. Steps whose output exists are skipped,
# so the script resumes after an interruption.
#
# usage: deploy/reproduce/cifar10.sh RUNS_DIR ANALYSIS_DIR   (orisel on PATH, ORISEL_DATA set)
set -euo pipefail
RUNS=${1:?runs folder (one sub-folder per trained run)}
OUT=${2:?analysis folder}
PERMUTATIONS=${PERMUTATIONS:-1000}
TRAJECTORY_PERMUTATIONS=${TRAJECTORY_PERMUTATIONS:-200}
ABLATE_RUNS=${ABLATE_RUNS:-cnn7-c0-s0 cnn7-c0-s1 cnn7-c0-s2}

step() {  # step OUTPUT_DIR COMMAND...: run unless OUTPUT_DIR/summary.json exists
  local dir=$1; shift
  [ -f "$dir/summary.json" ] && return 0
  echo "$(date +%T) $*"
  "$@" -q --out "$dir"
}

for run in "$RUNS"/cnn7-*/; do
  name=$(basename "$run")
  mkdir -p "$OUT/$name"
  cp "$run/manifest.json" "$OUT/$name/manifest.json"  # the report reads it beside the analyses
  step "$OUT/$name/best/tune" orisel tune --checkpoint "$run/best.pt" --permutations "$PERMUTATIONS"
done
for run in "$RUNS"/cnn7-*/; do
  name=$(basename "$run")
  for ckpt in "$run"/checkpoints/*.pt; do
    step "$OUT/$name/trajectory/$(basename "$ckpt" .pt)" orisel tune --checkpoint "$ckpt" \
      --permutations "$TRAJECTORY_PERMUTATIONS"
  done
done
for name in $ABLATE_RUNS; do
  best=$RUNS/$name/best.pt scores=$OUT/$name/best/tune
  step "$OUT/$name/best/ablate" orisel ablate --checkpoint "$best" --scores "$scores"
  step "$OUT/$name/best/invariance" orisel invariance --checkpoint "$best" --scores "$scores"
done
echo "$(date +%T) analysis complete in $OUT"
