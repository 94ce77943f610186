#!/bin/sh
# Runs every libFuzzer target of a PPNET_FUZZ build for SECONDS each, from its seed corpus
# (tests/fuzz/corpus/<target>, read-only) into a working corpus in the build folder, and prints
# executions and crashes per target. Inputs that crash are kept in BUILD/crashes/<target>/;
# copy them into tests/fuzz/corpus/<target>/ once fixed, so `make test` replays them.
# Usage: scripts/fuzz.sh BUILD SECONDS [TARGET...]
set -eu
build=$1
seconds=$2
shift 2
targets=${*:-safetensors torch_save idx cub data_files image archive run_db}
status=0
printf '%-12s %12s %10s %8s %s\n' target executions exec/s crashes corpus
for t in $targets; do
  work=$build/corpus/$t
  crashes=$build/crashes/$t
  mkdir -p "$work" "$crashes"
  log=$build/fuzz-$t.log
  # One process; -rss_limit_mb bounds what a decoder may allocate for hostile sizes.
  if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
      -timeout=10 -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  found=$(find "$crashes" -type f | wc -l)
  printf '%-12s %12s %10s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$found" "$(find "$work" -type f | wc -l) inputs"
  [ "$found" -eq 0 ] || status=1
done
exit $status
