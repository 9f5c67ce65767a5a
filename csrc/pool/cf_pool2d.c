/*
 * cf_pool2d.c — public pooling entry points: argument checks, then a call through the kernel
 * table of the active ISA (cf_pool2d.inc compiled three times). No arithmetic happens here.
 *
 * The checks are cheap and catch caller bugs that would otherwise read out of bounds: negative
 * sizes, zero pool size or stride, a window without any real cell, an index type that cannot
 * hold the window's cell numbers.
 */
#include "pool/cf_pool_internal.h"
#include <stddef.h>

static const cf_pool_kernels *pool_table(void) {
    switch (cf_get_isa()) {
        case CF_ISA_AVX512: return &cf_pool_kernels__avx512;
        case CF_ISA_AVX2: return &cf_pool_kernels__avx2;
        default: return &cf_pool_kernels__generic;
    }
}

const cf_pool_kernels *cf_pool_kernels_active(void) { return pool_table(); }

/* Every output window along one axis must contain at least one real cell. */
static int axis_ok(int64_t size, int64_t out, int64_t k, int64_t stride, int64_t pad) {
    if (size < 0 || out < 0 || k < 1 || stride < 1 || pad < 0 || pad >= k) return 0;
    if (out == 0) return 1;
    return (out - 1) * stride - pad < size && size > 0;
}

static int shape_ok(const cf_pool2d_shape *s) {
    return s != NULL && s->n >= 0 && s->c >= 0 && axis_ok(s->h, s->ho, s->ph, s->sh, s->pad_top) &&
           axis_ok(s->w, s->wo, s->pw, s->sw, s->pad_left);
}

static int empty_output(const cf_pool2d_shape *s) { return s->n == 0 || s->c == 0 || s->ho == 0 || s->wo == 0; }
static int empty_input(const cf_pool2d_shape *s) { return s->n == 0 || s->c == 0 || s->h == 0 || s->w == 0; }

static int index_ok(const cf_pool2d_shape *s, int index_bytes) {
    return index_bytes == 4 || (index_bytes == 1 && s->ph * s->pw <= 256);
}

int cf_maxpool2d_fwd_args_ok(const cf_pool2d_shape *s, int index_bytes) {
    return shape_ok(s) && index_ok(s, index_bytes);
}

cf_status cf_maxpool2d_fwd(const cf_pool2d_shape *s, const float *x, float *y, void *argmax, int index_bytes) {
    if (!shape_ok(s) || (argmax != NULL && !index_ok(s, index_bytes))) return CF_ERR_ARGUMENT;
    if (empty_output(s)) return CF_OK;
    if (x == NULL || y == NULL) return CF_ERR_ARGUMENT;
    pool_table()->maxpool_fwd(s, x, y, argmax, index_bytes);
    return CF_OK;
}

cf_status cf_maxpool2d_bwd(const cf_pool2d_shape *s, const float *dy, const void *argmax, int index_bytes, float *dx) {
    if (!shape_ok(s) || !index_ok(s, index_bytes)) return CF_ERR_ARGUMENT;
    if (empty_input(s)) return CF_OK;
    if (dx == NULL || (!empty_output(s) && (dy == NULL || argmax == NULL))) return CF_ERR_ARGUMENT;
    pool_table()->maxpool_bwd(s, dy, argmax, index_bytes, dx);
    return CF_OK;
}

cf_status cf_avgpool2d_fwd(const cf_pool2d_shape *s, const float *x, float *y) {
    if (!shape_ok(s)) return CF_ERR_ARGUMENT;
    if (empty_output(s)) return CF_OK;
    if (x == NULL || y == NULL) return CF_ERR_ARGUMENT;
    return pool_table()->avgpool_fwd(s, x, y);
}

cf_status cf_avgpool2d_bwd(const cf_pool2d_shape *s, const float *dy, float *dx) {
    if (!shape_ok(s)) return CF_ERR_ARGUMENT;
    if (empty_input(s)) return CF_OK;
    if (dx == NULL || (!empty_output(s) && dy == NULL)) return CF_ERR_ARGUMENT;
    return pool_table()->avgpool_bwd(s, dy, dx);
}

static int global_ok(int64_t n, int64_t hw, int64_t c) {
    return n >= 0 && hw >= 0 && c >= 0 && (hw > 0 || n == 0 || c == 0);
}

cf_status cf_global_avgpool2d_fwd(const float *x, float *y, int64_t n, int64_t hw, int64_t c) {
    if (!global_ok(n, hw, c)) return CF_ERR_ARGUMENT;
    if (n == 0 || c == 0) return CF_OK;
    if (x == NULL || y == NULL) return CF_ERR_ARGUMENT;
    return pool_table()->global_avg_fwd(x, y, n, hw, c);
}

cf_status cf_global_avgpool2d_bwd(const float *dy, float *dx, int64_t n, int64_t hw, int64_t c) {
    if (!global_ok(n, hw, c)) return CF_ERR_ARGUMENT;
    if (n == 0 || c == 0 || hw == 0) return CF_OK;
    if (dy == NULL || dx == NULL) return CF_ERR_ARGUMENT;
    pool_table()->global_avg_bwd(dy, dx, n, hw, c);
    return CF_OK;
}

cf_status cf_global_maxpool2d_fwd(const float *x, float *y, int32_t *argmax, int64_t n, int64_t hw, int64_t c) {
    if (!global_ok(n, hw, c) || hw > INT32_MAX) return CF_ERR_ARGUMENT;
    if (n == 0 || c == 0) return CF_OK;
    if (x == NULL || y == NULL) return CF_ERR_ARGUMENT;
    pool_table()->global_max_fwd(x, y, argmax, n, hw, c);
    return CF_OK;
}

cf_status cf_global_maxpool2d_bwd(const float *dy, const int32_t *argmax, float *dx, int64_t n, int64_t hw, int64_t c) {
    if (!global_ok(n, hw, c)) return CF_ERR_ARGUMENT;
    if (n == 0 || c == 0 || hw == 0) return CF_OK;
    if (dy == NULL || argmax == NULL || dx == NULL) return CF_ERR_ARGUMENT;
    pool_table()->global_max_bwd(dy, argmax, dx, n, hw, c);
    return CF_OK;
}
