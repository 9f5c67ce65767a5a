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
 * When a thread's whole B (all K slices) is small — the convolution GEMMs, N = 32 or 64 — B is
 * prepared once and A is packed in L2-sized blocks just before use instead (packers that gather
 * an implicit im2col then write to L2, not L3).
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
 * Products under ~8 MFLOP run on one thread (a fork/join costs more than it saves).
 */
#include "runtime/cf_internal.h"
#include "cnnfast/gemm.h"
#include "gemm/cf_sgemm_internal.h"

#define CF_SGEMM_MT_MIN_MACS (1 << 22)          /* M*N*K below which one thread is used: waking a
                                                   worker costs 20-200 us on a VM; a batch-64
                                                   64x576x64 dense GEMM (2.4M) took 0.07 ms on one
                                                   thread and 0.11-0.13 ms on two */
#define CF_SGEMM_NARROW_B_BYTES (256 * 1024)   /* a thread's whole B up to this: packed once */
#define CF_SGEMM_L2_A_BYTES (512 * 1024)       /* packed A block when B is narrow (L2: 1 MiB) */

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

/* Few rows (a batch-1 dense layer): one GEMV per row beats a 14-row micro-tile that would be
 * mostly empty, and B needs no packing (cf_sgemv.inc). */
#define CF_SGEMV_MAX_ROWS 2

static cf_sgemv_rows_fn sgemv_for_isa(void) {
    switch (cf_get_isa()) {
#if defined(__x86_64__)  /* portable builds compile no AVX files */
        case CF_ISA_AVX512: return cf_sgemv_rows__avx512;
        case CF_ISA_AVX2: return cf_sgemv_rows__avx2;
#endif
        default: return cf_sgemv_rows__generic;
    }
}

/* The GEMV of a few rows: B is streamed once, so it is memory-bound like the element-wise
 * kernels and, like them, runs on several threads only from cf_get_parallel_min_bytes() of B
 * (cnnfast/runtime.h: 16 MiB by default, where waking a sleeping worker costs more than it saves;
 * lowered when the workers spin between parallel regions). The columns are then split between
 * the threads, each streaming its share, into its own core's L2 when it fits (a batch-1 dense
 * layer of 1600x128 is 800 KiB). Splits fall on CF_SGEMV_COLUMN_STEP columns, a multiple of
 * every ISA's 4-vector block, so each column is summed by the same code, in the same order, for
 * any thread count. */
#define CF_SGEMV_COLUMN_STEP 64

static void run_sgemv(int64_t M, int64_t N, int64_t K, const float *A, int64_t a_rs, int64_t a_cs,
                      const float *B, int64_t ldb, float *C, int64_t ldc, float alpha, float beta,
                      const float *bias, int relu) {
    const cf_sgemv_rows_fn gemv = sgemv_for_isa();
    const int64_t steps = ceil_div(N, CF_SGEMV_COLUMN_STEP);
    int nt = 1;
#ifdef CNNFAST_HAVE_OPENMP
    if ((double)K * (double)N * sizeof(float) >= (double)cf_get_parallel_min_bytes() &&
        !omp_in_parallel())
        nt = cf_threads_for(steps);
#endif
    if (nt == 1) {
        const cf_sgemm_epi ep = {alpha, beta, bias, relu};
        CF_FTZ_BEGIN;
        gemv(M, N, K, A, a_rs, a_cs, B, ldb, C, ldc, &ep);
        CF_FTZ_END;
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        CF_FTZ_BEGIN;
        const cf_range rg = cf_split(steps, cf_thread_id(), cf_thread_count());
        const int64_t j0 = rg.begin * CF_SGEMV_COLUMN_STEP;
        const int64_t j1 = CF_MIN(N, rg.end * CF_SGEMV_COLUMN_STEP);
        if (j1 > j0) {
            const cf_sgemm_epi ep = {alpha, beta, bias ? bias + j0 : NULL, relu};
            gemv(M, j1 - j0, K, A, a_rs, a_cs, B + j0, ldb, C + j0, ldc, &ep);
        }
        CF_FTZ_END;
    }
}

/* One thread's view of the loop nest: its packing decisions and buffers. */
typedef struct {
    const problem *pb;
    int pack_a, pack_b;
    float *abuf, *bbuf;
} nest;

/* Make columns jc .. jc+nc of B ready for K slice pc .. pc+kc, in `dst`: pack them, or (B read in
 * place) pad just the ragged last micro-panel. Returns how many columns are read in place. */
static int64_t prepare_b(const nest *ns, int64_t jc, int64_t nc, int64_t pc, int64_t kc, float *dst) {
    const problem *pb = ns->pb;
    const int64_t NR = pb->cfg->nr;
    if (ns->pack_b) {
        pb->b.pack(pb->b.ctx, jc, pc, nc, kc, NR, dst);
        return 0;
    }
    const int64_t nc_full = nc - nc % NR;
    if (nc_full < nc) pb->b.pack(pb->b.ctx, jc + nc_full, pc, nc - nc_full, kc, NR, dst);
    return nc_full;
}

/* C[ic .. ic+mc, jc .. jc+nc] (+)= A[ic.., pc..pc+kc] B[pc.., jc..]: the MR x NR tiles, A either
 * packed in ns->abuf (for these rows and this slice) or read in place; B packed in `bp0` or read
 * in place for its first nc_full columns. */
static void macro_kernel(const nest *ns, int64_t ic, int64_t mc, int64_t jc, int64_t nc,
                         int64_t pc, int64_t kc, const float *bp0, int64_t nc_full) {
    const problem *pb = ns->pb;
    const cf_sgemm_config *cfg = pb->cfg;
    const int64_t MR = cfg->mr, NR = cfg->nr;
    const cf_sgemm_strided *ra = pb->a.raw, *rb = pb->b.raw;
    const int last = pc + kc == pb->K;
    cf_sgemm_epi ep = {pb->alpha, pc == 0 ? pb->beta : 1.0f, NULL, last ? pb->relu : 0};
    for (int64_t ir = 0; ir < mc; ir += MR) {
        const int64_t m = CF_MIN(MR, mc - ir);
        const float *ap = ns->abuf + ir * kc;
        int64_t rs_a = 1, cs_a = MR;
        if (!ns->pack_a) {
            if (m == MR) {
                ap = ra->data + (ic + ir) * ra->stride_x + pc * ra->stride_k;
                rs_a = ra->stride_x;
                cs_a = ra->stride_k;
            } else {  /* the ragged last micro-panel, padded with zero rows */
                pb->a.pack(pb->a.ctx, ic + ir, pc, m, kc, MR, ns->abuf);
                ap = ns->abuf;
            }
        }
        float *crow = pb->C + (ic + ir) * pb->ldc;
        for (int64_t jr = 0; jr < nc; jr += NR) {
            const int64_t n = CF_MIN(NR, nc - jr);
            const float *bp = ns->pack_b ? bp0 + jr * kc : bp0;
            int64_t rs_b = NR;
            if (jr < nc_full) {
                bp = rb->data + (jc + jr) + pc * rb->stride_k;
                rs_b = rb->stride_k;
            }
            ep.bias = last && pb->bias ? pb->bias + jc + jr : NULL;
            cfg->ukr(kc, ap, rs_a, cs_a, bp, rs_b, crow + jc + jr, pb->ldc, m, n, &ep);
        }
    }
}

/* The loop nest on one block of C (rows m0..m1, columns n0..n1). */
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
    const int64_t b_cols = CF_ROUND_UP(nt, NR);
    const int narrow_b = (size_t)(K * b_cols) * sizeof(float) <= CF_SGEMM_NARROW_B_BYTES;
    const int64_t pack_b_min_m = narrow_b ? cfg->pack_b_min_m : cfg->pack_wide_b_min_m;
    nest ns = {pb, !(a_in_place && nt < cfg->pack_a_min_n),
               !(rb && rb->stride_x == 1 && mt < pack_b_min_m), NULL, NULL};

    /* Narrow C (all of this thread's B, every K slice, fits in CF_SGEMM_NARROW_B_BYTES: the conv
     * GEMMs with N = 32 or 64): prepare B once, then walk A in blocks of rows sized for L2, all
     * K slices of a block in turn: a packed A block is written to and read back from L2, and the
     * block's rows of C stay in cache from one K slice to the next. */
    if (narrow_b) {
        const int64_t mc_step = CF_MAX(MR, CF_SGEMM_L2_A_BYTES / (kcb * 4) / MR * MR);
        const int64_t a_rows = ns.pack_a ? CF_MIN(mc_step, CF_ROUND_UP(mt, MR)) : MR;
        const int64_t b_floats = ns.pack_b ? K * b_cols : K * NR;  /* in place: edge panels */
        ns.abuf = (float *)cf_workspace(0, (size_t)(a_rows * kcb) * sizeof(float));
        ns.bbuf = (float *)cf_workspace(1, (size_t)b_floats * sizeof(float));
        if (ns.abuf == NULL || ns.bbuf == NULL) return CF_ERR_NOMEM;
        int64_t nc_full = 0;
        for (int64_t pc = 0; pc < K; pc += kcb)  /* slice pc starts at (pc * width) floats */
            nc_full = prepare_b(&ns, n0, nt, pc, CF_MIN(kcb, K - pc),
                                ns.bbuf + pc * (ns.pack_b ? b_cols : NR));
        for (int64_t ic = m0; ic < m1; ic += mc_step) {
            const int64_t mc = CF_MIN(mc_step, m1 - ic);
            for (int64_t pc = 0; pc < K; pc += kcb) {
                const int64_t kc = CF_MIN(kcb, K - pc);
                if (ns.pack_a) pb->a.pack(pb->a.ctx, ic, pc, mc, kc, MR, ns.abuf);
                macro_kernel(&ns, ic, mc, n0, nt, pc, kc, ns.bbuf + pc * (ns.pack_b ? b_cols : NR),
                             nc_full);
            }
        }
        return CF_OK;
    }

    /* General case: Ã blocks of MC rows (L3), B̃ blocks of NC columns (L2). */
    const int64_t mc_step = ns.pack_a ? cfg->mc : mt;
    const int64_t a_rows = ns.pack_a ? CF_MIN(cfg->mc, CF_ROUND_UP(mt, MR)) : MR;
    const int64_t b_width = ns.pack_b ? CF_MIN(cfg->nc, b_cols) : NR;
    ns.abuf = (float *)cf_workspace(0, (size_t)(a_rows * kcb) * sizeof(float));
    ns.bbuf = (float *)cf_workspace(1, (size_t)(b_width * kcb) * sizeof(float));
    if (ns.abuf == NULL || ns.bbuf == NULL) return CF_ERR_NOMEM;
    for (int64_t ic = m0; ic < m1; ic += mc_step) {
        const int64_t mc = CF_MIN(mc_step, m1 - ic);
        for (int64_t pc = 0; pc < K; pc += kcb) {
            const int64_t kc = CF_MIN(kcb, K - pc);
            if (ns.pack_a) pb->a.pack(pb->a.ctx, ic, pc, mc, kc, MR, ns.abuf);
            for (int64_t jc = n0; jc < n1; jc += cfg->nc) {
                const int64_t nc = CF_MIN(cfg->nc, n1 - jc);
                const int64_t nc_full = prepare_b(&ns, jc, nc, pc, kc, ns.bbuf);
                macro_kernel(&ns, ic, mc, jc, nc, pc, kc, ns.bbuf, nc_full);
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
            if (pb->relu == CF_SGEMM_RELU6 && v > 6.0f) v = 6.0f;
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
    if (K > 0 && M <= CF_SGEMV_MAX_ROWS && !trans_b && alpha != 0.0f) {
        run_sgemv(M, N, K, A, trans_a ? 1 : lda, trans_a ? lda : 1, B, ldb, C, ldc, alpha, beta,
                  bias, relu);
        return CF_OK;
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
