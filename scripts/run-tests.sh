#!/usr/bin/env bash
# `make test`: ctest over the build folder, and a skipped test counts as a failure: a suite whose
# shared set-up failed, or a test whose tool is missing, must not leave the run green.
# Usage: scripts/run-tests.sh BUILD_DIR JOBS
set -uo pipefail
build=$1 jobs=$2
log=$build/ctest-last.log
ctest --test-dir "$build" --output-on-failure -j "$jobs" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
skipped=$(grep -E '\*\*\*Skipped|\*\*\*Not Run' "$log" || true)
if [ -n "$skipped" ]; then
  echo "make test: skipped tests count as failures:" >&2
  echo "$skipped" >&2
  exit 1
fi
exit "$status"
