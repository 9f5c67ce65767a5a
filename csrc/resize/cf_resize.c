/*
 * cf_resize.c — bilinear resize (half-pixel centres), forward and backward, NHWC.
 *
 * Per output row the two source rows and their weights are fixed; per output column the two
 * source columns and weights come from a table computed once per call. The inner loop runs over
 * the contiguous channel axis (four loads, three multiply-adds per element), which the compiler
 * vectorises; the kernel is memory-bound. Baseline ISA only: nothing here gains from AVX-512.
 */
#include <string.h>
#include "cnnfast/resize.h"
#include "runtime/cf_internal.h"

/* One thread below the runtime's parallel threshold (a fork/join costs more than it saves). */
static int threads_for_bytes(int64_t items, int64_t bytes) {
    return bytes < cf_get_parallel_min_bytes() ? 1 : cf_threads_for(items);
}

typedef struct {
    int64_t i0, i1;   /* source pixels */
    float w1;         /* weight of i1 (i0 gets 1 - w1) */
} tap;

/* Source taps of the `out` output positions of an axis of `in` input positions. */
static void axis_taps(int64_t in, int64_t out, tap *t) {
    const double scale = (double)in / (double)out;
    for (int64_t o = 0; o < out; o++) {
        double s = ((double)o + 0.5) * scale - 0.5;
        if (s < 0.0) s = 0.0;
        int64_t i0 = (int64_t)s;
        if (i0 > in - 1) i0 = in - 1;
        t[o].i0 = i0;
        t[o].i1 = i0 + 1 < in ? i0 + 1 : in - 1;
        t[o].w1 = (float)(s - (double)i0);
    }
}

static int shape_ok(const void *a, const void *b, int64_t n, int64_t h, int64_t w, int64_t c,
                    int64_t ho, int64_t wo) {
    if (n < 0 || h < 0 || w < 0 || c < 0 || ho < 0 || wo < 0) return 0;
    if (n * c * ho * wo == 0) return 1;
    return h > 0 && w > 0 && a != NULL && b != NULL;
}

cf_status cf_resize_bilinear_fwd(const float *x, int64_t n, int64_t h, int64_t w, int64_t c,
                                 float *y, int64_t ho, int64_t wo) {
    if (!shape_ok(x, y, n, h, w, c, ho, wo)) return CF_ERR_ARGUMENT;
    if (n * c * ho * wo == 0) return CF_OK;
    tap *ty = (tap *)cf_workspace(0, (size_t)(ho + wo) * sizeof(tap));
    if (ty == NULL) return CF_ERR_NOMEM;
    tap *tx = ty + ho;
    axis_taps(h, ho, ty);
    axis_taps(w, wo, tx);
    const int64_t rows = n * ho;
    const int nt = threads_for_bytes(rows, (int64_t)sizeof(float) * rows * wo * c * 3);
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const cf_range rg = cf_split(rows, cf_thread_id(), cf_thread_count());
        for (int64_t r = rg.begin; r < rg.end; r++) {
            const int64_t b = r / ho, oy = r % ho;
            const float wy1 = ty[oy].w1, wy0 = 1.0f - wy1;
            const float *row0 = x + (b * h + ty[oy].i0) * w * c;
            const float *row1 = x + (b * h + ty[oy].i1) * w * c;
            float *out = y + r * wo * c;
            for (int64_t ox = 0; ox < wo; ox++, out += c) {
                const float wx1 = tx[ox].w1, wx0 = 1.0f - wx1;
                const float *restrict p00 = row0 + tx[ox].i0 * c, *restrict p01 = row0 + tx[ox].i1 * c;
                const float *restrict p10 = row1 + tx[ox].i0 * c, *restrict p11 = row1 + tx[ox].i1 * c;
                float *restrict q = out;
                for (int64_t k = 0; k < c; k++)
                    q[k] = wy0 * (wx0 * p00[k] + wx1 * p01[k]) + wy1 * (wx0 * p10[k] + wx1 * p11[k]);
            }
        }
    }
    return CF_OK;
}

cf_status cf_resize_bilinear_bwd(const float *dy, int64_t n, int64_t h, int64_t w, int64_t c,
                                 float *dx, int64_t ho, int64_t wo) {
    if (!shape_ok(dy, dx, n, h, w, c, ho, wo)) return CF_ERR_ARGUMENT;
    if (n * h * w * c == 0) return CF_OK;
    if (dx == NULL) return CF_ERR_ARGUMENT;
    memset(dx, 0, (size_t)(n * h * w * c) * sizeof(float));
    if (ho * wo == 0) return CF_OK;
    if (dy == NULL) return CF_ERR_ARGUMENT;
    tap *ty = (tap *)cf_workspace(0, (size_t)(ho + wo) * sizeof(tap));
    if (ty == NULL) return CF_ERR_NOMEM;
    tap *tx = ty + ho;
    axis_taps(h, ho, ty);
    axis_taps(w, wo, tx);
    /* threads own disjoint channel slices of 16 (whole cache lines), every image and pixel */
    const int64_t slices = (c + 15) / 16;
    const int nt = threads_for_bytes(slices, (int64_t)sizeof(float) * n * (ho * wo + h * w) * c * 2);
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const cf_range rg = cf_split(slices, cf_thread_id(), cf_thread_count());
        const int64_t k0 = rg.begin * 16, k1 = rg.end * 16 < c ? rg.end * 16 : c;
        for (int64_t b = 0; b < n && k0 < k1; b++)
            for (int64_t oy = 0; oy < ho; oy++) {
                const float wy1 = ty[oy].w1, wy0 = 1.0f - wy1;
                float *row0 = dx + (b * h + ty[oy].i0) * w * c;
                float *row1 = dx + (b * h + ty[oy].i1) * w * c;
                const float *g = dy + (b * ho + oy) * wo * c;
                for (int64_t ox = 0; ox < wo; ox++, g += c) {
                    const float wx1 = tx[ox].w1, wx0 = 1.0f - wx1;
                    float *p00 = row0 + tx[ox].i0 * c, *p01 = row0 + tx[ox].i1 * c;
                    float *p10 = row1 + tx[ox].i0 * c, *p11 = row1 + tx[ox].i1 * c;
                    /* the four targets may coincide at the edges: update one after another */
                    for (int64_t k = k0; k < k1; k++) p00[k] += wy0 * wx0 * g[k];
                    for (int64_t k = k0; k < k1; k++) p01[k] += wy0 * wx1 * g[k];
                    for (int64_t k = k0; k < k1; k++) p10[k] += wy1 * wx0 * g[k];
                    for (int64_t k = k0; k < k1; k++) p11[k] += wy1 * wx1 * g[k];
                }
            }
    }
    return CF_OK;
}
