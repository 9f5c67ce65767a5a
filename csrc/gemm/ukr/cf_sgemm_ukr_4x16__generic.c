/*
 * cf_sgemm_ukr_4x16__generic.c — portable C sgemm micro-kernel, 4 x 16 tile (the reference path).
 *
 * Design: a 4 x 16 float accumulator array updated by rank-1 steps; the j loop has a constant
 * trip count so the compiler keeps the tile in SSE registers on baseline x86-64. Separate multiply
 * and add (no FMA in baseline x86-64). Same contract as the SIMD kernels (cf_sgemm_internal.h).
 */
#include "gemm/cf_sgemm_internal.h"

#define MR 4
#define NR 16

void cf_sgemm_ukr_4x16__generic(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                const float *b, int64_t rs_b, float *c, int64_t ldc,
                                int64_t m, int64_t n, const cf_sgemm_epi *ep) {
    float acc[MR][NR] = {{0.0f}};
    for (int64_t p = 0; p < k; ++p) {
        const float *bp = b + p * rs_b;
        for (int i = 0; i < MR; ++i) {
            const float ai = a[i * rs_a + p * cs_a];
            for (int j = 0; j < NR; ++j) acc[i][j] += ai * bp[j];
        }
    }
    const float alpha = ep->alpha, beta = ep->beta;
    for (int64_t i = 0; i < m; ++i) {
        float *ci = c + i * ldc;
        for (int64_t j = 0; j < n; ++j) {
            float v = acc[i][j] * alpha;
            if (beta != 0.0f) v += beta * ci[j];
            if (ep->bias) v += ep->bias[j];
            if (ep->relu && v < 0.0f) v = 0.0f;  /* NaN stays NaN */
            ci[j] = v;
        }
    }
}
