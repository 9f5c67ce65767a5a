/*
 * cf_sgemm_ukr_6x16__avx2.c — AVX2+FMA sgemm micro-kernel, 6 x 16 tile (BLIS haswell shape).
 *
 * Design: C rows are 16 floats = 2 ymm; 6 rows give 12 ymm accumulators, plus 2 ymm for the row
 * of B and 1 for the broadcast element of A: 15 of the 16 registers. Each k step does 2 loads,
 * 6 broadcasts and 12 FMAs; Zen 4 retires two 256-bit FMAs per cycle, so 12 independent chains
 * cover the 4-cycle FMA latency (8 needed). When n <= 8 only the first vector column is computed.
 * Partial tiles store through vmaskmovps (edge tiles only); the caller pads the operands.
 * A is read with unit row stride (packed panels, A^T in place) or unit k stride (A in place).
 */
#include <immintrin.h>
#include "gemm/cf_sgemm_internal.h"

#define MR 6
#define PF_K 16     /* k steps ahead for k-major A panels */
#define PF_ROW 64   /* floats ahead for in-place A rows */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* has_alpha / has_beta: 0 for alpha == 1 / beta == 0, 1 for beta == 1, 2 otherwise. */
ALWAYS_INLINE void store_vec(float *c, __m256 acc, int64_t nleft, __m256 valpha, __m256 vbeta,
                             int has_alpha, int has_beta, const float *bias, int relu) {
    __m256 v = has_alpha ? _mm256_mul_ps(acc, valpha) : acc;
    if (nleft >= 8) {
        if (has_beta == 1) v = _mm256_add_ps(v, _mm256_loadu_ps(c));
        else if (has_beta) v = _mm256_fmadd_ps(_mm256_loadu_ps(c), vbeta, v);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
        if (relu) v = _mm256_max_ps(_mm256_setzero_ps(), v);
        if (relu == CF_SGEMM_RELU6) v = _mm256_min_ps(_mm256_set1_ps(6.0f), v);  /* NaN stays */
        _mm256_storeu_ps(c, v);
    } else {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nleft),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        if (has_beta == 1) v = _mm256_add_ps(v, _mm256_maskload_ps(c, mask));
        else if (has_beta) v = _mm256_fmadd_ps(_mm256_maskload_ps(c, mask), vbeta, v);
        if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias, mask));
        if (relu) v = _mm256_max_ps(_mm256_setzero_ps(), v);
        if (relu == CF_SGEMM_RELU6) v = _mm256_min_ps(_mm256_set1_ps(6.0f), v);  /* NaN stays */
        _mm256_maskstore_ps(c, mask, v);
    }
}

#define DECL(i) __m256 c##i##_0 = _mm256_setzero_ps(), c##i##_1 = _mm256_setzero_ps();
#define A_AT(i) (unit_rs ? ap[(i)] : ap[(i) * rs_a])
#define ROW(i)                                                          \
    {                                                                   \
        const __m256 ai = _mm256_set1_ps(A_AT(i));                       \
        c##i##_0 = _mm256_fmadd_ps(ai, b0, c##i##_0);                   \
        if (nv == 2) c##i##_1 = _mm256_fmadd_ps(ai, b1, c##i##_1);      \
    }
/* One rank-1 update: a row of B times a column of A. */
#define K_STEP()                                                        \
    {                                                                   \
        const __m256 b0 = _mm256_loadu_ps(bp);                          \
        const __m256 b1 = nv == 2 ? _mm256_loadu_ps(bp + 8) : b0;        \
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) \
    }
#define STORE(i)                                                                          \
    if ((i) < m) {                                                                        \
        float *ci = c + (i) * ldc;                                                        \
        store_vec(ci, c##i##_0, n, valpha, vbeta, has_alpha, has_beta, bias, relu);                  \
        if (nv == 2) store_vec(ci + 8, c##i##_1, n - 8, valpha, vbeta, has_alpha, has_beta,         \
                               bias ? bias + 8 : NULL, relu);                             \
    }

/* v = min(ceil, max(floor, (acc (+ C)) + bias)) on one full vector, in the order of store_vec
 * (so every tile rounds alike); max(floor, NaN) = min(ceil, NaN) = NaN. */
#define FAST_VEC(ptr, acc, bias, acc_c)                                                  \
    {                                                                                     \
        __m256 v_ = acc;                                                                  \
        if (acc_c) v_ = _mm256_add_ps(v_, _mm256_loadu_ps(ptr));                         \
        v_ = _mm256_add_ps(v_, bias);                                                     \
        _mm256_storeu_ps(ptr, _mm256_min_ps(ceil, _mm256_max_ps(floor, v_)));                                 \
    }
#define FAST_ROW(i, acc_c)                                                                \
    FAST_VEC(c + (i) * ldc, c##i##_0, bias0, acc_c)                                       \
    if (nv == 2) FAST_VEC(c + (i) * ldc + 8, c##i##_1, bias1, acc_c)
#define FAST_ALL(acc_c)                                                                   \
    FAST_ROW(0, acc_c) FAST_ROW(1, acc_c) FAST_ROW(2, acc_c)                              \
    FAST_ROW(3, acc_c) FAST_ROW(4, acc_c) FAST_ROW(5, acc_c)

/* B read in place (rows rs_b apart, a layer's weights): a strided stream the hardware prefetcher
 * follows late when the weights are not in cache; fetch PF_B rows ahead (as the AVX-512 kernel). */
#define PF_B 24
#define PREFETCH_B_ROW(bp)                                                                    \
    {                                                                                         \
        _mm_prefetch((const char *)((bp) + PF_B * rs_b), _MM_HINT_T0);                        \
        if (nv == 2) _mm_prefetch((const char *)((bp) + PF_B * rs_b + 15), _MM_HINT_T0);      \
    }

ALWAYS_INLINE void body(int64_t k, const float *a, int64_t rs_a, int64_t cs_a, const float *b,
                        int64_t rs_b, float *c, int64_t ldc, int64_t m, int64_t n,
                        const cf_sgemm_epi *ep, const int nv, const int unit_rs) {
    DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5)

    /* Bring the C tile towards L1 while a long k loop runs (on a short one it only costs). */
    if (k >= 64) for (int64_t i = 0; i < m; ++i) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 8 * nv - 1), _MM_HINT_T0);
    }

    const float *ap = a, *bp = b;
    if (unit_rs) {
        /* A panel k-major: a packed panel (cs_a == MR) is L1-resident; A^T read in place brings
         * one new line per k step, fetched ahead (the test is hoisted out of the loop). */
        const int pf_a = cs_a != MR, pf_b = rs_b != 16;  /* packed B panels: rs_b == NR == 16 */
#pragma GCC unroll 4
        for (int64_t p = 0; p < k; ++p) {
            if (pf_a) _mm_prefetch((const char *)(ap + PF_K * cs_a), _MM_HINT_T0);
            if (pf_a) _mm_prefetch((const char *)(ap + PF_K * cs_a + MR - 1), _MM_HINT_T0);
            if (pf_b) PREFETCH_B_ROW(bp);
            K_STEP()
            ap += cs_a;
            bp += rs_b;
        }
    } else {
        /* A in place, rows contiguous along k: MR short row streams, too many for the hardware
         * prefetcher. Every 16 k steps (one line per row) fetch PF_ROW floats ahead in this panel
         * and the same lines of the next panel, which the next row of tiles reads. */
        for (int64_t p0 = 0; p0 < k; p0 += 16) {
            if (p0 + PF_ROW < k)
                for (int i = 0; i < MR; ++i) _mm_prefetch((const char *)(ap + i * rs_a + PF_ROW), _MM_HINT_T0);
            if (rs_a >= 32)  /* shorter rows: the panels are one dense block, prefetched in hardware */
                for (int i = 0; i < MR; ++i) _mm_prefetch((const char *)(ap + (MR + i) * rs_a), _MM_HINT_T0);
            const int64_t pend = k - p0 < 16 ? k - p0 : 16;
#pragma GCC unroll 4
            for (int64_t p = 0; p < pend; ++p) {
                if (rs_b != 16) PREFETCH_B_ROW(bp);
                K_STEP()
                ap += 1;
                bp += rs_b;
            }
        }
    }

    if (m == MR && n == 8 * nv && ep->alpha == 1.0f && (ep->beta == 0.0f || ep->beta == 1.0f)) {
        /* Full tile, the common epilogue: straight-line code, no per-row branches. Without bias
         * the bias vector is +0 (turning a -0 result into +0); without ReLU the floor is -inf. */
        const __m256 bias0 = ep->bias ? _mm256_loadu_ps(ep->bias) : _mm256_setzero_ps();
        const __m256 bias1 = ep->bias && nv == 2 ? _mm256_loadu_ps(ep->bias + 8) : bias0;
        const __m256 floor = ep->relu ? _mm256_setzero_ps() : _mm256_set1_ps(-__builtin_inff());
        const __m256 ceil = _mm256_set1_ps(ep->relu == CF_SGEMM_RELU6 ? 6.0f : __builtin_inff());
        if (ep->beta == 0.0f) {
            FAST_ALL(0)
        } else {
            FAST_ALL(1)
        }
        return;
    }

    const __m256 valpha = _mm256_set1_ps(ep->alpha), vbeta = _mm256_set1_ps(ep->beta);
    const int has_alpha = ep->alpha != 1.0f, relu = ep->relu;
    const int has_beta = ep->beta == 0.0f ? 0 : ep->beta == 1.0f ? 1 : 2;
    const float *bias = ep->bias;
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
}

void cf_sgemm_ukr_6x16__avx2(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                             const float *b, int64_t rs_b, float *c, int64_t ldc,
                             int64_t m, int64_t n, const cf_sgemm_epi *ep) {
    if (rs_a == 1) {
        if (n > 8) body(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep, 2, 1);
        else       body(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep, 1, 1);
    } else {
        if (n > 8) body(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep, 2, 0);
        else       body(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep, 1, 0);
    }
}
