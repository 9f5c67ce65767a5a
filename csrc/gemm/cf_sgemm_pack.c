/*
 * cf_sgemm_pack.c — the built-in packer: copies a block of a strided matrix into micro-panels.
 *
 * Layout produced (see cf_sgemm_pack_fn in gemm.h): panels of r rows of P, k-major inside a
 * panel, so the micro-kernel reads r consecutive floats per k step; rows past the end are zero.
 *
 * Two fast paths cover every plain operand:
 *   - stride_x == 1 (A^T, B): each k step of a panel is r contiguous source floats: a row copy.
 *   - stride_k == 1 (A, B^T): each panel row is contiguous along k; blocks of 4 rows x 4 k are
 *     transposed in SSE registers (_MM_TRANSPOSE4_PS) so loads and stores stay 16 bytes wide;
 *     two rows left over are interleaved in pairs (8-byte stores).
 * Anything else falls back to a scalar gather. Baseline x86-64 code (SSE2), called by every
 * ISA path; single-threaded (each GEMM thread packs its own blocks).
 */
#include "cnnfast/gemm.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#define PACK_PF_ROWS 8  /* rows ahead that the row-by-row copy fetches */

/* rows x0..x0+nx of a k-contiguous source into one panel of width r (nx <= r). */
static void pack_panel_kcontig(const float *src, int64_t sx, int64_t nx, int64_t nk, int64_t r,
                               float *dst) {
    int64_t q = 0;
#if defined(__SSE2__)
    for (; q + 4 <= nx; q += 4) {
        const float *s0 = src + q * sx, *s1 = s0 + sx, *s2 = s1 + sx, *s3 = s2 + sx;
        int64_t k = 0;
        for (; k + 4 <= nk; k += 4) {
            __m128 r0 = _mm_loadu_ps(s0 + k), r1 = _mm_loadu_ps(s1 + k);
            __m128 r2 = _mm_loadu_ps(s2 + k), r3 = _mm_loadu_ps(s3 + k);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            float *d = dst + k * r + q;
            _mm_storeu_ps(d, r0);
            _mm_storeu_ps(d + r, r1);
            _mm_storeu_ps(d + 2 * r, r2);
            _mm_storeu_ps(d + 3 * r, r3);
        }
        for (; k < nk; ++k) {
            float *d = dst + k * r + q;
            d[0] = s0[k]; d[1] = s1[k]; d[2] = s2[k]; d[3] = s3[k];
        }
    }
    /* Two rows left (MR = 6 and 14 leave two after the groups of four): interleave them 4 k at
     * a time and store pairs, instead of one scalar store per element. */
    if (q + 2 <= nx) {
        const float *s0 = src + q * sx, *s1 = s0 + sx;
        int64_t k = 0;
        for (; k + 4 <= nk; k += 4) {
            const __m128 r0 = _mm_loadu_ps(s0 + k), r1 = _mm_loadu_ps(s1 + k);
            const __m128 lo = _mm_unpacklo_ps(r0, r1), hi = _mm_unpackhi_ps(r0, r1);
            float *d = dst + k * r + q;
            _mm_storel_pi((__m64 *)d, lo);
            _mm_storeh_pi((__m64 *)(d + r), lo);
            _mm_storel_pi((__m64 *)(d + 2 * r), hi);
            _mm_storeh_pi((__m64 *)(d + 3 * r), hi);
        }
        for (; k < nk; ++k) {
            float *d = dst + k * r + q;
            d[0] = s0[k]; d[1] = s1[k];
        }
        q += 2;
    }
#endif
    for (; q < nx; ++q) {
        const float *s = src + q * sx;
        for (int64_t k = 0; k < nk; ++k) dst[k * r + q] = s[k];
    }
    if (nx < r)
        for (int64_t k = 0; k < nk; ++k)
            for (int64_t z = nx; z < r; ++z) dst[k * r + z] = 0.0f;
}

void cf_sgemm_pack_strided(const void *ctx, int64_t x0, int64_t k0, int64_t nx, int64_t nk,
                           int64_t r, float *dst) {
    const cf_sgemm_strided *m = (const cf_sgemm_strided *)ctx;
    const int64_t sx = m->stride_x, sk = m->stride_k;
    if (sx == 1) {
        /* Rows contiguous along x (A^T, B): walk the source row by row, each row once across all
         * panels. Panel by panel would read one short piece of every row in turn; with a row
         * stride of 4 KiB (N = 1024) each piece sits on another page, out of the prefetcher's
         * reach, and packing took ~8 % of a 1024^3 product on Zen 3. */
        for (int64_t k = 0; k < nk; ++k) {
            const float *s = m->data + x0 + (k0 + k) * sk;
            float *d = dst + k * r;
#if defined(__SSE2__)
            if (k + PACK_PF_ROWS < nk)  /* the row a few steps ahead: a new page each time */
                for (int64_t q = 0; q < nx; q += 16)
                    _mm_prefetch((const char *)(s + PACK_PF_ROWS * sk + q), _MM_HINT_T0);
#endif
            for (int64_t p0 = 0; p0 < nx; p0 += r, d += r * nk) {
                const int64_t w = nx - p0 < r ? nx - p0 : r;
                for (int64_t q = 0; q < w; ++q) d[q] = s[p0 + q];  /* short: a loop beats memcpy */
                for (int64_t z = w; z < r; ++z) d[z] = 0.0f;
            }
        }
        return;
    }
    for (int64_t p0 = 0; p0 < nx; p0 += r, dst += r * nk) {
        const int64_t w = nx - p0 < r ? nx - p0 : r;
        const float *src = m->data + (x0 + p0) * sx + k0 * sk;
        if (sk == 1) {
            pack_panel_kcontig(src, sx, w, nk, r, dst);
        } else {
            for (int64_t k = 0; k < nk; ++k)
                for (int64_t q = 0; q < r; ++q) dst[k * r + q] = q < w ? src[q * sx + k * sk] : 0.0f;
        }
    }
}
