/*
 * cf_fma_peak__avx512.c — FP32 FMA throughput probe on zmm registers (see cf_fma_peak.c).
 * 24 independent accumulators: Zen 4 needs 4 in flight (one 512-bit FMA per cycle, latency 4),
 * Intel cores with two 512-bit FMA units need 8; 24 leaves a wide margin.
 */
#include <immintrin.h>
#include "gemm/cf_sgemm_internal.h"

float cf_fma_probe__avx512(int64_t iterations, float x, float y) {
    const __m512 vx = _mm512_set1_ps(x), vy = _mm512_set1_ps(y);
    __m512 acc[24];
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], vx, vy);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}
