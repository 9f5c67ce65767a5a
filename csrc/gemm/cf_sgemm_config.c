/*
 * cf_sgemm_config.c — per-ISA micro-kernel and block sizes (BLIS's bli_cntx_init_<arch>).
 *
 * Loop nest (cf_sgemm.c): MC rows of A are packed per KC slice (Ã, L3), NC columns of B per KC
 * slice (B̃, L2); the innermost loop walks the NR-wide B micro-panels while one MR x KC micro-panel
 * of A stays in L1. Sizes for Zen 4 (L1d 32 KiB, L2 1 MiB per core, L3 32 MiB shared):
 *
 *   AVX-512 14x32: A micro-panel 14*384*4 = 21 KiB (L1); B̃ 384*512*4 = 768 KiB (L2);
 *                  Ã 4032*384*4 = 6.2 MiB per thread (L3).   (BLIS zen4 32x12: 512/480/6144
 *                  for the transposed orientation.)
 *   AVX2 6x16:     A micro-panel 6*256*4 = 6 KiB (L1); B̃ 256*512*4 = 512 KiB (L2);
 *                  Ã 4080*256*4 = 4 MiB (L3).
 *   generic 4x16:  small blocks; this path is the portable reference, not a fast one.
 *
 * pack_a_min_n / pack_b_min_m: packing a block costs a copy per element and, for a large A,
 * a pass over memory that the in-place path overlaps with the FMAs; it is paid back by reuse
 * (A by a thread's N / NR tiles, B by its M / MR tiles). Below these sizes the operands are read
 * in place (the small-shape path: dense layers at batch 64, conv GEMMs with N = 32 or 64).
 * Measured on Zen 4 (1 thread, AVX-512): 8192x288x64 runs at ~103 GFLOP/s in place vs ~57
 * packed; 4096x288x512 ~100 vs ~95; from N ~ 1024 packing A wins (2048x1000x1024: 97 vs 90).
 */
#include "gemm/cf_sgemm_internal.h"
#include "cnnfast/gemm.h"

static const cf_sgemm_config configs[CF_ISA_COUNT] = {
    [CF_ISA_GENERIC] = {4, 16, 1024, 256, 256, 128, 128, cf_sgemm_ukr_4x16__generic},
#if defined(__x86_64__)  /* portable builds compile no AVX files and only run the generic path */
    [CF_ISA_AVX2] = {6, 16, 4080, 256, 512, 768, 256, cf_sgemm_ukr_6x16__avx2},
    [CF_ISA_AVX512] = {14, 32, 4032, 384, 512, 768, 256, cf_sgemm_ukr_14x32__avx512},
#endif
};

const cf_sgemm_config *cf_sgemm_config_for(cf_isa isa) {
    if ((int)isa < 0 || (int)isa >= CF_ISA_COUNT) isa = CF_ISA_GENERIC;
#if !defined(__x86_64__)
    isa = CF_ISA_GENERIC;
#endif
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
