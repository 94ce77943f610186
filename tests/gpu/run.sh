#!/usr/bin/env bash
# On a machine with a CUDA LibTorch (a Python torch wheel is enough): build model/ and run the
# CUDA check. Usage: tests/gpu/run.sh [build folder]
set -euo pipefail
build=${1:-build-gpu}
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S "$(dirname "$0")" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build" -j "$(nproc)"
"$build/cuda_check"
