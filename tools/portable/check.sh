#!/usr/bin/env bash
# Cross-builds cnnfast's C library for aarch64 (portable C path: no AVX files, generic dispatch)
# with Debian's gcc-aarch64-linux-gnu through csrc/CMakeLists.txt, -Werror, and runs
# portable_check.c under qemu-aarch64 when it is available.
#
#   tools/portable/check.sh [build-dir]
#
# Exits 0 after "N passed, 0 failed", or with a "skipped:" message when the cross compiler cannot
# be had (not root, no apt-get, no network); non-zero when the build or a check fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(mktemp -d "${TMPDIR:-/tmp}/cnnfast-aarch64.XXXXXX")}

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user) >/dev/null 2>&1 || true
  fi
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  echo "aarch64 portable build: skipped: aarch64-linux-gnu-gcc not available (apt-get install gcc-aarch64-linux-gnu)"
  exit 0
fi
for tool in cmake ninja; do
  command -v "$tool" >/dev/null || { echo "aarch64 portable build: skipped: $tool not found"; exit 0; }
done

cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_TOOLCHAIN_FILE="$here/toolchain-aarch64.cmake" >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
grep -q "building the portable C kernels only" "$build.configure.log" \
  || { echo "aarch64 portable build: the ISA files were not left out"; exit 1; }
cmake --build "$build" >"$build.build.log" 2>&1 || { cat "$build.build.log"; exit 1; }
file_desc=$(file -b "$build/portable_check" 2>/dev/null || echo "?")
echo "aarch64 portable build: ok ($file_desc)"
if command -v qemu-aarch64 >/dev/null; then
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$build/portable_check"
else
  echo "aarch64 portable check: skipped: qemu-aarch64 not available (apt-get install qemu-user)"
fi
