/*
 * cf_pool_internal.h — the per-ISA pooling kernel table. cf_pool2d.c validates arguments and
 * calls through the table of the active ISA; cf_pool2d.inc defines one table per ISA.
 */
#ifndef CF_POOL_INTERNAL_H
#define CF_POOL_INTERNAL_H

#include "cnnfast/pool.h"

typedef struct {
    void (*maxpool_fwd)(const cf_pool2d_shape *s, const float *x, float *y, void *argmax, int index_bytes);
    void (*maxpool_bwd)(const cf_pool2d_shape *s, const float *dy, const void *argmax, int index_bytes, float *dx);
    cf_status (*avgpool_fwd)(const cf_pool2d_shape *s, const float *x, float *y);
    cf_status (*avgpool_bwd)(const cf_pool2d_shape *s, const float *dy, float *dx);
    cf_status (*global_avg_fwd)(const float *x, float *y, int64_t n, int64_t hw, int64_t c);
    void (*global_avg_bwd)(const float *dy, float *dx, int64_t n, int64_t hw, int64_t c);
    void (*global_max_fwd)(const float *x, float *y, int32_t *argmax, int64_t n, int64_t hw, int64_t c);
    void (*global_max_bwd)(const float *dy, const int32_t *argmax, float *dx, int64_t n, int64_t hw, int64_t c);
    /* Output rows [row_begin, row_end) of max pooling (argmax may be NULL), in the calling
     * thread: for kernels that pool inside their own parallel region (conv2d + max-pool). */
    void (*maxpool_fwd_rows)(const cf_pool2d_shape *s, const float *x, float *y, void *argmax, int index_bytes,
                             int64_t row_begin, int64_t row_end);
} cf_pool_kernels;

/* The table of the active ISA. */
const cf_pool_kernels *cf_pool_kernels_active(void);

/* 1 when cf_maxpool2d_fwd would accept this geometry and index width, else 0. */
int cf_maxpool2d_fwd_args_ok(const cf_pool2d_shape *s, int index_bytes);

extern const cf_pool_kernels cf_pool_kernels__generic;
extern const cf_pool_kernels cf_pool_kernels__avx2;
extern const cf_pool_kernels cf_pool_kernels__avx512;
#if !defined(__x86_64__)  /* portable build: no AVX files; cf_get_isa() is always generic */
#define cf_pool_kernels__avx2 cf_pool_kernels__generic
#define cf_pool_kernels__avx512 cf_pool_kernels__generic
#endif

#endif /* CF_POOL_INTERNAL_H */
