#!/usr/bin/env bash
# Augmentation throughput of ppnet prepare at 1 and 2 threads, then forward throughput of the vgg16 ProtoPNet at 224 px, batch 8, 2 threads: ppnet (C++) and
# the same model in Python torch, one after the other on this machine. Prints figures only.
set -euo pipefail
build=${1:-build}
here=$(dirname "$0")
"$build/benchmarks/ppnet_bench_forward" vgg16 224 8 2 5
/usr/bin/python3 "$here/forward.py" vgg16 224 8 2 5
"$build/benchmarks/ppnet_bench_prepare" 40
"$build/benchmarks/ppnet_bench_train" vgg16 224 8 2 3
"$build/benchmarks/ppnet_bench_project" vgg16 224 25 2
