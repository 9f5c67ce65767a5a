"""Helpers shared by the hardening tests: run code in a fresh interpreter (so a segfault or a hang
fails one test instead of killing the suite) and read this process's resident memory."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_python(code: str, timeout: float = 120.0, env: dict | None = None, threads: int | None = None):
    """Run ``code`` in a new interpreter; returns the CompletedProcess (stdout/stderr as text).

    A crash shows up as a negative return code (the signal), a hang as ``subprocess.TimeoutExpired``
    turned into a failing result with returncode None.
    """
    full_env = dict(os.environ)
    full_env.pop("PYTHONSTARTUP", None)
    if threads is not None:
        full_env["CNNFAST_NUM_THREADS"] = str(threads)
    if env:
        full_env.update(env)
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                              text=True, timeout=timeout, env=full_env, cwd=str(REPO_ROOT / "tests"))
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return subprocess.CompletedProcess(exc.cmd, None, out, err + f"\n[timed out after {timeout} s]")


def describe(proc) -> str:
    """A failure message for a CompletedProcess: return code (or signal) and the output tails."""
    rc = proc.returncode
    what = "timed out" if rc is None else (f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}")
    return f"{what}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc; no third-party dependency)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
