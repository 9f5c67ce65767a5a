/*
 * cf_conv2d__avx2.c — the convolution kernels for AVX2 + FMA: 8-float YMM vectors.
 *
 * Register tiles (16 YMM): 12 x 8 (NV = 1), 6 x 16 (NV = 2, 12 accumulators + 2 weight vectors
 * + 1 broadcast, the BLIS haswell shape) and 3 x 32 (NV = 4). Channel tails use vmaskmov. The
 * kernels are in cf_conv2d_kernels.inc; this file supplies the vector vocabulary.
 */
#include <immintrin.h>
#include "runtime/cf_internal.h"
#include "cf_conv_internal.h"

typedef __m256 vec_t;
typedef __m256i mask_t;
#define VLEN 8
#define vzero() _mm256_setzero_ps()
#define vset1(x) _mm256_set1_ps(x)
#define vload(p) _mm256_loadu_ps(p)
#define vstore(p, v) _mm256_storeu_ps((p), (v))
#define vload_m(p, m) _mm256_maskload_ps((p), (m))
#define vstore_m(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define vadd(a, b) _mm256_add_ps((a), (b))
#define vsub(a, b) _mm256_sub_ps((a), (b))
#define vfma(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define vmax0(v) _mm256_max_ps(_mm256_setzero_ps(), (v)) /* max(0, NaN) = NaN, as ops.relu */
#define vcap6(v) _mm256_min_ps(_mm256_set1_ps(6.0f), (v)) /* min(6, NaN) = NaN */
#define vmask(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))

static inline float vhsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define DMAX1 12
#define DMAX2 6
#define DMAX3 4
#define DMAX4 3
#define RMAX1 12
#define RMAX2 6
#define RMAX4 3
#define CF_CONV_TABLE cf_conv_kernels_avx2
#include "cf_conv2d_kernels.inc"
