# Embedding kernels (csrc/embedding): row gather and its scatter-add gradient, int32 or int64
# indices. Flat C-contiguous buffers, validated and sized by cnnfast.ops.embedding*. Each wrapper
# returns the position of the first index outside [0, vocab) (-1 when all are valid), so the
# caller can name the offending index in its error.

cdef extern from "cnnfast/embedding.h" nogil:
    cf_status cf_embedding_fwd_i32(const int32_t *idx, int64_t n, const float *table, int64_t vocab,
                                   int64_t dim, float *out, int64_t *bad)
    cf_status cf_embedding_fwd_i64(const int64_t *idx, int64_t n, const float *table, int64_t vocab,
                                   int64_t dim, float *out, int64_t *bad)
    cf_status cf_embedding_bwd_i32(const int32_t *idx, int64_t n, const float *dy, int64_t vocab,
                                   int64_t dim, float *dtable, int accumulate, int64_t *bad)
    cf_status cf_embedding_bwd_i64(const int64_t *idx, int64_t n, const float *dy, int64_t vocab,
                                   int64_t dim, float *dtable, int accumulate, int64_t *bad)


def embedding_fwd_i32(const int32_t[::1] idx, const float[::1] table, int64_t vocab, int64_t dim,
                      float[::1] out):
    """out[i] := table[idx[i]]; returns the first out-of-range position or -1"""
    cdef int64_t bad = -1
    cdef cf_status st
    cdef const int32_t *ip = &idx[0] if idx.shape[0] else NULL
    cdef const float *tp = _cf32_or_null(table)
    cdef float *op = _f32_or_null(out)
    with nogil:
        st = cf_embedding_fwd_i32(ip, idx.shape[0], tp, vocab, dim, op, &bad)
    if bad < 0:
        check_status(st, "embedding")
    return bad


def embedding_fwd_i64(const int64_t[::1] idx, const float[::1] table, int64_t vocab, int64_t dim,
                      float[::1] out):
    """out[i] := table[idx[i]]; returns the first out-of-range position or -1"""
    cdef int64_t bad = -1
    cdef cf_status st
    cdef const int64_t *ip = &idx[0] if idx.shape[0] else NULL
    cdef const float *tp = _cf32_or_null(table)
    cdef float *op = _f32_or_null(out)
    with nogil:
        st = cf_embedding_fwd_i64(ip, idx.shape[0], tp, vocab, dim, op, &bad)
    if bad < 0:
        check_status(st, "embedding")
    return bad


def embedding_bwd_i32(const int32_t[::1] idx, const float[::1] dy, int64_t vocab, int64_t dim,
                      float[::1] dtable, bint accumulate):
    """dtable (+)= scatter-add of dy rows into rows idx; returns the first bad position or -1"""
    cdef int64_t bad = -1
    cdef cf_status st
    cdef const int32_t *ip = &idx[0] if idx.shape[0] else NULL
    cdef const float *dp = _cf32_or_null(dy)
    cdef float *gp = _f32_or_null(dtable)
    with nogil:
        st = cf_embedding_bwd_i32(ip, idx.shape[0], dp, vocab, dim, gp, accumulate, &bad)
    if bad < 0:
        check_status(st, "embedding_backward")
    return bad


def embedding_bwd_i64(const int64_t[::1] idx, const float[::1] dy, int64_t vocab, int64_t dim,
                      float[::1] dtable, bint accumulate):
    """dtable (+)= scatter-add of dy rows into rows idx; returns the first bad position or -1"""
    cdef int64_t bad = -1
    cdef cf_status st
    cdef const int64_t *ip = &idx[0] if idx.shape[0] else NULL
    cdef const float *dp = _cf32_or_null(dy)
    cdef float *gp = _f32_or_null(dtable)
    with nogil:
        st = cf_embedding_bwd_i64(ip, idx.shape[0], dp, vocab, dim, gp, accumulate, &bad)
    if bad < 0:
        check_status(st, "embedding_backward")
    return bad
