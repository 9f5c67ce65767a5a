/*
 * cf_sgemm_ukr_14x32__avx512.c — AVX-512 sgemm micro-kernel, 14 x 32 tile.
 *
 * Design: C rows are 32 floats = 2 zmm; 14 rows give 28 zmm accumulators, plus 2 zmm for the
 * current row of B: 30 of the 32 registers. Each k step loads 2 vectors of B and does 28 FMAs,
 * each broadcasting one element of A straight from memory ({1to16} embedded broadcast), so A costs
 * no register and no shuffle. Zen 4 retires one 512-bit FMA per cycle, so a k step takes ~28 cycles
 * and needs only 16 loads: the kernel is FMA-bound with 28 independent accumulation chains, far
 * more than the 4-cycle latency needs (oneDNN's brgemm picks the same 14 x 32 shape).
 * When n <= 16 only the first vector column is computed (e.g. N = 10 for a classifier layer).
 * Partial tiles store through AVX-512 masks, and an edge tile of m < 14 rows runs a copy of the
 * kernel compiled for the next even row count; the caller pads the operands.
 * A is read either with unit row stride (packed panels, A^T in place) or unit k stride (A in
 * place); both are compiled as separate, fully unrolled loops. See cf_sgemm_internal.h.
 */
#include <immintrin.h>
#include "gemm/cf_sgemm_internal.h"

#define MR 14
#define PF_K 16     /* k steps ahead for k-major A panels */
#define PF_ROW 64   /* floats ahead for in-place A rows */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* has_alpha / has_beta: 0 for alpha == 1 / beta == 0, 1 for beta == 1, 2 otherwise. The common
 * cases skip a multiply: on a short k loop (K = 9) 28 extra FMA-pipe ops cost 10%. */
ALWAYS_INLINE void store_vec(float *c, __m512 acc, __mmask16 mask, __m512 valpha, __m512 vbeta,
                             int has_alpha, int has_beta, const float *bias, int relu) {
    __m512 v = has_alpha ? _mm512_mul_ps(acc, valpha) : acc;
    if (has_beta == 1) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, c));
    else if (has_beta) v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, c), vbeta, v);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
    if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);  /* max(0, NaN) = NaN */
    if (relu == CF_SGEMM_RELU6) v = _mm512_min_ps(_mm512_set1_ps(6.0f), v);  /* NaN stays */
    _mm512_mask_storeu_ps(c, mask, v);
}

#define DECL(i) __m512 c##i##_0 = _mm512_setzero_ps(), c##i##_1 = _mm512_setzero_ps();
#define A_AT(i) (unit_rs ? ap[(i)] : ap[(i) * rs_a])
#define ROW(i)                                                          \
    if ((i) < mrv) {                                                    \
        const __m512 ai = _mm512_set1_ps(A_AT(i));                      \
        c##i##_0 = _mm512_fmadd_ps(ai, b0, c##i##_0);                   \
        if (nv == 2) c##i##_1 = _mm512_fmadd_ps(ai, b1, c##i##_1);      \
    }
/* One rank-1 update: a row of B times a column of A. */
#define K_STEP()                                                        \
    {                                                                   \
        const __m512 b0 = _mm512_loadu_ps(bp);                          \
        const __m512 b1 = nv == 2 ? _mm512_loadu_ps(bp + 16) : b0;        \
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6)                   \
        ROW(7) ROW(8) ROW(9) ROW(10) ROW(11) ROW(12) ROW(13) \
    }
#define STORE(i)                                                                          \
    if ((i) < mrv && (i) < m) {                                                           \
        float *ci = c + (i) * ldc;                                                        \
        store_vec(ci, c##i##_0, mask0, valpha, vbeta, has_alpha, has_beta, bias, relu);              \
        if (nv == 2) store_vec(ci + 16, c##i##_1, mask1, valpha, vbeta, has_alpha, has_beta,        \
                               bias ? bias + 16 : NULL, relu);                            \
    }

/* v = min(ceil, max(floor, (acc (+ C)) + bias)) on one full vector, in the order of store_vec
 * (so every tile rounds alike); max(floor, NaN) = min(ceil, NaN) = NaN. */
#define FAST_VEC(ptr, acc, bias, acc_c)                                                  \
    {                                                                                     \
        __m512 v_ = acc;                                                                  \
        if (acc_c) v_ = _mm512_add_ps(v_, _mm512_loadu_ps(ptr));                         \
        v_ = _mm512_add_ps(v_, bias);                                                     \
        _mm512_storeu_ps(ptr, _mm512_min_ps(ceil, _mm512_max_ps(floor, v_)));                                 \
    }
#define FAST_ROW(i, acc_c)                                                                \
    if ((i) < mrv) {                                                                      \
        FAST_VEC(c + (i) * ldc, c##i##_0, bias0, acc_c)                                   \
        if (nv == 2) FAST_VEC(c + (i) * ldc + 16, c##i##_1, bias1, acc_c)                 \
    }
#define FAST_ALL(acc_c)                                                                   \
    FAST_ROW(0, acc_c) FAST_ROW(1, acc_c) FAST_ROW(2, acc_c) FAST_ROW(3, acc_c)          \
    FAST_ROW(4, acc_c) FAST_ROW(5, acc_c) FAST_ROW(6, acc_c) FAST_ROW(7, acc_c)          \
    FAST_ROW(8, acc_c) FAST_ROW(9, acc_c) FAST_ROW(10, acc_c) FAST_ROW(11, acc_c)        \
    FAST_ROW(12, acc_c) FAST_ROW(13, acc_c)

/* B read in place (rows rs_b apart, the weights of a layer): each k step starts a new row, a
 * strided stream the hardware prefetcher follows late when the weights are not in cache (a
 * 9.4 MB 3x3x512x512 filter at batch 1 streamed at ~2 GB/s); fetch PF_B rows ahead. */
#define PF_B 24
#define PREFETCH_B_ROW(bp)                                                                    \
    {                                                                                         \
        _mm_prefetch((const char *)((bp) + PF_B * rs_b), _MM_HINT_T0);                        \
        if (nv == 2) _mm_prefetch((const char *)((bp) + PF_B * rs_b + 31), _MM_HINT_T0);      \
    }

ALWAYS_INLINE void body(int64_t k, const float *a, int64_t rs_a, int64_t cs_a, const float *b,
                        int64_t rs_b, float *c, int64_t ldc, int64_t m, int64_t n,
                        const cf_sgemm_epi *ep, const int mrv, const int nv, const int unit_rs) {
    DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5) DECL(6)
    DECL(7) DECL(8) DECL(9) DECL(10) DECL(11) DECL(12) DECL(13)

    /* Bring the C tile towards L1 while a long k loop runs (on a short one it only costs). */
    if (k >= 64) for (int64_t i = 0; i < m; ++i) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 16 * nv - 1), _MM_HINT_T0);
    }

    const float *ap = a, *bp = b;
    if (unit_rs) {
        /* A panel k-major: a packed panel (cs_a == MR) is L1-resident; A^T read in place brings
         * one new line per k step, fetched ahead (the test is hoisted out of the loop). */
        const int pf_a = cs_a != MR, pf_b = rs_b != 32;  /* packed B panels: rs_b == NR == 32 */
#pragma GCC unroll 4
        for (int64_t p = 0; p < k; ++p) {
            if (pf_a) _mm_prefetch((const char *)(ap + PF_K * cs_a), _MM_HINT_T0);
            if (pf_a) _mm_prefetch((const char *)(ap + PF_K * cs_a + mrv - 1), _MM_HINT_T0);
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
                for (int i = 0; i < mrv; ++i) _mm_prefetch((const char *)(ap + i * rs_a + PF_ROW), _MM_HINT_T0);
            if (rs_a >= 32)  /* shorter rows: the panels are one dense block, prefetched in hardware */
                for (int i = 0; i < MR; ++i) _mm_prefetch((const char *)(ap + (MR + i) * rs_a), _MM_HINT_T0);
            const int64_t pend = k - p0 < 16 ? k - p0 : 16;
#pragma GCC unroll 4
            for (int64_t p = 0; p < pend; ++p) {
                if (rs_b != 32) PREFETCH_B_ROW(bp);
                K_STEP()
                ap += 1;
                bp += rs_b;
            }
        }
    }

    if (m == mrv && n == 16 * nv && ep->alpha == 1.0f && (ep->beta == 0.0f || ep->beta == 1.0f)) {
        /* Full tile, the common epilogue: straight-line code, no per-row branches. Without bias
         * the bias vector is +0 (turning a -0 result into +0); without ReLU the floor is -inf. */
        const __m512 bias0 = ep->bias ? _mm512_loadu_ps(ep->bias) : _mm512_setzero_ps();
        const __m512 bias1 = ep->bias && nv == 2 ? _mm512_loadu_ps(ep->bias + 16) : bias0;
        const __m512 floor = ep->relu ? _mm512_setzero_ps() : _mm512_set1_ps(-__builtin_inff());
        const __m512 ceil = _mm512_set1_ps(ep->relu == CF_SGEMM_RELU6 ? 6.0f : __builtin_inff());
        if (ep->beta == 0.0f) {
            FAST_ALL(0)
        } else {
            FAST_ALL(1)
        }
        return;
    }

    const __mmask16 mask0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    const __mmask16 mask1 = n >= 32 ? (__mmask16)0xFFFF
                          : n > 16  ? (__mmask16)((1u << (n - 16)) - 1u) : (__mmask16)0;
    const __m512 valpha = _mm512_set1_ps(ep->alpha), vbeta = _mm512_set1_ps(ep->beta);
    const int has_alpha = ep->alpha != 1.0f, relu = ep->relu;
    const int has_beta = ep->beta == 0.0f ? 0 : ep->beta == 1.0f ? 1 : 2;
    const float *bias = ep->bias;
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6)
    STORE(7) STORE(8) STORE(9) STORE(10) STORE(11) STORE(12) STORE(13)
}

/* One instantiation per (even row count, vector columns, A layout): an edge tile of m rows
 * runs the kernel for the next even count, so a batch of 64 = 4 x 14 + 8 rows wastes nothing. */
#define CALL(MRV)                                                                         \
    if (rs_a == 1) {                                                                      \
        if (n > 16) body(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep, MRV, 2, 1);         \
        else        body(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep, MRV, 1, 1);         \
    } else {                                                                              \
        if (n > 16) body(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep, MRV, 2, 0);         \
        else        body(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep, MRV, 1, 0);         \
    }                                                                                     \
    return;

void cf_sgemm_ukr_14x32__avx512(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                const float *b, int64_t rs_b, float *c, int64_t ldc,
                                int64_t m, int64_t n, const cf_sgemm_epi *ep) {
    switch ((m + 1) / 2) {
        case 1: CALL(2)
        case 2: CALL(4)
        case 3: CALL(6)
        case 4: CALL(8)
        case 5: CALL(10)
        case 6: CALL(12)
        default: CALL(14)
    }
}
