/*
 * cf_conv2d__avx512.c — the convolution kernels for AVX-512 (F/BW/DQ/VL): 16-float ZMM vectors.
 *
 * Register tiles (32 ZMM): 16 x 16 (NV = 1), 14 x 32 (NV = 2, 28 accumulators + 2 weight vectors
 * + 1 broadcast) and 6 x 64 (NV = 4). Channel tails use opmasks. The kernels themselves are in
 * cf_conv2d_kernels.inc (see its design note); this file only supplies the vector vocabulary.
 */
#include <immintrin.h>
#include "runtime/cf_internal.h"
#include "cf_conv_internal.h"

typedef __m512 vec_t;
typedef __mmask16 mask_t;
#define VLEN 16
#define vzero() _mm512_setzero_ps()
#define vset1(x) _mm512_set1_ps(x)
#define vload(p) _mm512_loadu_ps(p)
#define vstore(p, v) _mm512_storeu_ps((p), (v))
#define vload_m(p, m) _mm512_maskz_loadu_ps((m), (p))
#define vstore_m(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define vadd(a, b) _mm512_add_ps((a), (b))
#define vsub(a, b) _mm512_sub_ps((a), (b))
#define vfma(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define vmax0(v) _mm512_max_ps(_mm512_setzero_ps(), (v)) /* max(0, NaN) = NaN, as ops.relu */
#define vcap6(v) _mm512_min_ps(_mm512_set1_ps(6.0f), (v)) /* min(6, NaN) = NaN */
#define vmask(n) ((__mmask16)((1u << (n)) - 1u))

#define vhsum(v) _mm512_reduce_add_ps(v)

#define DMAX1 16
#define DMAX2 12
#define DMAX3 8
#define DMAX4 6
#define RMAX1 16
#define RMAX2 14
#define RMAX4 6
#define CF_CONV_TABLE cf_conv_kernels_avx512
#include "cf_conv2d_kernels.inc"
