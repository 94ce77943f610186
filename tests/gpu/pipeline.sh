#!/usr/bin/env bash
# The whole pipeline — prepare → warm → joint (killed and resumed) → project → last-layer →
# evaluate → explain — on a tiny generated data set, once on the CPU and once on DEVICE, and each
# stage's outputs compared (compare.py). Passes on the CPU alone (DEVICE=cpu: the two runs must
# agree exactly); on a GPU it checks the CUDA build end to end, Adam's state moved to the device on
# resume included.
#
#   tests/gpu/pipeline.sh PPNET DEVICE WORK [options for the DEVICE run, e.g. --amp bf16 --channels-last]
#
# PYTHON (default python3) needs Pillow. Exit 0 when every stage agrees.
set -euo pipefail
ppnet=$1 device=$2 work=$3
shift 3
extra=("$@")
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
rm -rf "$work" && mkdir -p "$work"

"$python" "$here/make_images.py" "$work/images" 3 60
"$ppnet" prepare --folder "$work/images" --out "$work/data" --copies 0 --test-fraction 0.25 --threads 4 >/dev/null

run_pipeline() {  # DEVICE OUTDIR [options]
  local dev=$1 out=$2
  shift 2
  local run=$out/run common=(--threads 4 --seed 3 --device "$dev" "$@")
  local model=(--arch small_bn --img-size 32 --prototypes-per-class 3 --prototype-dim 16 --batch-size 10)
  local start=$SECONDS
  "$ppnet" train --stage warm --data "$work/data" --run "$run" "${model[@]}" --epochs 1 "${common[@]}" >/dev/null
  # Killed right after its first mid-epoch checkpoint (the 4th durable write: stage, status,
  # checkpoint file, its row), then resumed: the optimizer's state comes back onto the device.
  set +e
  (PPNET_CRASH_AFTER=4 exec "$ppnet" train --stage joint --data "$work/data" --run "$run" --epochs 6 --batch-size 10 \
    --checkpoint-every 3 "${common[@]}" >/dev/null 2>"$out/killed.log") 2>/dev/null
  local killed=$?
  set -e
  if [ "$killed" -ne 137 ]; then echo "joint on $dev: expected SIGKILL (137), got $killed" >&2; cat "$out/killed.log" >&2; exit 1; fi
  "$ppnet" train --stage joint --data "$work/data" --run "$run" --resume "${common[@]}" >"$out/resumed.log"
  grep -q "resumed" "$out/resumed.log" || { echo "joint on $dev did not resume:" >&2; cat "$out/resumed.log" >&2; exit 1; }
  "$ppnet" project --data "$work/data" --run "$run" --batch-size 16 "${common[@]}" >/dev/null
  "$ppnet" last-layer --data "$work/data" --run "$run" "${common[@]}" >/dev/null
  "$ppnet" evaluate --data "$work/data" --run "$run" --predictions-csv "$out/predictions.csv" "${common[@]}" >/dev/null
  "$ppnet" explain --run "$run" --dir "$work/data/test/class1" --out "$out/explained" --json "${common[@]}" >"$out/explain.json"
  "$ppnet" info --run "$run" --json >"$out/info.json"
  "$ppnet" info --run "$run" --prototypes --json >"$out/prototypes.json"
  echo "pipeline on $dev ${*:-}: $((SECONDS - start)) s"
}

run_pipeline cpu "$work/cpu"
run_pipeline "$device" "$work/device" "${extra[@]}"
tolerance=exact
if [ "$device" != cpu ]; then tolerance=device; fi
if [ ${#extra[@]} -gt 0 ]; then tolerance=precision; fi
"$python" "$here/compare.py" "$work/cpu" "$work/device" --tolerance "$tolerance"
