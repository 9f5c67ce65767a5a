/*
 * cf_sgemm.c — the GEMM driver: argument checks, thread partitioning, the Goto/BLIS loop nest.
 *
 * Loop nest run by each thread over its own block of C (rows m0..m1, columns n0..n1):
 *
 *     for ic in M by MC:                 Ã: MC x KC rows of A, packed        (L3)
 *       for pc in K by KC:                 (beta on the first slice, bias + ReLU on the last)
 *         pack Ã
 *         for jc in N by NC:             B̃: KC x NC of B, packed             (L2)
 *           pack B̃
 *           for ir in MC by MR:          one MR x KC micro-panel of Ã         (L1)
 *             for jr in NC by NR:        one KC x NR micro-panel of B̃, streamed from L2
 *               micro-kernel: MR x NR tile of C, epilogue applied from registers
 *
 * The A micro-panel (the broadcast operand) stays in L1 and the B micro-panels (the vector
 * operand) stream from L2, as in BLIS's skx/zen4 configuration for the transposed orientation.
 *
 * Small-shape path. Packing costs about one copy per element and pays off only through reuse:
 * Ã is reused by a thread's N / NR column tiles, B̃ by its M / MR row tiles. For skinny shapes
 * (the conv GEMMs have N = 32 or 64; dense layers have M = batch = 64) a plain operand is read in
 * place instead: the micro-kernels accept A with unit k stride (A) or unit row stride (A^T) and B
 * with unit column stride (untransposed B); only the ragged edge micro-panel is copied into a
 * zero-padded buffer. B^T is always packed (its rows are not contiguous along N).
 *
 * Threads. C is split into a tm x tn grid of blocks on micro-tile boundaries, chosen to minimise
 * the tiles per thread and then the packing volume; each thread runs the loop nest above on its
 * block with its own packing buffers (cf_workspace), so there is no barrier and no shared write.
 * Each C element is accumulated by one thread, in k order, in KC slices that depend only on K,
 * so the result is the same for any thread count and bit-identical from run to run.
 * Products under ~2 MFLOP run on one thread (a fork/join costs more than it saves).
 */
#include "runtime/cf_internal.h"
#include "cnnfast/gemm.h"
#include "gemm/cf_sgemm_internal.h"

#define CF_SGEMM_MT_MIN_MACS (1 << 20)  /* M*N*K below which one thread is used */

typedef struct {
    cf_sgemm_pack_fn pack;
    const void *ctx;
    const cf_sgemm_strided *raw;  /* non-NULL: a plain matrix that may be read in place */
} operand;

typedef struct {
    int64_t M, N, K, kc;  /* kc: depth of one K slice (depends on K and the ISA only) */
    float alpha, beta;
    float *C;
    int64_t ldc;
    const float *bias;
    int relu;
    operand a, b;
    const cf_sgemm_config *cfg;
} problem;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The loop nest on one block of C. */
static cf_status run_block(const problem *pb, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const cf_sgemm_config *cfg = pb->cfg;
    const int64_t MR = cfg->mr, NR = cfg->nr, K = pb->K, kcb = pb->kc;
    const int64_t mt = m1 - m0, nt = n1 - n0;
    if (mt <= 0 || nt <= 0) return CF_OK;
    const cf_sgemm_strided *ra = pb->a.raw, *rb = pb->b.raw;
    /* A read in place must not have its far stride a multiple of 4 KiB: the MR rows (or the k
     * lines of A^T) of a micro-panel would then share one L1 set and evict each other. */
    const int a_in_place = ra && (ra->stride_x == 1 || ra->stride_k == 1) &&
                           (ra->stride_x == 1 ? ra->stride_k : ra->stride_x) % 1024 != 0;
    const int pack_a = !(a_in_place && nt < cfg->pack_a_min_n);
    const int pack_b = !(rb && rb->stride_x == 1 && mt < cfg->pack_b_min_m);
    const int64_t mc_step = pack_a ? cfg->mc : mt;
    /* Packed: room for a whole block; read in place: room for one ragged edge micro-panel. */
    const int64_t a_rows = pack_a ? CF_MIN(cfg->mc, CF_ROUND_UP(mt, MR)) : MR;
    const int64_t b_cols = pack_b ? CF_MIN(cfg->nc, CF_ROUND_UP(nt, NR)) : NR;
    float *abuf = (float *)cf_workspace(0, (size_t)(a_rows * kcb) * sizeof(float));
    float *bbuf = (float *)cf_workspace(1, (size_t)(b_cols * kcb) * sizeof(float));
    if (abuf == NULL || bbuf == NULL) return CF_ERR_NOMEM;

    for (int64_t ic = m0; ic < m1; ic += mc_step) {
        const int64_t mc = CF_MIN(mc_step, m1 - ic);
        for (int64_t pc = 0; pc < K; pc += kcb) {
            const int64_t kc = CF_MIN(kcb, K - pc);
            const int last = pc + kc == K;
            cf_sgemm_epi ep = {pb->alpha, pc == 0 ? pb->beta : 1.0f, NULL, last && pb->relu};
            if (pack_a) pb->a.pack(pb->a.ctx, ic, pc, mc, kc, MR, abuf);
            for (int64_t jc = n0; jc < n1; jc += cfg->nc) {
                const int64_t nc = CF_MIN(cfg->nc, n1 - jc);
                /* In place, full NR-wide micro-panels are read from B; the ragged one is padded. */
                const int64_t nc_full = pack_b ? nc : nc - nc % NR;
                if (pack_b) pb->b.pack(pb->b.ctx, jc, pc, nc, kc, NR, bbuf);
                else if (nc_full < nc) pb->b.pack(pb->b.ctx, jc + nc_full, pc, nc - nc_full, kc, NR, bbuf);
                for (int64_t ir = 0; ir < mc; ir += MR) {
                    const int64_t m = CF_MIN(MR, mc - ir);
                    const float *ap;
                    int64_t rs_a = 1, cs_a = MR;
                    if (pack_a) {
                        ap = abuf + ir * kc;
                    } else if (m == MR) {
                        ap = ra->data + (ic + ir) * ra->stride_x + pc * ra->stride_k;
                        rs_a = ra->stride_x;
                        cs_a = ra->stride_k;
                    } else {
                        pb->a.pack(pb->a.ctx, ic + ir, pc, m, kc, MR, abuf);
                        ap = abuf;
                    }
                    float *crow = pb->C + (ic + ir) * pb->ldc;
                    for (int64_t jr = 0; jr < nc; jr += NR) {
                        const int64_t n = CF_MIN(NR, nc - jr);
                        const float *bp = bbuf;
                        int64_t rs_b = NR;
                        if (pack_b) {
                            bp = bbuf + jr * kc;
                        } else if (jr < nc_full) {
                            bp = rb->data + (jc + jr) + pc * rb->stride_k;
                            rs_b = rb->stride_k;
                        }
                        ep.bias = last && pb->bias ? pb->bias + jc + jr : NULL;
                        cfg->ukr(kc, ap, rs_a, cs_a, bp, rs_b, crow + jc + jr, pb->ldc, m, n, &ep);
                    }
                }
            }
        }
    }
    return CF_OK;
}

/* Split C into tm x tn blocks (tm * tn <= nthr) on micro-tile boundaries: fewest tiles for the
 * busiest thread first, then the smallest packing volume (rows + columns of a block). */
static void choose_grid(int64_t M, int64_t N, int64_t MR, int64_t NR, int nthr, int *tm, int *tn) {
    const int64_t tiles_m = ceil_div(M, MR), tiles_n = ceil_div(N, NR);
    int64_t best_tiles = INT64_MAX, best_perim = INT64_MAX;
    *tm = *tn = 1;
    for (int a = 1; a <= nthr; ++a) {
        for (int b = 1; a * b <= nthr; ++b) {
            if (a > tiles_m || b > tiles_n) continue;
            const int64_t rows = ceil_div(tiles_m, a), cols = ceil_div(tiles_n, b);
            const int64_t tiles = rows * cols, perim = rows * MR + cols * NR;
            if (tiles < best_tiles || (tiles == best_tiles && perim < best_perim)) {
                best_tiles = tiles;
                best_perim = perim;
                *tm = a;
                *tn = b;
            }
        }
    }
}

static cf_status run_cell(const problem *pb, int cell, int tm, int tn) {
    const int64_t MR = pb->cfg->mr, NR = pb->cfg->nr;
    const cf_range rm = cf_split(ceil_div(pb->M, MR), cell / tn, tm);
    const cf_range rn = cf_split(ceil_div(pb->N, NR), cell % tn, tn);
    return run_block(pb, rm.begin * MR, CF_MIN(rm.end * MR, pb->M),
                     rn.begin * NR, CF_MIN(rn.end * NR, pb->N));
}

/* C = relu?(beta * C + bias): the whole result when K == 0 or alpha == 0. */
static void epilogue_only(const problem *pb) {
    for (int64_t i = 0; i < pb->M; ++i) {
        float *c = pb->C + i * pb->ldc;
        for (int64_t j = 0; j < pb->N; ++j) {
            float v = pb->beta != 0.0f ? pb->beta * c[j] : 0.0f;
            if (pb->bias) v += pb->bias[j];
            if (pb->relu && v < 0.0f) v = 0.0f;
            c[j] = v;
        }
    }
}

static cf_status run(problem *pb) {
    if (pb->M == 0 || pb->N == 0) return CF_OK;
    if (pb->K == 0 || pb->alpha == 0.0f) {
        epilogue_only(pb);
        return CF_OK;
    }
    pb->cfg = cf_sgemm_config_for(cf_get_isa());
    pb->kc = ceil_div(pb->K, ceil_div(pb->K, pb->cfg->kc));  /* balanced slices, <= KC */

    const double macs = (double)pb->M * (double)pb->N * (double)pb->K;
    int tm = 1, tn = 1;
    int nested = 0;
#ifdef CNNFAST_HAVE_OPENMP
    nested = omp_in_parallel();  /* called from a caller's parallel region: stay on this thread */
#endif
    if (macs >= CF_SGEMM_MT_MIN_MACS && !nested)
        choose_grid(pb->M, pb->N, pb->cfg->mr, pb->cfg->nr, cf_get_num_threads(), &tm, &tn);
    const int cells = tm * tn;
    cf_status status = CF_OK;
    if (cells == 1) {
        CF_FTZ_BEGIN;
        status = run_cell(pb, 0, 1, 1);
        CF_FTZ_END;
        return status;
    }
#pragma omp parallel num_threads(cells)
    {
        CF_FTZ_BEGIN;
        const int t = cf_thread_id(), nthr = cf_thread_count();
        for (int cell = t; cell < cells; cell += nthr) {
            const cf_status s = run_cell(pb, cell, tm, tn);
            if (s != CF_OK) {
#pragma omp critical(cf_sgemm_status)
                status = s;
            }
        }
        CF_FTZ_END;
    }
    return status;
}

cf_status cf_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                   float *C, int64_t ldc, const float *bias, int relu) {
    if (M < 0 || N < 0 || K < 0) return CF_ERR_ARGUMENT;
    if (M == 0 || N == 0) return CF_OK;
    if (C == NULL || ldc < N) return CF_ERR_ARGUMENT;
    if (K > 0) {
        if (A == NULL || B == NULL) return CF_ERR_ARGUMENT;
        if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N)) return CF_ERR_ARGUMENT;
    }
    const cf_sgemm_strided sa = {A, trans_a ? 1 : lda, trans_a ? lda : 1};
    const cf_sgemm_strided sb = {B, trans_b ? ldb : 1, trans_b ? 1 : ldb};
    problem pb = {.M = M, .N = N, .K = K, .alpha = alpha, .beta = beta, .C = C, .ldc = ldc,
                  .bias = bias, .relu = relu,
                  .a = {cf_sgemm_pack_strided, &sa, &sa}, .b = {cf_sgemm_pack_strided, &sb, &sb}};
    return run(&pb);
}

cf_status cf_sgemm_ex(int64_t M, int64_t N, int64_t K, float alpha, cf_sgemm_pack_fn pack_a,
                      const void *ctx_a, cf_sgemm_pack_fn pack_b, const void *ctx_b, float beta,
                      float *C, int64_t ldc, const float *bias, int relu) {
    if (M < 0 || N < 0 || K < 0) return CF_ERR_ARGUMENT;
    if (M == 0 || N == 0) return CF_OK;
    if (C == NULL || ldc < N) return CF_ERR_ARGUMENT;
    if (K > 0 && (pack_a == NULL || pack_b == NULL)) return CF_ERR_ARGUMENT;
    problem pb = {.M = M, .N = N, .K = K, .alpha = alpha, .beta = beta, .C = C, .ldc = ldc,
                  .bias = bias, .relu = relu, .a = {pack_a, ctx_a, NULL}, .b = {pack_b, ctx_b, NULL}};
    return run(&pb);
}
