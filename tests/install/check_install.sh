#!/usr/bin/env bash
# ppnet as an installed tool, checked from outside the build tree:
#   1. `cmake --install BUILD --prefix P`: the files where they belong, no RUNPATH, and the
#      installed binary runs a tiny prepare → train → project → explain from another folder, its
#      Makefile.data finding it there;
#   2. `cpack -G DEB`: the .deb's Depends computed (LibTorch, OpenCV, Boost, TBB, SQLite among
#      them), its files unpacked into a throw-away root (dpkg -x) and that binary running the same.
#
#   tests/install/check_install.sh BUILD WORK
#
# PYTHON (default python3) needs Pillow. Exit 0 when every check passes.
set -euo pipefail
build=$(cd "$1" && pwd) work=$2
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
rm -rf "$work" && mkdir -p "$work"
work=$(cd "$work" && pwd)

fail() { echo "check_install: $*" >&2; exit 1; }

# A tiny prepare → train warm → project → explain with the binary $1, run from an empty folder.
tiny_pipeline() {
  local ppnet=$1 out=$2
  mkdir -p "$out/cwd"
  (
    cd "$out/cwd"
    "$ppnet" --version
    "$ppnet" prepare --folder "$work/images" --out "$out/data" --copies 0 --test-fraction 0.25 --threads 2 >/dev/null
    "$ppnet" train --stage warm --data "$out/data" --run "$out/run" --arch small --img-size 32 --prototypes-per-class 1 \
      --prototype-dim 8 --batch-size 10 --epochs 1 --threads 2 >/dev/null
    "$ppnet" project --data "$out/data" --run "$out/run" --threads 2 >/dev/null
    "$ppnet" explain --run "$out/run" --dir "$out/data/test" --out "$out/explained" --threads 2 >/dev/null
  ) || fail "$ppnet: the tiny pipeline failed"
  [ -f "$out/explained/index.html" ] || fail "$ppnet explain wrote no $out/explained/index.html"
}

"$python" "$here/../gpu/make_images.py" "$work/images" 2 12

# 1. cmake --install
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
commands=$("$build/cli/ppnet" --help | awk '/^Commands:/{on=1; next} /^$/{on=0} on {print $1}')
for f in bin/ppnet share/man/man1/ppnet.1 share/bash-completion/completions/ppnet share/zsh/vendor-completions/_ppnet \
         share/ppnet/Makefile.data share/ppnet/examples/parts_cub.py share/doc/ppnet/README.md; do
  [ -e "$prefix/$f" ] || fail "cmake --install put no $f under the prefix"
done
for c in $commands; do
  [ -f "$prefix/share/man/man1/ppnet-$c.1" ] || fail "no man page for '$c' under the prefix"
done
if readelf -d "$prefix/bin/ppnet" | grep -Eq 'RPATH|RUNPATH'; then
  fail "the installed binary has an RPATH/RUNPATH: $(readelf -d "$prefix/bin/ppnet" | grep -E 'RPATH|RUNPATH')"
fi
if strings "$prefix/bin/ppnet" | grep -qF "$build"; then fail "the installed binary names the build folder $build"; fi
tiny_pipeline "$prefix/bin/ppnet" "$work/installed"
# The installed Makefile.data finds the installed binary (dry run: the commands it would run).
planned=$(cd "$work" && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -n -f "$prefix/share/ppnet/Makefile.data" \
  check-weights ARCH=small WEIGHTS=w.safetensors 2>&1) || true
grep -qF "$prefix/bin/ppnet weights" <<<"$planned" ||
  fail "the installed Makefile.data does not run $prefix/bin/ppnet; make -n says: $planned"

# 2. The Debian package
(cd "$build" && cpack -G DEB -B "$work/package" >/dev/null) || fail "cpack -G DEB failed"
deb=$(ls "$work"/package/ppnet_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "cpack wrote no ppnet_*.deb into $work/package"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libtorch libopencv libboost-program-options libtbb libsqlite3; do
  grep -q "$lib" <<<"$depends" || fail "$deb: Depends has no $lib: $depends"
done
contents=$(dpkg-deb -c "$deb")
grep -q ' \./usr/bin/ppnet$' <<<"$contents" || fail "$deb holds no /usr/bin/ppnet"
root=$work/root
dpkg -x "$deb" "$root"
[ -f "$root/usr/share/man/man1/ppnet-train.1" ] || fail "$deb holds no ppnet-train(1)"
tiny_pipeline "$root/usr/bin/ppnet" "$work/packaged"
echo "check_install: cmake --install and $(basename "$deb") (Depends: $depends) both run the tiny pipeline"
