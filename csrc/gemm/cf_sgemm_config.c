/*
 * cf_sgemm_config.c — per-ISA micro-kernel and block sizes (BLIS's bli_cntx_init_<arch>).
 *
 * Loop nest (cf_sgemm.c): MC rows of A are packed per KC slice (Ã, L3), NC columns of B per KC
 * slice (B̃, L2); the innermost loop walks the NR-wide B micro-panels while one MR x KC micro-panel
 * of A stays in L1. MR, NR and KC are fixed per ISA; NC comes from this CPU's L2 (CPUID,
 * cf_cpu_cache_sizes), so that B̃ takes a set share of one core's L2 and leaves the rest to the
 * C tiles, the A micro-panels and the next block being packed:
 *
 *   AVX-512 14x32, KC 384: A micro-panel 14*384*4 = 21 KiB (L1); B̃ = 3/4 of L2 (Zen 4, 1 MiB:
 *                  NC = 512, 768 KiB); Ã 4032*384*4 = 6.2 MiB per thread (L3).
 *   AVX2 6x16, KC 256:     A micro-panel 6*256*4 = 6 KiB (L1); B̃ = 1/2 of L2 (Zen 3, 512 KiB:
 *                  NC = 256; Zen 4 and recent Intel, 1-2 MiB: 512-1024); Ã 4080*256*4 = 4 MiB.
 *   generic 4x16:  small blocks; this path is the portable reference, not a fast one.
 *
 * Measured on Zen 3 (512 KiB L2, AVX2 path, 1 thread, best of 4 processes): NC from 128 to 1024
 * moves 1024^3 and 2048^3 by less than the machine's noise (85-88 GFLOP/s); BLIS's opposite
 * order (Ã of 144-252 rows in L2, B̃ of 4080 columns in L3, A micro-panels innermost) measured
 * no better (83-88). What limits this path is the micro-kernel (about 92 % of the FMA peak on
 * an L1-resident tile at KC = 256), not the blocking.
 *
 * pack_a_min_n / pack_b_min_m: packing a block costs a copy per element and, for a large A,
 * a pass over memory that the in-place path overlaps with the FMAs; it is paid back by reuse
 * (A by a thread's N / NR tiles, B by its M / MR tiles). Below these sizes the operands are read
 * in place (the small-shape path: dense layers at batch 64, conv GEMMs with N = 32 or 64).
 * Measured on Zen 4 (1 thread, AVX-512): 8192x288x64 runs at ~103 GFLOP/s in place vs ~57
 * packed; 4096x288x512 ~100 vs ~95; from N ~ 1024 packing A wins (2048x1000x1024: 97 vs 90).
 * pack_wide_b_min_m: a B too large to be prepared once (cf_sgemm.c's narrow path) is read again
 * by every row tile, KC rows at a time, from L2; read in place, each k step is another line at
 * a power-of-two stride (N = 128: 512 B). On Zen 3 (AVX2, 1 thread, medians) packing it
 * anyway is faster from M = 16: 64x1600x128 75 GFLOP/s packed vs 63 in place. A narrow B
 * (AVX2: pack_b_min_m = 128) pays back later: 128^3 76 packed vs 65 in place, while 64x576x64
 * stays ahead in place (78 vs 68).
 */
#include "runtime/cf_internal.h"
#include "gemm/cf_sgemm_internal.h"
#include "cnnfast/gemm.h"

/* The fixed part of a configuration; nc_l2_quarters > 0: NC is set so that B̃ takes that many
 * quarters of one core's L2. */
typedef struct {
    cf_sgemm_config base;
    int nc_l2_quarters;
} isa_config;

static const isa_config fixed[CF_ISA_COUNT] = {
    [CF_ISA_GENERIC] = {{4, 16, 1024, 256, 256, 128, 128, 128, cf_sgemm_ukr_4x16__generic}, 0},
#if defined(__x86_64__)  /* portable builds compile no AVX files and only run the generic path */
    [CF_ISA_AVX2] = {{6, 16, 4080, 256, 0, 768, 128, 16, cf_sgemm_ukr_6x16__avx2}, 2},
    [CF_ISA_AVX512] = {{14, 32, 4032, 384, 0, 768, 256, 256, cf_sgemm_ukr_14x32__avx512}, 3},
#endif
};

static cf_sgemm_config configs[CF_ISA_COUNT];
static int configs_ready = 0;

static void derive_configs(void) {
    const cf_cache_sizes caches = cf_cpu_cache_sizes();
    for (int isa = 0; isa < CF_ISA_COUNT; ++isa) {
        cf_sgemm_config c = fixed[isa].base;
        if (fixed[isa].nc_l2_quarters > 0) {
            const int64_t bytes = caches.l2 / 4 * fixed[isa].nc_l2_quarters;
            int64_t nc = bytes / (c.kc * (int64_t)sizeof(float)) / c.nr * c.nr;
            c.nc = CF_MIN(CF_MAX(nc, 8 * c.nr), 64 * c.nr);
        }
        configs[isa] = c;
    }
}

const cf_sgemm_config *cf_sgemm_config_for(cf_isa isa) {
    if ((int)isa < 0 || (int)isa >= CF_ISA_COUNT) isa = CF_ISA_GENERIC;
#if !defined(__x86_64__)
    isa = CF_ISA_GENERIC;
#endif
    if (!__atomic_load_n(&configs_ready, __ATOMIC_ACQUIRE)) {
        derive_configs();  /* idempotent: concurrent first callers write the same values */
        __atomic_store_n(&configs_ready, 1, __ATOMIC_RELEASE);
    }
    return &configs[isa];
}

void cf_sgemm_blocking(int64_t *mr, int64_t *nr, int64_t *mc, int64_t *kc, int64_t *nc) {
    const cf_sgemm_config *cfg = cf_sgemm_config_for(cf_get_isa());
    if (mr) *mr = cfg->mr;
    if (nr) *nr = cfg->nr;
    if (mc) *mc = cfg->mc;
    if (kc) *kc = cfg->kc;
    if (nc) *nc = cfg->nc;
}

