# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""cnnfast._kernels — thin typed wrappers around the C kernels (csrc/).

Design: each wrapper takes already-validated, C-contiguous float32 buffers (cnnfast.ops checks
dtype, shape, contiguity and aliasing first), releases the GIL, calls one C function and turns its
status into an exception. No logic lives here. One .pxi per kernel family is included below, so
every family keeps its declarations and wrappers in one file.
"""
from libc.stdint cimport int64_t, uint8_t, int32_t, uint32_t, uint64_t

cdef extern from "cnnfast.h" nogil:
    ctypedef int cf_status
    int CF_OK
    int CF_ERR_ARGUMENT
    int CF_ERR_NOMEM
    int CF_ERR_UNSUPPORTED


cdef int check_status(cf_status status, str op) except -1:
    """Raise the Python exception matching a C status (called with the GIL held)."""
    if status == CF_OK:
        return 0
    if status == CF_ERR_NOMEM:
        raise MemoryError(f"{op}: could not allocate kernel workspace")
    if status == CF_ERR_UNSUPPORTED:
        raise RuntimeError(f"{op}: not supported on this CPU")
    raise ValueError(f"{op}: invalid argument rejected by the kernel (status {status})")


include "_runtime.pxi"
include "_gemm.pxi"
include "_conv.pxi"
include "_pool.pxi"
include "_eltwise.pxi"
include "_optim.pxi"
include "_resize.pxi"
include "_embedding.pxi"
include "_warp.pxi"
