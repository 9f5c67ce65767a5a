/*
 * cf_sgemm_internal.h — what the GEMM loop nest (cf_sgemm.c) shares with the micro-kernels
 * (csrc/gemm/ukr) and the per-ISA configuration (cf_sgemm_config.c). Not part of the public interface.
 *
 * Micro-kernel contract (every ISA):
 *
 *     ukr(k, a, rs_a, cs_a, b, rs_b, c, ldc, m, n, ep)
 *
 * computes the MR x NR tile  T[i][j] = sum_{p < k} a[i*rs_a + p*cs_a] * b[p*rs_b + j]
 * (accumulated in float32, p increasing, one fused multiply-add per step where the ISA has FMA)
 * and writes the top-left m x n corner (1 <= m <= MR, 1 <= n <= NR) of
 *
 *     C = T * alpha + (beta != 0 ? beta * C : 0) + bias[j];   C = max(0, C) if relu, min(6, .) too if relu == CF_SGEMM_RELU6
 *
 * to c[i*ldc + j]. The kernel reads all MR rows of `a` and all NR columns of `b` (the caller pads
 * edge panels), except that a kernel may skip the upper half of b when n <= NR/2. `a` must have
 * rs_a == 1 (a packed panel, or A^T read in place) or cs_a == 1 (A read in place); k may be 0.
 * ReLU keeps NaN (max(0, NaN) = NaN, as NumPy's maximum and torch.relu do).
 */
#ifndef CF_SGEMM_INTERNAL_H
#define CF_SGEMM_INTERNAL_H

#include <stdint.h>
#include "cnnfast/runtime.h"
#include "cnnfast/gemm.h"

/* What happens to a finished tile. */
typedef struct {
    float alpha;          /* scale of the product */
    float beta;           /* scale of the old C; 0: C is not read */
    const float *bias;    /* bias of the tile's first column, or NULL */
    int relu;             /* 0, CF_SGEMM_RELU or CF_SGEMM_RELU6 (cnnfast/gemm.h), last */
} cf_sgemm_epi;

typedef void (*cf_sgemm_ukr_fn)(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                const float *b, int64_t rs_b, float *c, int64_t ldc,
                                int64_t m, int64_t n, const cf_sgemm_epi *ep);

/* One ISA path: its micro-kernel and block sizes (see cf_sgemm_config.c for the reasoning). */
typedef struct {
    int64_t mr, nr;        /* micro-tile: rows (broadcast from A) x columns (vectors of B) */
    int64_t mc;            /* rows of A packed at once (L3-resident block) */
    int64_t kc;            /* depth of one packed block (A micro-panel MR x KC stays in L1) */
    int64_t nc;            /* columns of B packed at once (KC x NC block stays in L2) */
    int64_t pack_a_min_n;  /* pack A when a thread's share of N is at least this */
    int64_t pack_b_min_m;  /* pack (untransposed) B when a thread's share of M is at least this */
    int64_t pack_wide_b_min_m;  /* the same for a B too large for the narrow path (cf_sgemm.c) */
    cf_sgemm_ukr_fn ukr;
} cf_sgemm_config;

const cf_sgemm_config *cf_sgemm_config_for(cf_isa isa);

void cf_sgemm_ukr_4x16__generic(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                const float *b, int64_t rs_b, float *c, int64_t ldc,
                                int64_t m, int64_t n, const cf_sgemm_epi *ep);
void cf_sgemm_ukr_6x16__avx2(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                             const float *b, int64_t rs_b, float *c, int64_t ldc,
                             int64_t m, int64_t n, const cf_sgemm_epi *ep);
void cf_sgemm_ukr_14x32__avx512(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                const float *b, int64_t rs_b, float *c, int64_t ldc,
                                int64_t m, int64_t n, const cf_sgemm_epi *ep);

/* C rows [0, M) for a few rows of A (any strides a_rs, a_cs) times an untransposed B read in
 * place (row stride ldb): one GEMV per row, vectorised over N (cf_sgemv.inc). */
typedef void (*cf_sgemv_rows_fn)(int64_t M, int64_t N, int64_t K, const float *A, int64_t a_rs,
                                 int64_t a_cs, const float *B, int64_t ldb, float *C, int64_t ldc,
                                 const cf_sgemm_epi *ep);
void cf_sgemv_rows__generic(int64_t M, int64_t N, int64_t K, const float *A, int64_t a_rs,
                            int64_t a_cs, const float *B, int64_t ldb, float *C, int64_t ldc,
                            const cf_sgemm_epi *ep);
void cf_sgemv_rows__avx2(int64_t M, int64_t N, int64_t K, const float *A, int64_t a_rs,
                         int64_t a_cs, const float *B, int64_t ldb, float *C, int64_t ldc,
                         const cf_sgemm_epi *ep);
void cf_sgemv_rows__avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t a_rs,
                           int64_t a_cs, const float *B, int64_t ldb, float *C, int64_t ldc,
                           const cf_sgemm_epi *ep);

/* FMA throughput probes: `iterations` rounds of independent FMAs; returns a value that depends on
 * every accumulator so the loop cannot be removed. x, y keep the values bounded. */
float cf_fma_probe__avx512(int64_t iterations, float x, float y);  /* 24 zmm FMAs per round */
float cf_fma_probe__avx2(int64_t iterations, float x, float y);    /* 12 ymm FMAs per round */

#endif /* CF_SGEMM_INTERNAL_H */
