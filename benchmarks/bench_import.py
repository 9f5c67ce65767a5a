"""Import time: ``import cnnfast`` vs numpy, torch and keras, each in a fresh interpreter.

    python -m pytest benchmarks/bench_import.py --benchmark-only

Each round starts a new Python process (nothing cached in memory but the OS's file cache), so the
timed figure includes interpreter start-up; the group's ``python -c pass`` row is that start-up
alone, and ``extra_info["import_s"]`` is the median time of the import itself, measured inside the
child with ``time.perf_counter()`` around the ``import`` statement (the figure compare.py reports;
target: ``import cnnfast`` <= 0.15 s). ``cnnfast + layers, models`` is what a tutorial script
imports (it loads numpy too). Modules that are not installed are skipped.
"""
from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys

import pytest

CASES = {
    "python -c pass": ("", None),
    "cnnfast": ("cnnfast", "cnnfast"),
    "cnnfast + layers, models": ("cnnfast; from cnnfast import layers, models", "cnnfast"),
    "numpy": ("numpy", "numpy"),
    "torch": ("torch", "torch"),
    "keras (torch backend)": ("keras", "keras"),
}
ROUNDS = 7


@pytest.mark.parametrize("case", list(CASES))
def test_import(benchmark, case):
    stmt, module = CASES[case]
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    code = ("import time\nt0 = time.perf_counter()\n" + (f"import {stmt}\n" if stmt else "")
            + "print(time.perf_counter() - t0)")
    env = dict(os.environ, KERAS_BACKEND="torch")
    inner = []

    def run():
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True)
        inner.append(float(out.stdout.split()[-1]))

    benchmark.group = "import (fresh interpreter)"
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(import_s=round(statistics.median(inner[1:] or inner), 4), module=case)
