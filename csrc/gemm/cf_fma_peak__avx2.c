/*
 * cf_fma_peak__avx2.c — FP32 FMA throughput probe on ymm registers (see cf_fma_peak.c).
 * 12 independent accumulators: two 256-bit FMA pipes with latency 4 need 8 in flight.
 */
#include <immintrin.h>
#include "gemm/cf_sgemm_internal.h"

float cf_fma_probe__avx2(int64_t iterations, float x, float y) {
    const __m256 vx = _mm256_set1_ps(x), vy = _mm256_set1_ps(y);
    __m256 acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], vx, vy);
    }
    __m256 s = acc[0];
    for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}
