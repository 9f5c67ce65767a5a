/*
 * cf_embedding.c — embedding gather and scatter-add (see cnnfast/embedding.h for the contract).
 *
 * Both passes are memory-bound copies/additions of whole rows, which the compiler vectorises at
 * the baseline ISA; wider ISAs were not worth their wheel bytes here. The gather splits output
 * rows over threads. The scatter-add cannot split positions (two positions may name one table
 * row), so it splits the table's rows: each thread zeroes its own contiguous row range (unless
 * accumulating), then scans every index and adds the dy rows whose id falls in its range, in
 * increasing position order. No two threads write one row and every sum has one order, so the
 * result does not depend on the thread count. Measured on a 2-core Zen 3: splitting the columns
 * instead (each thread a slice of every row) was slower on 2 threads than on 1 (the two cores
 * then write the same cache lines of the zeroed table); the row split is 10-30 % faster on 2.
 * Below the runtime's parallel threshold one thread does everything (a fork/join costs more).
 */
#include <string.h>
#include "cnnfast/embedding.h"
#include "runtime/cf_internal.h"

#ifdef CNNFAST_HAVE_OPENMP
#define PARALLEL_REGION(nt) _Pragma("omp parallel num_threads(nt) if(nt > 1)")
#else
#define PARALLEL_REGION(nt)
#endif

static int threads_for_bytes(int64_t items, int64_t bytes) {
    return bytes < cf_get_parallel_min_bytes() ? 1 : cf_threads_for(items);
}

/* The position of the first index outside [0, vocab), or -1. */
#define DEFINE_FIRST_BAD(SUFFIX, IDX_T)                                                  \
    static int64_t first_bad_##SUFFIX(const IDX_T *idx, int64_t n, int64_t vocab) {     \
        for (int64_t i = 0; i < n; i++)                                                 \
            if (idx[i] < 0 || (int64_t)idx[i] >= vocab) return i;                       \
        return -1;                                                                      \
    }

#define DEFINE_FWD(SUFFIX, IDX_T)                                                                  \
    cf_status cf_embedding_fwd_##SUFFIX(const IDX_T *idx, int64_t n, const float *table,          \
                                        int64_t vocab, int64_t dim, float *out, int64_t *bad) {   \
        *bad = -1;                                                                                \
        if (n < 0 || vocab < 0 || dim < 0) return CF_ERR_ARGUMENT;                                \
        if (n == 0) return CF_OK;                                                                 \
        if (idx == NULL) return CF_ERR_ARGUMENT;                                                  \
        *bad = first_bad_##SUFFIX(idx, n, vocab);                                                 \
        if (*bad >= 0) return CF_ERR_ARGUMENT;                                                    \
        if (dim == 0) return CF_OK;                                                               \
        if (table == NULL || out == NULL) return CF_ERR_ARGUMENT;                                 \
        const size_t row_bytes = (size_t)dim * sizeof(float);                                     \
        const int nt = threads_for_bytes(n, (int64_t)(2 * row_bytes) * n);                        \
        PARALLEL_REGION(nt)                                                                       \
        {                                                                                         \
            const cf_range rg = cf_split(n, cf_thread_id(), cf_thread_count());                   \
            for (int64_t i = rg.begin; i < rg.end; i++)                                           \
                memcpy(out + i * dim, table + (int64_t)idx[i] * dim, row_bytes);                  \
        }                                                                                         \
        return CF_OK;                                                                             \
    }

#define DEFINE_BWD(SUFFIX, IDX_T)                                                                  \
    cf_status cf_embedding_bwd_##SUFFIX(const IDX_T *idx, int64_t n, const float *dy,             \
                                        int64_t vocab, int64_t dim, float *dtable, int accumulate, \
                                        int64_t *bad) {                                           \
        *bad = -1;                                                                                \
        if (n < 0 || vocab < 0 || dim < 0) return CF_ERR_ARGUMENT;                                \
        if (n > 0) {                                                                              \
            if (idx == NULL) return CF_ERR_ARGUMENT;                                              \
            *bad = first_bad_##SUFFIX(idx, n, vocab);                                             \
            if (*bad >= 0) return CF_ERR_ARGUMENT;                                                \
        }                                                                                         \
        if (vocab * dim == 0) return CF_OK;                                                       \
        if (dtable == NULL || (n > 0 && dy == NULL)) return CF_ERR_ARGUMENT;                      \
        const int64_t bytes = (int64_t)sizeof(float) * dim * (2 * n + (accumulate ? 0 : vocab));   \
        const int nt = threads_for_bytes(vocab, bytes);                                            \
        PARALLEL_REGION(nt)                                                                        \
        {                                                                                          \
            const cf_range rows = cf_split(vocab, cf_thread_id(), cf_thread_count());              \
            const IDX_T r0 = (IDX_T)rows.begin, r1 = (IDX_T)rows.end;                              \
            if (!accumulate)                                                                       \
                memset(dtable + rows.begin * dim, 0, (size_t)((rows.end - rows.begin) * dim) * sizeof(float));\
            for (int64_t i = 0; i < n; i++) {                                                      \
                const IDX_T v = idx[i];                                                            \
                if (v < r0 || v >= r1) continue;                                                   \
                float *restrict dst = dtable + (int64_t)v * dim;                                   \
                const float *restrict src = dy + i * dim;                                          \
                for (int64_t k = 0; k < dim; k++) dst[k] += src[k];                                \
            }                                                                                      \
        }                                                                                          \
        return CF_OK;                                                                             \
    }

DEFINE_FIRST_BAD(i32, int32_t)
DEFINE_FIRST_BAD(i64, int64_t)
DEFINE_FWD(i32, int32_t)
DEFINE_FWD(i64, int64_t)
DEFINE_BWD(i32, int32_t)
DEFINE_BWD(i64, int64_t)
