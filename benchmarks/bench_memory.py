"""Peak memory (RSS) of a training run: cnnfast vs PyTorch vs Keras vs NumPy, one process each.

    python -m pytest benchmarks/bench_memory.py --benchmark-only

Each round runs ``_models.measure_memory`` in a fresh interpreter: import the framework, build
and compile the MNIST tutorial model, train 50 steps of batch 64 on a 3,200-sample array, and
read the process's ``ru_maxrss``. The timed figure is that whole run (start-up included); the
memory figures are in ``extra_info``: ``peak_rss_mb`` (the target: cnnfast <= 1/3 of PyTorch's),
``import_rss_mb`` (resident after the import) and ``baseline_mb`` (Python + NumPy alone).
Frameworks that are not installed are skipped.
"""
from __future__ import annotations

import json
import statistics
import subprocess

import pytest

import _models

STEPS, BATCH, THREADS, ROUNDS = 50, 64, 1, 3


@pytest.mark.parametrize("framework", list(_models.FRAMEWORKS))
def test_training_peak_rss(benchmark, framework):
    ok, missing = _models.available_frameworks([framework])
    if not ok:
        pytest.skip(missing[framework])
    cfg = {"kind": "memory", "framework": framework, "model": "mnist", "threads": THREADS,
           "batch": BATCH, "steps": STEPS}
    results = []

    def run():
        out = subprocess.run(_models.worker_command(cfg), env=_models.worker_env(THREADS),
                             capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.group = f"mnist training run, {STEPS} steps of batch {BATCH}: peak RSS in extra_info"
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    if "unavailable" in results[0]:
        pytest.skip(results[0]["unavailable"])
    benchmark.extra_info.update(
        framework=framework,
        peak_rss_mb=round(statistics.median(r["peak_rss_mb"] for r in results), 1),
        import_rss_mb=round(statistics.median(r["import_rss_mb"] for r in results), 1),
        baseline_mb=round(statistics.median(r["baseline_mb"] for r in results), 1))
