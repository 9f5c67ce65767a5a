"""Runtime configuration: which SIMD path the kernels use and how many threads they run on.

The ISA is detected once at import (CPUID + XGETBV). ``CNNFAST_ISA=generic|avx2|avx512`` forces a
lower path for the whole process; :func:`use_isa` does the same for a block of code, which is how
the test suite exercises every path on one machine.

The thread count defaults to ``CNNFAST_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the number of
CPUs this process may run on (its affinity mask, capped by a cgroup CPU quota). Kernels also
honour a lower limit set through the OpenMP runtime (threadpoolctl).
"""
from __future__ import annotations

import contextlib
import os
import platform
import warnings

from . import _kernels

__all__ = ["available_isas", "get_isa", "set_isa", "use_isa", "get_num_threads",
           "set_num_threads", "default_num_threads", "show_config"]

ISA_NAMES = tuple(_kernels.isa_names())  # lowest first: ("generic", "avx2", "avx512")


def available_isas() -> list[str]:
    """The ISA paths this CPU can run, lowest first."""
    best = ISA_NAMES.index(_kernels.cpu_best_isa())
    return list(ISA_NAMES[: best + 1])


def get_isa() -> str:
    """The ISA path the kernels use now."""
    return _kernels.get_isa()


def set_isa(name: str) -> None:
    """Force the kernels onto the ISA path ``name`` (one of :func:`available_isas`)."""
    if name not in ISA_NAMES:
        raise ValueError(f"set_isa: unknown ISA {name!r}; expected one of {list(ISA_NAMES)}")
    if name not in available_isas():
        raise ValueError(f"set_isa: this CPU cannot run {name!r}; it supports {available_isas()}")
    _kernels.set_isa(ISA_NAMES.index(name))


@contextlib.contextmanager
def use_isa(name: str):
    """Run a block of code on the ISA path ``name``, then restore the previous one."""
    previous = get_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(previous)


def get_num_threads() -> int:
    """Threads the kernels run on."""
    return _kernels.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads every cnnfast kernel runs on (n >= 1)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected an integer >= 1, got {n!r}")
    _kernels.set_num_threads(n)


def _cgroup_cpu_limit() -> int | None:
    """CPUs allowed by a cgroup v2 (cpu.max) or v1 (cfs quota) limit, if any."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return max(1, int(int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return max(1, quota // period)
    except (OSError, ValueError):
        pass
    return None


def _env_threads(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        n = int(value.split(",")[0])
    except ValueError:
        warnings.warn(f"cnnfast: ignoring {name}={value!r}: not an integer", RuntimeWarning, stacklevel=3)
        return None
    return n if n >= 1 else None


def default_num_threads() -> int:
    """The default thread count (see the module docstring)."""
    for name in ("CNNFAST_NUM_THREADS", "OMP_NUM_THREADS"):
        n = _env_threads(name)
        if n is not None:
            return n
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(cpus, limit) if limit else cpus)


# Memory-bound kernels (element-wise, pooling, optimisers, batch-1 dense layers) go parallel from
# this many bytes when the OpenMP workers spin between parallel regions (GOMP_SPINCOUNT > 0 or
# OMP_WAIT_POLICY=ACTIVE): a spinning worker starts in about a microsecond, a sleeping one
# (cnnfast's default, PASSIVE) in 10-100 us on a virtual machine, hence the C default of 16 MiB.
SPINNING_PARALLEL_MIN_BYTES = 256 * 1024


def workers_spin() -> bool:
    """Whether the OpenMP workers were told to spin between parallel regions (see README)."""
    policy = os.environ.get("OMP_WAIT_POLICY", "").strip().upper()
    if policy == "ACTIVE":
        return True
    if policy == "PASSIVE":
        return False
    spin = os.environ.get("GOMP_SPINCOUNT", "").strip().lower()
    return spin not in ("", "0") and not spin.startswith("-")


def _init_from_environment() -> None:
    set_num_threads(default_num_threads())
    if workers_spin():
        _kernels.set_parallel_min_bytes(SPINNING_PARALLEL_MIN_BYTES)
    requested = os.environ.get("CNNFAST_ISA", "").strip().lower()
    if not requested:
        return
    if requested not in ISA_NAMES:
        warnings.warn(f"cnnfast: ignoring CNNFAST_ISA={requested!r}; expected one of {list(ISA_NAMES)}",
                      RuntimeWarning, stacklevel=3)
    elif requested not in available_isas():
        warnings.warn(f"cnnfast: CNNFAST_ISA={requested!r} is not supported by this CPU; "
                      f"using {get_isa()!r}", RuntimeWarning, stacklevel=3)
    else:
        set_isa(requested)


def _describe_caches(sizes: dict) -> str:
    def size(n: int) -> str:
        return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"
    return f"L1d {size(sizes['l1d'])}, L2 {size(sizes['l2'])} per core; L3 {size(sizes['l3'])}"


def config() -> dict:
    """The configuration :func:`show_config` prints, as a dict."""
    from . import __version__
    omp = _kernels.openmp_version()
    return {
        "version": __version__,
        "isa": get_isa(),
        "isa_available": available_isas(),
        "isa_forced_by_env": os.environ.get("CNNFAST_ISA") or None,
        "num_threads": get_num_threads(),
        "caches": _describe_caches(_kernels.cache_sizes()),
        "gemm_blocking": " ".join(f"{k}={v}" for k, v in _kernels.sgemm_blocking().items()),
        "compiler": _kernels.compiler_info(),
        "openmp": f"OpenMP {omp} (GNU libgomp)" if omp else "none (single-threaded build)",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or
                           f"default (GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')})",
        "parallel_min_bytes": _kernels.get_parallel_min_bytes(),
        "python": platform.python_version(),
        "numpy": __import__("numpy").__version__,
        "machine": platform.machine(),
    }


def show_config() -> None:
    """Print cnnfast's version, the SIMD path in use, threads, compiler and OpenMP runtime."""
    for key, value in config().items():
        print(f"{key:>18}: {value}")
