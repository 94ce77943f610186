#!/usr/bin/env bash
# On a machine with a GPU and a CUDA LibTorch (a Python torch wheel is enough):
#   1. model/ alone against that LibTorch, and its CUDA check (cuda_check.cpp: forward, distances,
#      losses and gradients on CUDA against the CPU; vgg16 throughput);
#   2. the whole ppnet binary against the same LibTorch (Torch_DIR), with the dependencies of
#      .gpu-deps (tests/gpu/bundle.sh, made on a Debian machine and carried) or else the
#      system's, then the whole pipeline on CUDA against the CPU (pipeline.sh), in float32 and
#      with --amp bf16 / fp16 and --channels-last.
# Usage: tests/gpu/run.sh [build folder]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build-gpu}
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S "$here" -B "$build/model" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/model" -j "$(nproc)"
"$build/model/cuda_check"

bundle=$here/../../.gpu-deps  # tests/gpu/bundle.sh's folder, carried from a Debian machine
if [ -d "$bundle" ]; then
  ppnet=$("$here/build.sh" "$prefix/Torch" "$bundle" "$build/ppnet" | tail -1)
elif cmake -S "$here/../.." -B "$build/ppnet" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
     -DTorch_DIR="$prefix/Torch" -DBUILD_TESTING=OFF >"$build/configure.log" 2>&1; then
  cmake --build "$build/ppnet" -j "$(nproc)" --target ppnet
  ppnet=$build/ppnet/cli/ppnet
else
  echo "the whole binary was not configured (no $bundle, and the system lacks ppnet's other dependencies): see $build/configure.log"
  exit 0
fi
"$ppnet" --version
"$here/pipeline.sh" "$ppnet" cuda "$build/pipeline-fp32"
"$here/pipeline.sh" "$ppnet" cuda "$build/pipeline-bf16" --amp bf16 --channels-last
"$here/pipeline.sh" "$ppnet" cuda "$build/pipeline-fp16" --amp fp16 --channels-last
