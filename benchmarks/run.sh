#!/usr/bin/env bash
# Every benchmark, one after the other on this machine; figures only, never assertions.
#   forward:  vgg16 ProtoPNet at 224 px, batch 8, 2 threads, in ppnet and in Python torch
#   prepare:  augmentation throughput at 1 and 2 threads
#   train:    bare backbone forward+backward, a joint step, ppnet train warm and joint
#   project:  push with and without pictures (50 and 2000 prototypes), explain, last-layer cache
#   explain:  peak memory for 100 and 1,000 images (needs the demo's run)
#   last layer: prox against 20 Adam epochs on the demo's cache (needs the demo's run)
# forward also times trained weights (denormal floats), with and without flushing them.
set -euo pipefail
build=${1:-build}
here=$(dirname "$0")
"$build/benchmarks/ppnet_bench_forward" vgg16 224 8 2 5
/usr/bin/python3 "$here/forward.py" vgg16 224 8 2 5
"$build/benchmarks/ppnet_bench_prepare" 40
"$build/benchmarks/ppnet_bench_train" vgg16 224 8 2 3
"$build/benchmarks/ppnet_bench_project" vgg16 224 25 2
if [ -d runs/fashion-mnist ]; then
  benchmarks/explain_memory.sh "$build"
  "$build/benchmarks/ppnet_bench_last_layer" runs/fashion-mnist data/fashion-mnist 2
fi
