#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing ppnet need. Idempotent: packages
# already installed are skipped, and nothing is fetched when all are present.
set -euo pipefail

packages=(
  # toolchain
  cmake ninja-build ccache g++ make pkg-config
  # libraries ppnet links against
  libtorch-dev libgloo-dev libopenblas0-pthread libboost-program-options-dev libsqlite3-dev
  libopencv-dev libtbb-dev zlib1g-dev libarchive-dev nlohmann-json3-dev libkainjow-mustache-dev libgtest-dev
  # the independent oracle the tests compare against
  python3 python3-torch python3-torchvision python3-pil
  # the installed tool's checks: the .deb (CPack with dpkg-shlibdeps), man pages, zsh completion,
  # the HTML pages in a real browser
  dpkg-dev file groff-base zsh chromium-headless-shell
)

# --demo: also the data set of the demo; --fuzz: clang with libFuzzer and its OpenMP runtime.
if [ "${1:-}" = "--demo" ]; then
  packages=(dataset-fashion-mnist)
elif [ "${1:-}" = "--fuzz" ]; then
  packages=(clang-14 libfuzzer-14-dev libomp-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present" >&2
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
