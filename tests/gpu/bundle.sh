#!/usr/bin/env bash
# Here, on Debian 12 with its package mirror: everything but LibTorch that building the whole
# ppnet binary needs, in one folder that can travel to a GPU machine without OpenCV, Boost, TBB,
# SQLite or nlohmann-json development files and without network (tests/gpu/build.sh uses it).
#   - OpenCV core, imgproc and imgcodecs (PNG, JPEG, PNM, HDR, Sun raster), static, built from
#     Debian's own source package: Debian's shared imgcodecs drags in 140 libraries (217 MB);
#   - libarchive, static, from Debian's source package with only zlib behind it (gzip'd tars
#     and zips; Debian's own links nettle, acl, lzma, zstd, lz4, bz2 and libxml2 with ICU);
#   - the static archives of Boost.Program_options, SQLite, zlib, libpng and libjpeg, and
#     oneTBB's shared library (Debian has no static one), with their headers and CMake configs;
#     of Boost only the headers program_options reaches (the compiler's own dependency list).
# Gloo's headers stay behind: an upstream LibTorch ships its own, matching its compiled Gloo.
# Usage: tests/gpu/bundle.sh [OUT]   (default .gpu-deps, ignored by git; about 10 minutes)
set -euo pipefail
out=$(realpath -m "${1:-.gpu-deps}")
multi=/usr/lib/x86_64-linux-gnu
work=$(mktemp -d)
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
mkdir -p "$out/lib/cmake" "$out/include" "$out/share/cmake"

# Debian's source packages, with apt's lists for deb-src kept in $work.
apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt" -o "Dir::State::Lists=$work/apt/lists")
debian_source() {
  if [ ! -d "$work/apt/lists" ]; then
    mkdir -p "$work/apt/lists/partial"
    cat >"$work/apt/src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get "${apt[@]}" update >/dev/null
  fi
  (cd "$work" && apt-get "${apt[@]}" source --download-only "$1" >/dev/null 2>&1)
}

# 1. OpenCV, static, from Debian's source package.
if [ ! -f "$out/lib/libopencv_core.a" ]; then
  debian_source opencv
  tar xJf "$work"/opencv_*.orig.tar.xz -C "$work"
  flags=(-DBUILD_LIST=core,imgproc,imgcodecs -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON
         -DCPU_DISPATCH=AVX2 -DOPENCV_LIB_INSTALL_PATH=lib -DOPENCV_CONFIG_INSTALL_PATH=lib/cmake/opencv4
         -DWITH_PNG=ON -DBUILD_PNG=OFF -DPNG_LIBRARY=$multi/libpng16.a -DWITH_JPEG=ON -DBUILD_JPEG=OFF
         -DJPEG_LIBRARY=$multi/libjpeg.a -DZLIB_LIBRARY=$multi/libz.a -DWITH_TIFF=OFF -DWITH_WEBP=OFF
         -DWITH_OPENJPEG=OFF -DWITH_JASPER=OFF -DWITH_OPENEXR=OFF -DWITH_IMGCODEC_PFM=OFF -DWITH_GDAL=OFF
         -DWITH_GDCM=OFF -DWITH_IPP=OFF -DWITH_ITT=OFF -DWITH_OPENCL=OFF -DWITH_LAPACK=OFF -DWITH_EIGEN=OFF
         -DWITH_TBB=OFF -DWITH_OPENMP=OFF -DWITH_PROTOBUF=OFF -DWITH_QUIRC=OFF -DWITH_ADE=OFF -DWITH_VA=OFF
         -DWITH_GTK=OFF -DWITH_QT=OFF -DWITH_FFMPEG=OFF -DWITH_GSTREAMER=OFF -DWITH_V4L=OFF -DWITH_1394=OFF
         -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_opencv_apps=OFF -DBUILD_JAVA=OFF
         -DBUILD_opencv_python3=OFF -DOPENCV_GENERATE_PKGCONFIG=OFF)
  cmake -S "$work"/opencv-*/ -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$out" \
    "${flags[@]}" >"$work/cmake.log"
  cmake --build "$work/build" --target install >"$work/build.log"
fi
# Its config names Debian's codec archives by absolute path: make them the bundle's own.
sed -i "s|$multi/lib\(png16\|jpeg\|z\)\.a|\${_IMPORT_PREFIX}/lib/lib\1.a|g" "$out/lib/cmake/opencv4/OpenCVModules.cmake"
rm -rf "$out/share/opencv4" "$out/share/licenses" "$out/bin"

# 1b. libarchive, static, zlib only (the format readers need no other library).
if [ ! -f "$out/lib/libarchive.a" ]; then
  debian_source libarchive
  tar xJf "$work"/libarchive_*.orig.tar.xz -C "$work"
  off=()
  for f in ACL XATTR OPENSSL NETTLE MBEDTLS LIBB2 LZ4 LZO LZMA ZSTD BZip2 LIBXML2 EXPAT PCREPOSIX ICONV \
           CNG TAR CPIO CAT TEST COVERAGE WERROR; do off+=(-DENABLE_$f=OFF); done
  cmake -S "$work"/libarchive-*/ -B "$work/build-archive" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DENABLE_ZLIB=ON "${off[@]}" >"$work/archive-cmake.log" 2>&1
  cmake --build "$work/build-archive" --target archive_static >"$work/archive-build.log"  # not the .so
  cp "$work/build-archive/libarchive/libarchive.a" "$out/lib/"
  cp "$work"/libarchive-*/libarchive/{archive.h,archive_entry.h} "$out/include/"
fi

# 2. The other libraries: static archives, oneTBB's shared library, their CMake configs, in
#    Debian's multiarch layout (Boost's and TBB's configs find their files relative to it).
arch=$out/lib/x86_64-linux-gnu
mkdir -p "$arch/cmake"
cp "$multi"/{libpng16.a,libjpeg.a,libz.a} "$out/lib/"  # OpenCV's codecs
cp "$multi"/{libsqlite3.a,libboost_program_options.a} "$arch/"
cp -P "$multi"/libtbb*.so* "$arch/"  # tbb, tbbmalloc, tbbmalloc_proxy: its config names them all
for d in TBB Boost-1.74.0 boost_headers-1.74.0 boost_program_options-1.74.0; do cp -r "$multi/cmake/$d" "$arch/cmake/"; done
cp "$multi/cmake/BoostDetectToolset-1.74.0.cmake" "$arch/cmake/"
cp -r /usr/share/cmake/nlohmann_json "$out/share/cmake/"

# 3. Headers: whole where small, Boost's by what program_options includes.
cp /usr/include/{sqlite3.h,sqlite3ext.h,zlib.h,zconf.h} "$out/include/"
cp -r /usr/include/{oneapi,tbb,nlohmann,kainjow} "$out/include/"
echo '#include <boost/program_options.hpp>' | g++ -std=c++17 -x c++ -M - | tr ' \\' '\n\n' |
  grep '^/usr/include/boost/' | sort -u | while read -r h; do
    mkdir -p "$out/include/$(dirname "${h#/usr/include/}")"
    cp "$h" "$out/include/${h#/usr/include/}"
  done
strip --strip-debug "$out"/lib/*.a "$arch"/*.a 2>/dev/null || true
du -sh "$out"
