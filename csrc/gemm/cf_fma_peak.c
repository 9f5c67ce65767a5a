/*
 * cf_fma_peak.c — measures the machine's practical FP32 peak, for "% of peak" in the benchmarks.
 *
 * Every thread of one parallel region runs the probe of the current ISA path (independent FMAs
 * on registers only: no memory traffic), and the wall time of the region is taken around it.
 * On a VM or a busy machine this is the ceiling a GEMM can actually reach, which is the useful
 * reference (nominal clock x FMA width is often not reachable). The generic path has no FMA
 * probe and reports a scalar multiply-add loop, a lower bound.
 */
#include <time.h>
#include "runtime/cf_internal.h"
#include "cnnfast/gemm.h"
#include "gemm/cf_sgemm_internal.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float probe_generic(int64_t iterations, float x, float y) {
    float acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = (float)i;
    for (int64_t it = 0; it < iterations; ++it)
        for (int i = 0; i < 12; ++i) acc[i] = acc[i] * x + y;
    float s = 0.0f;
    for (int i = 0; i < 12; ++i) s += acc[i];
    return s;
}

static volatile float sink;
static volatile float probe_x = 0.999999f, probe_y = 1e-6f;

cf_status cf_fma_peak(int64_t iterations, double *flops, double *seconds) {
    if (iterations <= 0 || flops == NULL || seconds == NULL) return CF_ERR_ARGUMENT;
    const cf_isa isa = cf_get_isa();
    const float x = probe_x, y = probe_y;
    /* flops per round per thread: accumulators x lanes x 2 */
    const double per_round = isa == CF_ISA_AVX512 ? 24 * 16 * 2 : isa == CF_ISA_AVX2 ? 12 * 8 * 2 : 12 * 2;
    const int nt = cf_get_num_threads();
    int used = 1;
    const double t0 = now_seconds();
#pragma omp parallel num_threads(nt)
    {
        CF_FTZ_BEGIN;
        float s;
#if defined(__x86_64__)  /* portable builds have only the generic probe (cf_get_isa() is generic) */
        if (isa == CF_ISA_AVX512) s = cf_fma_probe__avx512(iterations, x, y);
        else if (isa == CF_ISA_AVX2) s = cf_fma_probe__avx2(iterations, x, y);
        else
#endif
        s = probe_generic(iterations, x, y);
        if (cf_thread_id() == 0) used = cf_thread_count();
        sink = s;
        CF_FTZ_END;
    }
    *seconds = now_seconds() - t0;
    *flops = per_round * (double)iterations * (double)used;
    return CF_OK;
}
