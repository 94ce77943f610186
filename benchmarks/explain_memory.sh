#!/usr/bin/env bash
# Peak resident memory of `ppnet explain` for 100 and for 1,000 images of the demo's run
# (make demo first): explanations stream, so the two should be within a few percent.
set -euo pipefail
build=${1:-build}
run=${2:-runs/fashion-mnist}
data=${3:-data/fashion-mnist}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for shard in 0/100 0/10; do
  /usr/bin/python3 - "$build/cli/ppnet" "$run" "$data/test" "$tmp/out-${shard//\//-}" "$shard" <<'PY'
import resource, subprocess, sys, time
ppnet, run, imgs, out, shard = sys.argv[1:]
t = time.time()
subprocess.run([ppnet, "explain", "--run", run, "--dir", imgs, "--out", out, "--shard", shard, "--threads", "2"],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
n = 10000 // int(shard.split("/")[1])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"explain {n:5d} images: peak RSS {peak:.0f} MiB, {n / (time.time() - t):.1f} images/s")
PY
done
