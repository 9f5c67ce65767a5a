#!/usr/bin/env bash
# ASan + UBSan: build cnnfast with -fsanitize=address,undefined (CMake option CNNFAST_SANITIZE) into
# a venv of its own, then run the test suite with the sanitizer runtimes preloaded into CPython.
#
#   bash .ci/sanitize.sh [pytest arguments...]     (default: the whole suite, tests/ -x)
#
# * Any heap/stack overflow, use-after-free or undefined behaviour in the C kernels aborts the
#   run with a report (-fno-sanitize-recover=undefined, halt_on_error=1).
# * detect_leaks=0: CPython itself does not free everything at exit, so LeakSanitizer would only
#   report the interpreter. Leaks of cnnfast are covered by tests/test_memory.py instead.
# * PYTHONMALLOC=malloc sends Python's small objects through malloc too, so ASan sees them.
# * PyTorch is deliberately not installed in this venv: its wheels bundle uninstrumented libraries
#   (libgomp, MKL/oneDNN) that are not meant to run under a preloaded ASan, so the PyTorch parity
#   tests skip here (pytest.importorskip) and run in the normal CI job.
# * The build lives in build/sanitize (not the release build directory) and is never stripped.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${CNNFAST_SANITIZE_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/cnnfast-sanitize.XXXXXX")}
cd "$repo"
echo "== cnnfast ASan+UBSan run in $work"

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
for lib in "$libasan" "$libubsan"; do
  if [ ! -e "$lib" ]; then
    echo "sanitize.sh: $lib not found (install gcc's libasan/libubsan, e.g. apt-get install libgcc-12-dev)" >&2
    exit 2
  fi
done

if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/python" -m pip install --quiet --upgrade pip
  # Build requirements (installed here because the build runs without isolation) and test extras.
  "$work/venv/bin/python" -m pip install --quiet "scikit-build-core>=0.10" "cython>=3.0" "numpy>=2.0" \
      "pytest>=7" "hypothesis>=6" "scipy>=1.9" "pytest-benchmark>=4" threadpoolctl
fi
"$work/venv/bin/python" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps \
    -Ccmake.define.CNNFAST_SANITIZE=ON -Cbuild-dir=build/sanitize -Cinstall.strip=false \
    -Ccmake.build-type=RelWithDebInfo .

export LD_PRELOAD="$libasan:$libubsan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc
export CNNFAST_UNDER_SANITIZER=asan  # tests that measure RSS skip (ASan's quarantine keeps freed memory)
# The sanitized kernels are 2-4x slower; keep the thread count fixed so runs are comparable.
export CNNFAST_NUM_THREADS=${CNNFAST_NUM_THREADS:-2}
"$work/venv/bin/python" -c "import cnnfast; cnnfast.show_config()"
if [ "$#" -eq 0 ]; then set -- tests -x; fi
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
