#!/usr/bin/env bash
# Continue the paper's population (CORRUPTIONS x SEEDS, EPOCHS) from its packed training state
# on a lent GPU, for at most BUDGET_S seconds, and write the state back out as a pack.
#
#   PACK   the pack carried in (index.json, part-NNN.bin; deploy/device/population_state.py);
#          none: the population starts at step 0
#   OUT    the new pack goes to $OUT/pack, the training log to $OUT/train.log
# Training stops cleanly (SIGINT) PACK_S seconds before the budget ends and the pack is written
# from the last checkpoint every network has (at most one epoch is trained again next time).
# Killed at any point, this writes no pack, or one whose index.json names every part: the pack
# carried in stays the state to continue from.
#
# One call carries the repository (23 MB), the data set (19 MB), the wheels and the pack within
# 64 MiB, which a pack of 12 networks (about 60 MB) does not fit. It comes in over calls to the
# same warm machine: each call's data set and parts are kept in STAGE, and the call that brings
# the last of them trains (exit 75 until then). While ROOT holds the population (a later call
# on that machine), it continues from there.
#
# Run from the repository root with the data set and the wheels orisel needs beyond the GPU
# image carried along (as for train_population.sh). A session, with /.gpu/, /.whl/ and
# /.pack*/ in .git/info/exclude, the last pack's index.json in each of .pack1 .pack2 .pack3 and
# its parts spread over them (part-000; part-001 and part-002; part-003):
#   run carry=[.gpu,.whl,.pack1] command='PACK=.pack1 deploy/device/continue_population.sh'  # 75
#   run carry=[.pack2]           command='PACK=.pack2 deploy/device/continue_population.sh'  # 75
#   run carry=[.pack3]           command='PACK=.pack3 deploy/device/continue_population.sh'
# each call at once after the last (a machine idle for 30 s is given back, and its stage with
# it). The first pack of all is none: one call with .gpu and .whl starts at step 0. More seeds
# than fit one pack (20 networks would take about 95 MB) train as a second population, e.g.
# SEEDS=3,4 with a ROOT and pack of their own.
set -uo pipefail
EPOCHS=${EPOCHS:-200}
CORRUPTIONS=${CORRUPTIONS:-0,0.2,0.4,0.6}
SEEDS=${SEEDS:-0,1,2}
DATA=${DATA:-.gpu/cifar10-jpeg.tar.gz}
PACK=${PACK:-.pack}
STAGE=${STAGE:-/tmp/orisel-stage}
ROOT=${ROOT:-/tmp/orisel/population}
OUT=${OUT:-/tmp/out}
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-540}
PACK_S=${PACK_S:-60}
MAX_STEPS=${MAX_STEPS:-}
PART_BYTES=${PART_BYTES:-15728640}
# Fields a resumed run may not change (all but epochs and device): keep them from the first call.
EVAL_BATCH=${EVAL_BATCH:-2000}
EXTRA=${EXTRA:-}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
t0=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
if [ -d "$WHEELS" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl || exit 1
fi
export PYTHONPATH=$PWD/services:/tmp/site PYTHONUNBUFFERED=1 ORISEL_CACHE_DIR=${ORISEL_CACHE_DIR:-/tmp/orisel-cache}
state() { "$PYTHON" deploy/device/population_state.py "$@"; }
mkdir -p "$OUT" "$STAGE"
[ -f "$DATA" ] && { cp "$DATA" "$STAGE/data.tar.gz" || exit 1; }
[ -f "$STAGE/data.tar.gz" ] || { echo "waiting for the data set ($DATA)"; exit 75; }
if ! compgen -G "$ROOT/*/manifest.json" >/dev/null; then
  if [ -f "$PACK/index.json" ]; then
    cp "$PACK"/index.json "$STAGE"/ && cp "$PACK"/part-*.bin "$STAGE"/ 2>/dev/null
  fi
  if [ -f "$STAGE/index.json" ]; then
    state unpack "$STAGE" "$ROOT" || exit $?
  else
    echo "no pack in $PACK: the population starts at step 0"
  fi
fi
elapsed "state ready"
train_s=$(( BUDGET_S - PACK_S - $(date +%s) + t0 ))
[ "$train_s" -gt 0 ] || { echo "no time left to train within BUDGET_S=$BUDGET_S"; exit 1; }
# shellcheck disable=SC2086  # EXTRA holds several flags
timeout -s INT -k 30 "$train_s" "$PYTHON" -m orisel train --population \
  --label-corruptions "$CORRUPTIONS" --seeds "$SEEDS" --epochs "$EPOCHS" --data "$STAGE/data.tar.gz" \
  --device "$DEVICE" --out "$ROOT" --resume -q --json ${MAX_STEPS:+--max-steps "$MAX_STEPS"} \
  --eval-batch-size "$EVAL_BATCH" \
  $EXTRA >"$OUT/train.log" 2>&1
rc=$?
# Stopped by the budget, which is the plan (124, 130; 137 when SIGINT did not end it within
# 30 s): the pack starts from the last checkpoint all networks wrote. Anything else is a fault.
case $rc in 0|124|130|137) ;; *) tail -n 20 "$OUT/train.log"; exit "$rc" ;; esac
elapsed "trained (exit $rc)"
state pack "$ROOT" "$OUT/pack" --part-bytes "$PART_BYTES" || exit $?
elapsed "packed"
"$PYTHON" - "$ROOT" <<'EOF'
import json, sys
from pathlib import Path
for manifest in sorted(Path(sys.argv[1]).glob("*/manifest.json")):
    m = json.loads(manifest.read_text())
    last, best = m["history"][-1], m["best"] or {}
    past = last["epoch"] - best.get("epoch", 0)
    print(f"{manifest.parent.name}: epoch {last['epoch']:g} of {m['config']['epochs']}, "
          f"test acc {last['metrics']['test']['accuracy']:.4f}, best epoch "
          f"{best.get('epoch')} ({past:g} epochs past it)")
EOF
