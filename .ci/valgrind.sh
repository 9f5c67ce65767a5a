#!/usr/bin/env bash
# valgrind memcheck over a small, representative subset of the tests: every public op once (valid
# call, zero sizes), the reduction kernels on every ISA path valgrind can run and on 1 and 2 threads,
# and a short seeded training run. Any invalid read/write, use of uninitialised memory in a branch,
# or bad free with a cnnfast frame in its stack fails the run (exit code 99).
#
#   bash .ci/valgrind.sh [pytest node ids...]
#
# * Builds cnnfast unstripped with debug info (RelWithDebInfo) into a venv of its own, unless
#   CNNFAST_VALGRIND_PYTHON names an interpreter that already has cnnfast installed.
# * Leak checking is off: CPython keeps objects alive until exit by design; cnnfast's own leaks are
#   covered by tests/test_memory.py (RSS over 1,000 training steps).
# * valgrind emulates no AVX-512: cnnfast's CPU detection then picks AVX2 at most, so the generic and
#   AVX2 paths are checked here and the AVX-512 path by .ci/sanitize.sh.
# * PYTHONMALLOC=malloc makes every Python allocation visible to memcheck.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 2; }

python=${CNNFAST_VALGRIND_PYTHON:-}
if [ -z "$python" ]; then
  work=${CNNFAST_VALGRIND_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/cnnfast-valgrind.XXXXXX")}
  if [ ! -x "$work/venv/bin/python" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/python" -m pip install --quiet --upgrade pip
    "$work/venv/bin/python" -m pip install --quiet "scikit-build-core>=0.10" "cython>=3.0" "numpy>=2.0" \
        "pytest>=7" "hypothesis>=6" "scipy>=1.9"
  fi
  "$work/venv/bin/python" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps \
      -Cbuild-dir=build/valgrind -Cinstall.strip=false -Ccmake.build-type=RelWithDebInfo .
  python="$work/venv/bin/python"
fi

if [ "$#" -eq 0 ]; then
  set -- \
    "tests/test_hardening_inputs.py::test_valid_call_runs_and_is_repeatable" \
    "tests/test_hardening_inputs.py::test_zero_batch_gives_empty_results" \
    "tests/test_determinism.py::test_reduction_kernels_repeat_bit_for_bit" \
    "tests/test_determinism.py::test_dropout_masks_depend_only_on_seed_and_step" \
    "tests/test_determinism.py::test_training_twice_with_the_same_seed_is_bit_identical"
fi

export PYTHONMALLOC=malloc
export CNNFAST_UNDER_SANITIZER=valgrind
export CNNFAST_NUM_THREADS=2
xml_dir=$(mktemp -d "${TMPDIR:-/tmp}/cnnfast-memcheck.XXXXXX")
suppressions=()
[ -f "$repo/.ci/valgrind.supp" ] && suppressions=(--suppressions="$repo/.ci/valgrind.supp")
# CPython and NumPy themselves trigger memcheck reports (uninitialised bytes in the interpreter's
# start-up, pymalloc-style tricks); only errors with a cnnfast frame in their stack count. Reports
# go to XML and are filtered below.
set +e
valgrind --tool=memcheck --leak-check=no --show-leak-kinds=none --track-origins=yes --num-callers=40 \
    --xml=yes --xml-file="$xml_dir/memcheck.%p.xml" "${suppressions[@]}" \
    "$python" -m pytest -q -p no:cacheprovider -x "$@"
tests_status=$?
"$python" - "$xml_dir" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
ours, others = [], 0
for path in glob.glob(sys.argv[1] + "/memcheck.*.xml"):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:  # a process killed mid-write (the subprocess tests); nothing to read
        continue
    for error in root.iter("error"):
        if (error.findtext("kind") or "").startswith("Leak_"):  # leaks: tests/test_memory.py
            continue
        frames = [(f.findtext("obj") or "", f.findtext("fn") or "", f.findtext("file") or "", f.findtext("line") or "")
                  for f in error.iter("frame")]
        if any("cnnfast" in obj or fn.startswith("cf_") or "cnnfast" in fil for obj, fn, fil, _ in frames):
            ours.append((error.findtext("kind"), error.findtext("what") or error.findtext("xwhat/text"), frames))
        else:
            others += 1
print(f"memcheck: {len(ours)} error(s) in cnnfast code, {others} elsewhere (CPython/NumPy start-up, ignored)")
for kind, what, frames in ours:
    print(f"\n{kind}: {what}")
    for obj, fn, fil, line in frames[:15]:
        print(f"    {fn or '?'} ({fil}:{line})" if fil else f"    {fn or '?'} [{obj}]")
sys.exit(99 if ours else 0)
PY
memcheck_status=$?
rm -rf "$xml_dir"
exit $(( tests_status != 0 ? tests_status : memcheck_status ))
