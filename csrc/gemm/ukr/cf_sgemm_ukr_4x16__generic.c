/*
 * cf_sgemm_ukr_4x16__generic.c — portable C sgemm micro-kernel, 4 x 16 tile (the reference path).
 *
 * Design: the 4 x 16 accumulator tile is 16 four-float vectors (GCC/Clang vector extensions,
 * lowered to SSE on baseline x86-64 and to plain scalars where there is no SIMD), updated by
 * rank-1 steps: 4 vector loads of a row of B, 4 scalar broadcasts of A, 16 multiply-adds. Written
 * with vectors because the auto-vectoriser otherwise gathers A across rows. Separate multiply and
 * add (baseline x86-64 has no FMA). Same contract as the SIMD kernels (cf_sgemm_internal.h).
 */
#include <string.h>
#include "gemm/cf_sgemm_internal.h"

#define MR 4
#define NR 16

typedef float v4 __attribute__((vector_size(16)));

static inline v4 load4(const float *p) {
    v4 v;
    memcpy(&v, p, sizeof v);  /* unaligned load */
    return v;
}

void cf_sgemm_ukr_4x16__generic(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                const float *b, int64_t rs_b, float *c, int64_t ldc,
                                int64_t m, int64_t n, const cf_sgemm_epi *ep) {
    v4 acc[MR][NR / 4];
    memset(acc, 0, sizeof acc);
    for (int64_t p = 0; p < k; ++p) {
        const float *bp = b + p * rs_b;
        const v4 b0 = load4(bp), b1 = load4(bp + 4), b2 = load4(bp + 8), b3 = load4(bp + 12);
        for (int i = 0; i < MR; ++i) {
            const float ai = a[i * rs_a + p * cs_a];
            acc[i][0] += ai * b0;
            acc[i][1] += ai * b1;
            acc[i][2] += ai * b2;
            acc[i][3] += ai * b3;
        }
    }
    float tile[MR][NR];
    memcpy(tile, acc, sizeof tile);
    const float alpha = ep->alpha, beta = ep->beta;
    for (int64_t i = 0; i < m; ++i) {
        float *ci = c + i * ldc;
        for (int64_t j = 0; j < n; ++j) {
            float v = tile[i][j] * alpha;
            if (beta != 0.0f) v += beta * ci[j];
            if (ep->bias) v += ep->bias[j];
            if (ep->relu && v < 0.0f) v = 0.0f;  /* NaN stays NaN */
            if (ep->relu == CF_SGEMM_RELU6 && v > 6.0f) v = 6.0f;
            ci[j] = v;
        }
    }
}
