"""The process group: MPI through mpi4py, or a single process without MPI.

Design: every collective cnnfast needs goes through one small :class:`Communicator` interface
(in-place sum all-reduce of a NumPy buffer, broadcast of a buffer, all-gather and broadcast of small
Python objects, barrier, abort). :class:`MPICommunicator` maps it onto ``MPI.COMM_WORLD`` (or a
communicator the caller passes); :class:`SelfCommunicator` is the one-process group used when
cnnfast runs without ``mpirun`` and mpi4py is not installed, so the same script runs on a laptop.

Only the thread that called :func:`init` talks to MPI (the kernels' OpenMP threads never do), so
MPI is initialised with ``MPI_THREAD_FUNNELED`` when cnnfast is the first to import mpi4py.

Time spent inside collectives is accumulated per category (``"gradients"`` for the per-step
gradient all-reduce, ``"other"`` for metrics, broadcasts and checks); :func:`comm_stats` reads it.
It includes the time a rank waits for slower ranks, which is what a training step pays.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

__all__ = ["Communicator", "SelfCommunicator", "MPICommunicator", "init", "is_initialized",
           "communicator", "rank", "size", "local_rank", "local_size", "is_root", "barrier",
           "allreduce", "broadcast", "comm_stats", "reset_comm_stats", "abort"]

#: environment variables set by MPI launchers (Open MPI, MPICH/Hydra, Intel MPI, Slurm's PMI)
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


class _Stats:
    __slots__ = ("calls", "bytes", "seconds")

    def __init__(self):
        self.calls, self.bytes, self.seconds = 0, 0, 0.0


_STATS = {"gradients": _Stats(), "other": _Stats()}


class _timed:
    """Adds a collective's wall time and payload to ``_STATS[category]``."""

    __slots__ = ("stats", "nbytes", "t0")

    def __init__(self, category, nbytes):
        self.stats, self.nbytes = _STATS[category], nbytes

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        s = self.stats
        s.seconds += time.perf_counter() - self.t0
        s.calls += 1
        s.bytes += self.nbytes


def comm_stats() -> dict:
    """Time (seconds), calls and bytes spent in collectives since the last reset, per category:
    ``{"gradients": {...}, "other": {...}}``."""
    return {k: {"calls": s.calls, "bytes": s.bytes, "seconds": s.seconds} for k, s in _STATS.items()}


def reset_comm_stats() -> None:
    """Zero the counters read by :func:`comm_stats`."""
    for s in _STATS.values():
        s.calls, s.bytes, s.seconds = 0, 0, 0.0


def _contiguous(buf, what):
    if not isinstance(buf, np.ndarray) or not buf.flags.c_contiguous or not buf.flags.writeable:
        raise ValueError(f"cnnfast.distributed: {what} needs a writeable C-contiguous numpy array")
    return buf


class Communicator:
    """The collectives data-parallel training needs. ``rank``/``size`` describe the whole group,
    ``local_rank``/``local_size`` the processes on this machine."""

    backend = "base"
    rank = 0
    size = 1
    local_rank = 0
    local_size = 1
    #: processes on this machine whose CPU affinity overlaps this one's (1 when the launcher bound
    #: each process to its own cores, ``local_size`` when none is bound)
    cpu_sharing = 1

    def allreduce_sum_(self, buf: np.ndarray, category: str = "other") -> None:
        """Replace ``buf`` by the element-wise sum of every rank's ``buf`` (same shape, dtype)."""
        raise NotImplementedError

    def bcast_(self, buf: np.ndarray, root: int = 0) -> None:
        """Overwrite ``buf`` on every rank with ``root``'s ``buf``."""
        raise NotImplementedError

    def allgather_obj(self, obj) -> list:
        """Every rank's ``obj`` (small, picklable), in rank order."""
        raise NotImplementedError

    def bcast_obj(self, obj, root: int = 0):
        """``root``'s ``obj`` on every rank."""
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, code: int = 1) -> None:
        """End every process of the group now (does not return)."""
        raise NotImplementedError

    def __repr__(self):
        return (f"<{type(self).__name__} rank={self.rank} size={self.size} "
                f"local_rank={self.local_rank} local_size={self.local_size}>")


class SelfCommunicator(Communicator):
    """A group of one process: collectives are no-ops (used without MPI)."""

    backend = "self"

    def allreduce_sum_(self, buf, category="other"):
        _contiguous(buf, "allreduce")

    def bcast_(self, buf, root=0):
        _contiguous(buf, "broadcast")
        _check_root(root, 1)

    def allgather_obj(self, obj):
        return [obj]

    def bcast_obj(self, obj, root=0):
        _check_root(root, 1)
        return obj

    def barrier(self):
        pass

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class MPICommunicator(Communicator):
    """Collectives on an mpi4py communicator (default ``MPI.COMM_WORLD``)."""

    backend = "mpi"

    def __init__(self, comm=None):
        from mpi4py import MPI
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        try:
            self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
            mine = _affinity()
            every = local.allgather(mine) if self.local_size > 1 else [mine]
            self.cpu_sharing = max(1, sum(1 for cpus in every if cpus & mine))
        finally:
            local.Free()

    def allreduce_sum_(self, buf, category="other"):
        _contiguous(buf, "allreduce")
        if self.size == 1:
            return
        with _timed(category, buf.nbytes):
            self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)

    def bcast_(self, buf, root=0):
        _contiguous(buf, "broadcast")
        _check_root(root, self.size)
        if self.size == 1:
            return
        with _timed("other", buf.nbytes):
            self.comm.Bcast(buf, root=root)

    def allgather_obj(self, obj):
        if self.size == 1:
            return [obj]
        with _timed("other", 0):
            return self.comm.allgather(obj)

    def bcast_obj(self, obj, root=0):
        _check_root(root, self.size)
        if self.size == 1:
            return obj
        with _timed("other", 0):
            return self.comm.bcast(obj, root=root)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


def _affinity() -> frozenset:
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset(range(os.cpu_count() or 1))


def _check_root(root, size):
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < size:
        raise ValueError(f"cnnfast.distributed: root_rank must be an integer in [0, {size}), got {root!r}")


# -- the process-wide group ----------------------------------------------------------------------
_STATE = {"comm": None, "abort_on_error": True, "previous_excepthook": None}


def _launched_by_mpi() -> int:
    """The world size announced by an MPI launcher in the environment (1 when none)."""
    for var in _LAUNCHER_SIZE_VARS:
        try:
            return max(1, int(os.environ[var]))
        except (KeyError, ValueError):
            continue
    return 1


def _import_mpi():
    if "mpi4py.MPI" not in sys.modules:
        import mpi4py
        mpi4py.rc.thread_level = "funneled"  # only the calling thread uses MPI
    from mpi4py import MPI
    return MPI


def init(backend: str = "auto", comm=None, threads="auto", abort_on_error: bool = True) -> Communicator:
    """Join the process group. Call once at the start of a script (later calls return the group).

    Args:
        backend: ``"auto"`` (MPI through mpi4py when it is installed, else a single process; a
            script started by ``mpirun -n K`` with K > 1 but without mpi4py raises ImportError),
            ``"mpi"`` (require mpi4py) or ``"self"`` (one process, no MPI).
        comm: an mpi4py communicator to train on instead of ``MPI.COMM_WORLD``.
        threads: kernel threads per process. ``"auto"`` leaves cnnfast's default (the CPUs this
            process may run on) unless other processes of the group may run on the same CPUs (a
            launcher that did not bind them), then divides those CPUs between them; an explicit
            ``CNNFAST_NUM_THREADS`` or ``OMP_NUM_THREADS`` always wins. An integer sets the count;
            ``None`` leaves it alone. Binding each process to its own cores
            (``mpirun --map-by slot:PE=<threads> --bind-to core``) is the faster setup.
        abort_on_error: with more than one process, an exception that escapes ``fit`` or the
            script on any rank prints that rank's traceback and ends every rank
            (``MPI_Abort``) instead of leaving the others waiting forever in a collective.

    Returns:
        The :class:`Communicator` (``.rank``, ``.size``, ``.local_rank``, ``.local_size``).
    """
    if _STATE["comm"] is not None:
        return _STATE["comm"]
    if backend not in ("auto", "mpi", "self"):
        raise ValueError(f"cnnfast.distributed.init: backend must be 'auto', 'mpi' or 'self', got {backend!r}")
    if comm is not None and backend == "self":
        raise ValueError("cnnfast.distributed.init: comm= needs the 'mpi' backend")
    if backend == "self":
        group = SelfCommunicator()
    else:
        try:
            _import_mpi()
        except ImportError as exc:
            launched = _launched_by_mpi()
            if backend == "mpi" or launched > 1:
                why = (f"this process was started by an MPI launcher with {launched} processes, but "
                       if launched > 1 else "")
                raise ImportError(f"cnnfast.distributed: {why}mpi4py is not installed; install it with "
                                  "`pip install cnnfast[mpi]` (or `pip install mpi4py`) and an MPI "
                                  "library (e.g. `apt-get install openmpi-bin libopenmpi-dev`)") from exc
            group = SelfCommunicator()
        else:
            group = MPICommunicator(comm)
    _STATE["comm"] = group
    _STATE["abort_on_error"] = bool(abort_on_error)
    if abort_on_error and group.size > 1:
        _install_excepthook()
    _set_threads(group, threads)
    return group


def _set_threads(group, threads):
    from .. import runtime
    if threads is None:
        return
    if threads == "auto":
        if group.cpu_sharing <= 1 or os.environ.get("CNNFAST_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"):
            return
        runtime.set_num_threads(max(1, runtime.default_num_threads() // group.cpu_sharing))
    else:
        runtime.set_num_threads(threads)


def is_initialized() -> bool:
    return _STATE["comm"] is not None


def communicator() -> Communicator:
    """The group (joined with default arguments on first use)."""
    return _STATE["comm"] or init()


def rank() -> int:
    """This process's index in the group, 0 .. size() - 1."""
    return communicator().rank


def size() -> int:
    """Number of processes in the group."""
    return communicator().size


def local_rank() -> int:
    """This process's index among the processes on this machine."""
    return communicator().local_rank


def local_size() -> int:
    """Number of processes of the group on this machine."""
    return communicator().local_size


def is_root() -> bool:
    """True on rank 0, the process that prints and writes files."""
    return communicator().rank == 0


def barrier() -> None:
    """Wait until every rank gets here."""
    communicator().barrier()


def allreduce(value, op: str = "average") -> np.ndarray:
    """The element-wise ``"sum"`` or ``"average"`` of ``value`` over every rank (a new array;
    float64 for integers, else the input's floating dtype)."""
    if op not in ("sum", "average"):
        raise ValueError(f"cnnfast.distributed.allreduce: op must be 'sum' or 'average', got {op!r}")
    arr = np.array(value, copy=True)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"cnnfast.distributed.allreduce: value must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    arr = np.ascontiguousarray(arr)
    group = communicator()
    group.allreduce_sum_(arr.reshape(-1))
    if op == "average":
        arr /= group.size
    return arr


def broadcast(value, root_rank: int = 0) -> np.ndarray:
    """``root_rank``'s array (same shape and dtype on every rank) on every rank (a new array)."""
    arr = np.ascontiguousarray(np.array(value, copy=True))
    group = communicator()
    meta = group.allgather_obj((arr.shape, arr.dtype.str))
    if any(m != meta[0] for m in meta):
        raise ValueError("cnnfast.distributed.broadcast: every rank must pass an array of the same shape "
                         f"and dtype, got {[(s, np.dtype(d).name) for s, d in meta]} by rank")
    group.bcast_(arr.reshape(-1), root_rank)
    return arr


# -- errors --------------------------------------------------------------------------------------
def _report_and_abort(exc_type, exc, tb, where="") -> None:
    group = _STATE["comm"]
    if issubclass(exc_type, KeyboardInterrupt):  # mpirun forwards Ctrl-C to every rank: no tracebacks
        sys.stderr.write(f"\ncnnfast.distributed: rank {group.rank} interrupted{where}; ending all "
                         f"{group.size} processes.\n")
        sys.stderr.flush()
        group.abort(130)
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(f"\ncnnfast.distributed: rank {group.rank} of {group.size} failed{where}; ending all "
                     f"{group.size} processes (MPI_Abort).\n{text}")
    sys.stderr.flush()
    group.abort(1)


def _excepthook(exc_type, exc, tb):
    group = _STATE["comm"]
    if group is not None and group.size > 1 and not issubclass(exc_type, SystemExit):
        _report_and_abort(exc_type, exc, tb)
    (_STATE["previous_excepthook"] or sys.__excepthook__)(exc_type, exc, tb)


def _install_excepthook() -> None:
    if sys.excepthook is not _excepthook:
        _STATE["previous_excepthook"] = sys.excepthook
        sys.excepthook = _excepthook


def abort_on_error_enabled() -> bool:
    group = _STATE["comm"]
    return group is not None and group.size > 1 and _STATE["abort_on_error"]


def abort(exc: BaseException | None = None, where: str = "") -> None:
    """End every rank now (exit status 1); with ``exc``, print this rank's traceback first."""
    group = communicator()
    if exc is not None:
        _report_and_abort(type(exc), exc, exc.__traceback__, where)
    group.abort(1)


def _reset_for_tests() -> None:
    """Forget the group (tests only: MPI itself cannot be re-initialised)."""
    if sys.excepthook is _excepthook:
        sys.excepthook = _STATE["previous_excepthook"] or sys.__excepthook__
    _STATE.update(comm=None, abort_on_error=True, previous_excepthook=None)
