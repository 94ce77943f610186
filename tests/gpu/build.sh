#!/usr/bin/env bash
# Builds the whole ppnet binary against a given LibTorch and the folder tests/gpu/bundle.sh made,
# ignoring whatever OpenCV, Boost, TBB, SQLite, libarchive or nlohmann-json the system has (none is
# needed):
#   tests/gpu/build.sh TORCH_DIR BUNDLE BUILD
# TORCH_DIR: the folder of TorchConfig.cmake (for a Python torch wheel:
# $(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch). Prints the binary's
# path last. Gloo's headers are taken from LibTorch's include folder when it has them; without
# them ppnet builds without data-parallel work. The system's prefixes are ignored while
# configuring (IGNORE_SYSTEM=0 keeps them: needed with Debian's LibTorch, whose CMake config
# looks for glog and the like there); either way the build fails if any of the bundled
# libraries' headers came from the system instead.
set -euo pipefail
torch_dir=$(realpath "$1") bundle=$(realpath "$2") build=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
rm -f "$build/CMakeCache.txt"  # options from an earlier configure must not linger
ignore=()
if [ "${IGNORE_SYSTEM:-1}" = 1 ]; then ignore=(-DCMAKE_IGNORE_PREFIX_PATH="/usr;/usr/local"); fi
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DTorch_DIR="$torch_dir" -DCMAKE_PREFIX_PATH="$bundle" "${ignore[@]}" \
  -DOpenCV_DIR="$bundle/lib/cmake/opencv4" -DBoost_USE_STATIC_LIBS=ON -DBoost_NO_SYSTEM_PATHS=ON \
  -DLibArchive_LIBRARY="$bundle/lib/libarchive.a" -DLibArchive_INCLUDE_DIR="$bundle/include" \
  -DCMAKE_BUILD_RPATH="$bundle/lib/x86_64-linux-gnu" >"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 1; }
cmake --build "$build" --target ppnet >"$build.build.log" 2>&1 || { tail -40 "$build.build.log" >&2; exit 1; }
leaked=$(ninja -C "$build" -t deps | grep -E '^ +/usr/(local/)?include/(opencv4|boost|oneapi|tbb|nlohmann|kainjow|sqlite3\.h|zlib\.h|archive(_entry)?\.h)' | sort -u || true)
if [ -n "$leaked" ]; then echo "headers from the system instead of $bundle:" >&2; echo "$leaked" | head >&2; exit 1; fi
echo "$build/cli/ppnet"
