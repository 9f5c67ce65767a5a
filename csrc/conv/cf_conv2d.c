/*
 * cf_conv2d.c — the convolution entry points: validation, algorithm choice, weight packing, the
 * parallel region, and the fixed-order reductions of backward-filter. Baseline ISA; the register
 * kernels live in cf_conv2d_{generic,_avx2,_avx512}.c and are picked per call from cf_get_isa().
 *
 * Algorithms (CF_CONV_ALGO_AUTO picks the first that applies: DEPTHWISE, WINOGRAD, IGEMM)
 *   IGEMM: NHWC implicit GEMM without an im2col buffer. Forward is one "gather problem" per group
 *     (see cf_conv_internal.h): output rows are split statically over the threads, each row is cut
 *     into balanced tiles of at most RMAX pixels, and each tile x (NB output channels) is one
 *     register-blocked kernel call summing over every valid tap and input channel. Weights are
 *     repacked once per call, per group, into [block][kh][kw][cin][NB] panels so that a tap's
 *     cin x NB slice is contiguous and zero-padded (no masks in the inner loop); the bias is
 *     packed alongside. With at most 4 output channels per group the weights are packed
 *     [kh][kw][o][cin] instead and a tile whose vectors run along cin is used.
 *     Backward-data is the same kernel run on dy with the transposed, flipped weights
 *     ([block of cin][kh][kw][cout][NB]). With stride s > 1 the input pixels split into s_h * s_w
 *     phases (ih mod s_h, iw mod s_w); within a phase the contributing taps form a regular
 *     sub-grid and the dy pixels are contiguous, so each phase is again a dense gather problem
 *     and no pixel is written twice (no atomics, no zero-fill pass).
 *     Backward-filter: per-thread private dW (padded to NB) accumulated by an outer-product kernel
 *     over blocks of output rows (about 256 pixels, so the input window and dy block stay in
 *     L1/L2); the bias gradient is summed in the same pass. After one barrier the threads reduce
 *     disjoint slices of dW over the private copies in thread order: deterministic for a given
 *     thread count. The accumulator rows are (tap, cin) pairs taken in chunks that run across
 *     taps, so the register tile stays full even for cin = 1 or 3.
 *   WINOGRAD F(2x2, 3x3) (3x3, stride 1, dilation 1, groups 1, cin and cout >= 16): 16 GEMMs on
 *     2x2 output tiles instead of 36 multiply-adds per tile: 2.25x fewer FLOPs for the same
 *     result up to rounding (about 3e-7 relative here). Forward: input transform, GEMMs, output
 *     transform with bias and ReLU, per block of ~48 tiles held in L2. Backward-data: the same
 *     on dy with flipped weights, or — for 'valid'-like layers, whose backward-data is a 'full'
 *     convolution — by transposition from the dy tiles, one image per work item. Backward-filter:
 *     F(3x3, 2x2) with the sum over tiles taken in the transform domain (per-thread P, reduced in
 *     thread order, then dW = G^T P G once).
 *   DEPTHWISE (c == groups, multiplier < VLEN): direct loops vectorised over channels.
 *   IM2COL (forward, groups 1, weights over CF_IM2COL_MIN_WEIGHT_BYTES): the implicit GEMM reads
 *     all the weights once per output row, which is right while they stay in L2 and wrong for the
 *     deep layers of ResNets at small batches (3x3x512x512 = 9.4 MB on a 7x7 map: 7 passes over
 *     9.4 MB per image, 5.9 ms for 231 MFLOP). Here the patches of a chunk of images (at most
 *     CF_IM2COL_BUDGET_BYTES) are copied into a matrix and one sgemm against the HWIO weights,
 *     seen as (kh*kw*c, cout), reads them once per chunk.
 *   GEMM (1x1, stride 1, no padding, groups 1): the NHWC input is already the (n*h*w, c) matrix
 *     and the HWIO weights the (c, cout) one, so forward is cf_sgemm with the bias and ReLU in its
 *     epilogue, and backward-data is dy @ W^T: no weight repacking per call, the GEMM's blocking
 *     and threading (the 7x7x320 -> 1280 layer of MobileNetV2 ran 1.8x faster than IGEMM).
 *
 * Threads: one parallel region per call, static contiguous split of output rows (work items),
 * FTZ/DAZ inside; problems below ~20 MFLOP run on one thread.
 */
#include <string.h>
#include "cnnfast/conv.h"
#include "runtime/cf_internal.h"
#include "cf_conv_internal.h"
#include "pool/cf_pool_internal.h"
#include "cnnfast/gemm.h"

#define CF_CONV_SERIAL_FLOPS 2.0e7   /* below this (~0.2 ms), one thread: waking a worker costs
                                        20-200 us on a VM (CIFAR batch-1 latency: 383 us on two
                                        threads, 126 us on one) */
#define CF_CONV_BWF_PIXELS 256       /* target output pixels per backward-filter work item */
#define CF_IM2COL_MIN_WEIGHT_BYTES (1 << 20)  /* weights past L2's share: patches + one GEMM */
#define CF_IM2COL_BUDGET_BYTES (8 << 20)      /* patch matrix per chunk of images */
#define CF_WINO_MIN_CHANNELS 16      /* auto-select Winograd when cin and cout are at least this */
#define CF_WINO_FWD_TILES 48         /* target 2x2 tiles per Winograd forward work item */
#define CF_WINO_BWF_TILES 64         /* target 2x2 tiles per Winograd backward-filter work item */

static const cf_conv_kernels *kernels_for_isa(void) {
    switch (cf_get_isa()) {
        case CF_ISA_AVX512: return &cf_conv_kernels_avx512;
        case CF_ISA_AVX2: return &cf_conv_kernels_avx2;
        default: return &cf_conv_kernels_generic;
    }
}

static int winograd_applies(const cf_conv2d_params *p) {
    return p->kh == 3 && p->kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->dilation_h == 1 &&
           p->dilation_w == 1 && p->groups == 1;
}

/* Pointwise convolutions are plain GEMMs on the NHWC tensors (CF_CONV_ALGO_GEMM). */
static int pointwise_shape(const cf_conv2d_params *p) {
    return p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
           p->pad_left == 0 && p->groups == 1 && p->ho == p->h && p->wo == p->w;
}

static int activation_ok(int activation) {
    return activation == CF_CONV_ACT_NONE || activation == CF_CONV_ACT_RELU || activation == CF_CONV_ACT_RELU6;
}

static int params_ok(const cf_conv2d_params *p) {
    if (p == NULL) return 0;
    if (p->n < 0 || p->h < 0 || p->w < 0 || p->c < 0 || p->cout < 0 || p->ho < 0 || p->wo < 0)
        return 0;
    if (p->kh < 1 || p->kw < 1 || p->stride_h < 1 || p->stride_w < 1 || p->dilation_h < 1 ||
        p->dilation_w < 1 || p->groups < 1 || p->pad_top < 0 || p->pad_left < 0)
        return 0;
    if (p->c % p->groups != 0 || p->cout % p->groups != 0) return 0;
    if (p->algo < CF_CONV_ALGO_AUTO || p->algo > CF_CONV_ALGO_IM2COL) return 0;
    if (p->algo == CF_CONV_ALGO_DEPTHWISE && p->c != p->groups) return 0;
    if (p->algo == CF_CONV_ALGO_GEMM && !pointwise_shape(p)) return 0;
    if (p->algo == CF_CONV_ALGO_IM2COL && p->groups != 1) return 0;
    if (p->algo == CF_CONV_ALGO_WINOGRAD && !winograd_applies(p)) return 0;
    return 1;
}

/* Winograd F(2x2, 3x3) when the shape allows it, both channel counts are large enough for the
 * transforms (O(c + k) per tile) to be small next to the 16 GEMMs (O(c * k) per tile), there are
 * enough tiles to amortise the weight transform (O(c * k) per call), and the 2x2 tiles cover the
 * output well enough to keep most of the 2.25x ("gain": a 3x3 output needs four tiles for nine
 * pixels, 1.27x). Measured crossovers (AVX-512, 1 thread, interleaved runs, us implicit GEMM /
 * Winograd):
 *   forward and backward-data win from ~32 tiles even at gain 1.27: 16x5x5x64->64 189 / 113 and
 *     191 / 144; 8x6x6x64->128 191 / 139 and 310 / 198; 1x13x13x32->64 (36 tiles) 41 / 37 and
 *     62 / 49; but 1x5x5x64->64 (4 tiles) 9 / 22 and 23 / 39;
 *   backward-filter (its transform of P back to 3x3 taps is per (c, k) too) needs gain as well:
 *     64x5x5x64->64 (gain 1.27) 842 / 979, 64x13x13x32->64 3184 / 2734, 8x6x6x64->128 267 / 243. */
typedef enum { WINO_FWD, WINO_BWD_DATA, WINO_BWD_FILTER } wino_direction;

static int use_winograd(const cf_conv2d_params *p, wino_direction dir) {
    static const double min_tiles[] = {32, 32, 32}, min_gain[] = {1.2, 1.2, 1.6};
    if (p->algo == CF_CONV_ALGO_WINOGRAD) return 1;
    if (p->algo != CF_CONV_ALGO_AUTO || !winograd_applies(p)) return 0;
    if (p->c < CF_WINO_MIN_CHANNELS || p->cout < CF_WINO_MIN_CHANNELS) return 0;
    const int64_t nty = (p->ho + 1) / 2, ntx = (p->wo + 1) / 2;
    if (nty == 0 || ntx == 0) return 0;
    const double tiles = (double)p->n * (double)nty * (double)ntx;
    const double gain = 2.25 * (double)(p->ho * p->wo) / (4.0 * (double)(nty * ntx));
    return tiles >= min_tiles[dir] && gain >= min_gain[dir];
}

/* Depthwise loops when every group has one input channel and a small multiplier; the implicit
 * GEMM would waste most of each register tile there. */
static int use_depthwise(const cf_conv2d_params *p, const cf_conv_kernels *K) {
    if (p->algo == CF_CONV_ALGO_DEPTHWISE) return 1;
    if (p->algo == CF_CONV_ALGO_IGEMM) return 0;
    return p->groups > 1 && p->c == p->groups && p->cout / p->groups < K->vlen;
}

static int use_pointwise_gemm(const cf_conv2d_params *p) {
    if (p->algo == CF_CONV_ALGO_GEMM) return 1;
    return p->algo == CF_CONV_ALGO_AUTO && pointwise_shape(p);
}

static int use_im2col(const cf_conv2d_params *p) {
    if (p->algo == CF_CONV_ALGO_IM2COL) return 1;
    const double wbytes = 4.0 * (double)p->kh * (double)p->kw * (double)p->c * (double)p->cout;
    return p->algo == CF_CONV_ALGO_AUTO && p->groups == 1 && wbytes >= CF_IM2COL_MIN_WEIGHT_BYTES;
}

/* Vectors per register tile for `nout` output channels. */
static int choose_nv(int64_t nout, const cf_conv_kernels *K) {
    const int64_t v = K->vlen;
    if (nout <= v) return 1;
    if (nout % (4 * v) == 0 && K->vlen == 16) return 4;
    return 2;
}

/* Few output channels and a real reduction: the vectors-along-k tile (see the kernels). */
static int use_dot(int64_t nout, int64_t k) { return nout >= 1 && nout <= 4 && k >= 8; }

static int threads_for_work(int64_t items, double flops) {
    if (flops < CF_CONV_SERIAL_FLOPS) return 1;
    return cf_threads_for(items);
}

static double conv_flops(const cf_conv2d_params *p) {
    return 2.0 * (double)p->n * (double)p->ho * (double)p->wo * (double)p->cout *
           (double)(p->c / p->groups) * (double)p->kh * (double)p->kw;
}

/* Run a list of gather problems over all their output rows in one parallel region. */
static cf_status run_gather(const cf_conv_kernels *K, const cf_conv_gather *probs, int64_t nprob,
                            int64_t n, double flops) {
    int64_t total = 0, tb_floats = 1;
    for (int64_t q = 0; q < nprob; q++) {
        total += n * probs[q].y_rows;
        const int rmax = probs[q].dot ? K->dot_rows[probs[q].nout] : K->max_rows[probs[q].nv];
        const int64_t f = cf_conv_tilebuf_floats(&probs[q], rmax);
        if (f > tb_floats) tb_floats = f;
    }
    if (total == 0) return CF_OK;
    const int nt = threads_for_work(total, flops);
    int failed = 0;
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const int t = cf_thread_id(), nthr = cf_thread_count();
        const cf_range rg = cf_split(total, t, nthr);
        float *tilebuf = (float *)cf_workspace(1, (size_t)tb_floats * sizeof(float));
        if (tilebuf == NULL) {
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        } else {
            int64_t start = 0;
            for (int64_t q = 0; q < nprob && start < rg.end; q++) {
                const int64_t cnt = n * probs[q].y_rows;
                const int64_t lo = CF_MAX(rg.begin, start), hi = CF_MIN(rg.end, start + cnt);
                if (lo < hi) K->gather_rows(&probs[q], lo - start, hi - start, tilebuf);
                start += cnt;
            }
        }
        CF_FTZ_END;
    }
    return failed ? CF_ERR_NOMEM : CF_OK;
}


/* ------------------------------------------------------------------------------------------ */
/* Winograd F(2x2, 3x3)                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Blocks of about `target` 2x2 tiles: whole tile rows when a row is short, else chunks of one
 * row, so the transform buffers stay in L2 whatever the image width. */
static void wino_blocking(int64_t nty, int64_t ntx, int64_t target, int64_t *rows, int64_t *cols) {
    *cols = CF_MAX(1, CF_MIN(ntx, target));
    *rows = CF_MAX(1, CF_MIN(nty, target / *cols));
}

/* Blocks per image. */
static int64_t wino_blocks(int64_t nty, int64_t rows, int64_t ntx, int64_t cols) {
    return ((nty + rows - 1) / rows) * ((ntx + cols - 1) / cols);
}

/* U[xi][block][ci][NB] = (G g G^T)[xi] for the problem's input channel ci and output channel ko,
 * G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]. g is w[i][j][ci][ko] (mode 0, forward), the flipped,
 * transposed w[2-i][2-j][ko][ci] (mode 1, backward-data as a forward problem) or the transposed
 * w[i][j][ko][ci] (mode 2, backward-data by transposition). w is HWIO with wc input, wk output
 * channels. */
static void wino_weights(const float *w, int64_t wc, int64_t wk, int mode, int64_t c, int64_t k,
                         int64_t NB, float *U) {
    enum { NB_MAX = 64 };  /* 4 AVX-512 vectors: the widest panel choose_nv gives */
    const int64_t nblocks = (k + NB - 1) / NB, u_sb = c * NB, u_sxi = nblocks * u_sb;
    const int64_t step = mode == 0 ? 1 : wk;
    memset(U, 0, (size_t)(16 * u_sxi) * sizeof(float));
    /* Lane-major passes over the panel's output channels l, so each loop is a contiguous
     * vectorisable sweep (the forward's taps are contiguous in l too); this runs once per call
     * and at small batches it used to cost as much as the convolution. */
    float g[9][NB_MAX], t[4][3][NB_MAX];
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t b = 0; b < nblocks; b++) {
            const int64_t nl = CF_MIN(NB, k - b * NB);
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    /* The tap (i, j) of output channels ko = b*NB + l is src[l * step]. */
                    const float *src = mode == 0 ? w + ((i * 3 + j) * wc + ci) * wk + b * NB
                                     : mode == 1 ? w + (((2 - i) * 3 + (2 - j)) * wc + b * NB) * wk + ci
                                                 : w + ((i * 3 + j) * wc + b * NB) * wk + ci;
                    for (int64_t l = 0; l < nl; l++) g[i * 3 + j][l] = src[l * step];
                }
            for (int j = 0; j < 3; j++)
                for (int64_t l = 0; l < nl; l++) {
                    t[0][j][l] = g[j][l];
                    t[1][j][l] = 0.5f * (g[j][l] + g[3 + j][l] + g[6 + j][l]);
                    t[2][j][l] = 0.5f * (g[j][l] - g[3 + j][l] + g[6 + j][l]);
                    t[3][j][l] = g[6 + j][l];
                }
            float *dst = U + b * u_sb + ci * NB;
            for (int i = 0; i < 4; i++) {
                float *d0 = dst + (i * 4 + 0) * u_sxi, *d1 = dst + (i * 4 + 1) * u_sxi;
                float *d2 = dst + (i * 4 + 2) * u_sxi, *d3 = dst + (i * 4 + 3) * u_sxi;
                for (int64_t l = 0; l < nl; l++) {
                    d0[l] = t[i][0][l];
                    d1[l] = 0.5f * (t[i][0][l] + t[i][1][l] + t[i][2][l]);
                    d2[l] = 0.5f * (t[i][0][l] - t[i][1][l] + t[i][2][l]);
                    d3[l] = t[i][2][l];
                }
            }
        }
}

/* Set up a forward-style Winograd problem (y (n, ho, wo, k) from x (n, h, w, c) with tile
 * origin (pt, pl)) and transform the weights into workspace slot 0. */
static cf_status wino_fwd_setup(const cf_conv_kernels *K, const float *x, int64_t h, int64_t w,
                                int64_t c, float *y, int64_t ho, int64_t wo, int64_t k, int64_t pt,
                                int64_t pl, const float *wt, int64_t wc, int64_t wk, int flip_t,
                                const float *bias, int relu, cf_wino_fwd *qp) {
    cf_wino_fwd q;
    memset(&q, 0, sizeof q);
    q.nv = choose_nv(k, K);
    const int64_t NB = (int64_t)q.nv * K->vlen, nblocks = (k + NB - 1) / NB;
    q.x = x;
    q.h = h;
    q.w = w;
    q.c = c;
    q.y = y;
    q.ho = ho;
    q.wo = wo;
    q.k = k;
    q.y_sn = ho * wo * k;
    q.pt = pt;
    q.pl = pl;
    q.nty = (ho + 1) / 2;
    q.ntx = (wo + 1) / 2;
    wino_blocking(q.nty, q.ntx, CF_WINO_FWD_TILES, &q.rows_per_block, &q.cols_per_block);
    q.u_sb = c * NB;
    q.u_sxi = nblocks * q.u_sb;
    q.bias = bias;
    q.relu = relu;
    q.cp = CF_ROUND_UP(c, K->vlen);
    q.kp = nblocks * NB;
    float *U = (float *)cf_workspace(0, (size_t)(16 * q.u_sxi) * sizeof(float));
    if (U == NULL) return CF_ERR_NOMEM;
    wino_weights(wt, wc, wk, flip_t, c, k, NB, U);
    q.u = U;
    *qp = q;
    return CF_OK;
}

/* Forward-style Winograd: y (n, ho, wo, k) from x (n, h, w, c) with tile origin (pt, pl). */
static cf_status wino_forward(const cf_conv_kernels *K, int64_t n, const float *x, int64_t h,
                              int64_t w, int64_t c, float *y, int64_t ho, int64_t wo, int64_t k,
                              int64_t pt, int64_t pl, const float *wt, int64_t wc, int64_t wk,
                              int flip_t, const float *bias, int relu, double flops) {
    cf_wino_fwd q;
    const cf_status st = wino_fwd_setup(K, x, h, w, c, y, ho, wo, k, pt, pl, wt, wc, wk, flip_t,
                                        bias, relu, &q);
    if (st != CF_OK) return st;
    const int64_t items = n * wino_blocks(q.nty, q.rows_per_block, q.ntx, q.cols_per_block);
    const int64_t ws_floats = cf_wino_ws_floats(q.rows_per_block * q.cols_per_block, q.cp, q.kp);
    const int nt = threads_for_work(items, flops);
    int failed = 0;
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const cf_range rg = cf_split(items, cf_thread_id(), cf_thread_count());
        float *ws = (float *)cf_workspace(1, (size_t)ws_floats * sizeof(float));
        if (ws == NULL) {
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        } else {
            K->wino_fwd_items(&q, rg.begin, rg.end, ws);
        }
        CF_FTZ_END;
    }
    return failed ? CF_ERR_NOMEM : CF_OK;
}

/* Winograd backward-data by transposition; one image per work item. */
static cf_status wino_bwd_data(const cf_conv_kernels *K, const cf_conv2d_params *p, const float *dy,
                               const float *w, const float *bias, int relu, float *dx, int nt) {
    cf_wino_bwd q;
    memset(&q, 0, sizeof q);
    const int64_t c = p->c, k = p->cout;
    q.nv = choose_nv(c, K);
    const int64_t NB = (int64_t)q.nv * K->vlen, nblocks = (c + NB - 1) / NB;
    q.dy = dy;
    q.ho = p->ho;
    q.wo = p->wo;
    q.k = k;
    q.dx = dx;
    q.h = p->h;
    q.w = p->w;
    q.c = c;
    q.pt = p->pad_top;
    q.pl = p->pad_left;
    q.nty = (p->ho + 1) / 2;
    q.ntx = (p->wo + 1) / 2;
    wino_blocking(q.nty, q.ntx, CF_WINO_FWD_TILES, &q.rows_per_block, &q.cols_per_block);
    q.u_sb = k * NB;
    q.u_sxi = nblocks * q.u_sb;
    q.bias = bias;
    q.relu = relu;
    q.kp = CF_ROUND_UP(k, K->vlen);
    q.cpp = nblocks * NB;
    float *U = (float *)cf_workspace(0, (size_t)(16 * q.u_sxi) * sizeof(float));
    if (U == NULL) return CF_ERR_NOMEM;
    wino_weights(w, c, k, 2, k, c, NB, U);
    q.u = U;
    const int64_t ws_floats = 16 * q.rows_per_block * q.cols_per_block * (q.kp + q.cpp) + q.kp + 64;
    int failed = 0;
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const cf_range rg = cf_split(p->n, cf_thread_id(), cf_thread_count());
        float *ws = (float *)cf_workspace(1, (size_t)ws_floats * sizeof(float));
        if (ws == NULL) {
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        } else {
            K->wino_bwd_data_items(&q, rg.begin, rg.end, ws);
        }
        CF_FTZ_END;
    }
    return failed ? CF_ERR_NOMEM : CF_OK;
}

/* Winograd backward-filter: per-thread P = sum over tiles in the transform domain, a fixed-order
 * reduction over threads, then dW = G^T P G with G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]. */
static cf_status wino_bwd_filter(const cf_conv_kernels *K, const cf_conv2d_params *p,
                                 const float *x, const float *dy, float *dw, float *db) {
    cf_wino_bwf q;
    memset(&q, 0, sizeof q);
    const int64_t c = p->c, k = p->cout;
    q.nv = choose_nv(k, K);
    const int64_t NB = (int64_t)q.nv * K->vlen;
    q.x = x;
    q.h = p->h;
    q.w = p->w;
    q.c = c;
    q.dy = dy;
    q.ho = p->ho;
    q.wo = p->wo;
    q.k = k;
    q.pt = p->pad_top;
    q.pl = p->pad_left;
    q.nty = (p->ho + 1) / 2;
    q.ntx = (p->wo + 1) / 2;
    wino_blocking(q.nty, q.ntx, CF_WINO_BWF_TILES, &q.rows_per_block, &q.cols_per_block);
    q.cp = CF_ROUND_UP(c, K->vlen);
    q.kp = CF_ROUND_UP(k, NB);
    const int64_t items = p->n * wino_blocks(q.nty, q.rows_per_block, q.ntx, q.cols_per_block);
    const int nt = threads_for_work(items, conv_flops(p));
    const int64_t psize = 16 * c * q.kp, pstride = CF_ROUND_UP(psize + q.kp, 16);
    const int64_t ws_floats = cf_wino_ws_floats(q.rows_per_block * q.cols_per_block, q.cp, q.kp);
    float *priv = (float *)cf_workspace(0, (size_t)(nt * pstride) * sizeof(float));
    if (priv == NULL) return CF_ERR_NOMEM;
    int failed = 0;
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const int t = cf_thread_id(), nthr = cf_thread_count();
        float *mine = priv + (int64_t)t * pstride;
        memset(mine, 0, (size_t)pstride * sizeof(float));
        float *ws = (float *)cf_workspace(1, (size_t)ws_floats * sizeof(float));
        if (ws == NULL) {
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        } else {
            const cf_range rg = cf_split(items, t, nthr);
            K->wino_bwf_items(&q, rg.begin, rg.end, mine, mine + psize, ws);
        }
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp barrier
#endif
        /* Input channels split over the team: sum P over threads into thread 0's copy in thread
         * order, then transform back to the 3x3 taps. */
        const cf_range rc = cf_split(c, t, nthr);
        for (int64_t ci = rc.begin; ci < rc.end; ci++) {
            float *P0 = priv;
            for (int xi = 0; xi < 16; xi++) {
                float *d = P0 + ((int64_t)xi * c + ci) * q.kp;
                for (int tt = 1; tt < nthr; tt++) {
                    const float *s = d + (int64_t)tt * pstride;
                    for (int64_t o = 0; o < k; o++) d[o] += s[o];
                }
            }
            /* Lane-major over the output channels o (contiguous in P and in dw), in chunks. */
            enum { OC = 64 };
            float qv[3][4][OC];
            for (int64_t o0 = 0; o0 < k; o0 += OC) {
                const int64_t no = CF_MIN(OC, k - o0);
                const float *P[4][4];
                for (int xi = 0; xi < 16; xi++) P[xi / 4][xi % 4] = P0 + ((int64_t)xi * c + ci) * q.kp + o0;
                for (int col = 0; col < 4; col++)
                    for (int64_t o = 0; o < no; o++) {
                        qv[0][col][o] = P[0][col][o] + 0.5f * (P[1][col][o] + P[2][col][o]);
                        qv[1][col][o] = 0.5f * (P[1][col][o] - P[2][col][o]);
                        qv[2][col][o] = 0.5f * (P[1][col][o] + P[2][col][o]) + P[3][col][o];
                    }
                for (int i = 0; i < 3; i++) {
                    float *dst = dw + ((int64_t)i * 3 * c + ci) * k + o0;  /* dw[i][j][ci][o] */
                    for (int64_t o = 0; o < no; o++) {
                        dst[o] = qv[i][0][o] + 0.5f * (qv[i][1][o] + qv[i][2][o]);
                        dst[c * k + o] = 0.5f * (qv[i][1][o] - qv[i][2][o]);
                        dst[2 * c * k + o] = 0.5f * (qv[i][1][o] + qv[i][2][o]) + qv[i][3][o];
                    }
                }
            }
        }
        if (db && t == 0) {
            for (int64_t o = 0; o < k; o++) {
                float s = priv[psize + o];
                for (int tt = 1; tt < nthr; tt++) s += priv[(int64_t)tt * pstride + psize + o];
                db[o] = s;
            }
        }
        CF_FTZ_END;
    }
    return failed ? CF_ERR_NOMEM : CF_OK;
}

/* ------------------------------------------------------------------------------------------ */

/* Patches of images n0 .. n0+nimg-1 as rows of `a` ((nimg*ho*wo) x (kh*kw*c), [i][j][ci] order,
 * as the HWIO weights' rows), zeros where a tap falls in the padding. Output rows split over
 * the threads. */
static void im2col_rows(const cf_conv2d_params *p, const float *x, int64_t n0, int64_t nimg, float *a) {
    const int64_t C = p->c, kcols = p->kh * p->kw * C, rows = nimg * p->ho;
    const int nt = threads_for_work(rows, 2.0 * (double)rows * (double)p->wo * (double)kcols * 8.0);
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        const cf_range rg = cf_split(rows, cf_thread_id(), cf_thread_count());
        for (int64_t r = rg.begin; r < rg.end; r++) {
            const int64_t n = n0 + r / p->ho, oh = r % p->ho;
            for (int64_t ow = 0; ow < p->wo; ow++) {
                float *dst = a + (r * p->wo + ow) * kcols;
                for (int64_t i = 0; i < p->kh; i++) {
                    const int64_t ih = oh * p->stride_h - p->pad_top + i * p->dilation_h;
                    for (int64_t j = 0; j < p->kw; j++, dst += C) {
                        const int64_t iw = ow * p->stride_w - p->pad_left + j * p->dilation_w;
                        if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w)
                            memset(dst, 0, (size_t)C * sizeof(float));
                        else
                            memcpy(dst, x + ((n * p->h + ih) * p->w + iw) * C, (size_t)C * sizeof(float));
                    }
                }
            }
        }
    }
}

static cf_status im2col_fwd(const cf_conv2d_params *p, const float *x, const float *w,
                            const float *bias, int relu, float *y) {
    const int64_t kcols = p->kh * p->kw * p->c, pix = p->ho * p->wo;
    const int64_t image_bytes = pix * kcols * (int64_t)sizeof(float);
    const int64_t chunk = CF_MAX(1, CF_MIN(p->n, CF_IM2COL_BUDGET_BYTES / CF_MAX(image_bytes, 1)));
    float *a = (float *)cf_workspace(2, (size_t)(chunk * image_bytes));
    if (a == NULL) return CF_ERR_NOMEM;
    for (int64_t n0 = 0; n0 < p->n; n0 += chunk) {
        const int64_t nimg = CF_MIN(chunk, p->n - n0);
        im2col_rows(p, x, n0, nimg, a);
        const cf_status st = cf_sgemm(0, 0, nimg * pix, p->cout, kcols, 1.0f, a, kcols, w, p->cout,
                                      0.0f, y + n0 * pix * p->cout, p->cout, bias, relu);
        if (st != CF_OK) return st;
    }
    return CF_OK;
}

static cf_status depthwise_fwd(const cf_conv_kernels *K, const cf_conv2d_params *p, const float *x,
                               const float *w, const float *bias, int relu, float *y) {
    const int64_t rows = p->n * p->ho;
    const int nt = threads_for_work(rows, conv_flops(p));
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const cf_range rg = cf_split(rows, cf_thread_id(), cf_thread_count());
        K->dw_fwd_rows(p, x, w, bias, relu, y, rg.begin, rg.end);
        CF_FTZ_END;
    }
    return CF_OK;
}

/* Pack the weights (workspace slot 0) and fill one gather problem per group (slot 2) for the
 * implicit-GEMM forward into y, whose images are y_sn floats apart. NULL when out of memory. */
static cf_conv_gather *igemm_fwd_setup(const cf_conv_kernels *K, const cf_conv2d_params *p,
                                       const float *x, const float *w, const float *bias, int relu,
                                       float *y, int64_t y_sn) {
    const int64_t G = p->groups, cig = p->c / G, cog = p->cout / G;
    const int dot = use_dot(cog, cig);
    const int nv = choose_nv(cog, K);
    const int64_t NB = dot ? cog : (int64_t)nv * K->vlen, nblocks = (cog + NB - 1) / NB;
    const int64_t kp = dot ? CF_ROUND_UP(cig, K->vlen) : cig;   /* packed channel row */
    const int64_t w_sj = kp * NB, w_si = p->kw * w_sj, w_sb = p->kh * w_si, w_sg = nblocks * w_sb;
    /* One group whose output channels fill exactly one register panel: HWIO already is the
     * packed [i][j][ci][NB] layout (the kernels load unaligned), so the weights and bias are
     * used in place. This saves a copy of the whole filter per call, which at batch 1 costs
     * as much as the convolution itself (3x3x64x64 on a 5x5 input). */
    const int in_place = G == 1 && !dot && NB == cog;
    const int64_t wfloats = in_place ? 0 : G * w_sg, bfloats = bias && !in_place ? G * nblocks * NB : 0;
    float *packed = (float *)cf_workspace(0, (size_t)(wfloats + bfloats) * sizeof(float));
    cf_conv_gather *probs = (cf_conv_gather *)cf_workspace(2, (size_t)G * sizeof(cf_conv_gather));
    if (packed == NULL || probs == NULL) return NULL;

    if (dot) {
        /* Pack W[i][j][ci][g*cog + o] into [g][i][j][o][kp], zero past cig. */
        memset(packed, 0, (size_t)wfloats * sizeof(float));
        for (int64_t g = 0; g < G; g++)
            for (int64_t i = 0; i < p->kh; i++)
                for (int64_t j = 0; j < p->kw; j++)
                    for (int64_t ci = 0; ci < cig; ci++)
                        for (int64_t o = 0; o < cog; o++)
                            packed[g * w_sg + i * w_si + j * w_sj + o * kp + ci] =
                                w[((i * p->kw + j) * cig + ci) * p->cout + g * cog + o];
    } else if (!in_place)
    /* Pack W[i][j][ci][g*cog + o] into [g][block][i][j][ci][NB], zero past cog. */
    for (int64_t g = 0; g < G; g++)
        for (int64_t b = 0; b < nblocks; b++)
            for (int64_t i = 0; i < p->kh; i++)
                for (int64_t j = 0; j < p->kw; j++)
                    for (int64_t ci = 0; ci < cig; ci++) {
                        float *dst = packed + g * w_sg + b * w_sb + i * w_si + j * w_sj + ci * NB;
                        const float *src = w + ((i * p->kw + j) * cig + ci) * p->cout + g * cog + b * NB;
                        const int64_t nvalid = CF_MIN(cog - b * NB, NB);
                        memcpy(dst, src, (size_t)nvalid * sizeof(float));
                        memset(dst + nvalid, 0, (size_t)(NB - nvalid) * sizeof(float));
                    }
    const float *pbias = in_place ? bias : bias ? packed + wfloats : NULL;
    if (bias && !in_place)
        for (int64_t g = 0; g < G; g++) {
            float *dst = packed + wfloats + g * nblocks * NB;
            memcpy(dst, bias + g * cog, (size_t)cog * sizeof(float));
            memset(dst + cog, 0, (size_t)(nblocks * NB - cog) * sizeof(float));
        }

    for (int64_t g = 0; g < G; g++) {
        cf_conv_gather *q = &probs[g];
        memset(q, 0, sizeof *q);
        q->y = y ? y + g * cog : NULL;  /* NULL: the caller sets it per image */
        q->y_rows = p->ho;
        q->y_cols = p->wo;
        q->y_sn = y_sn;
        q->y_sr = p->wo * p->cout;
        q->y_sc = p->cout;
        q->nout = cog;
        q->a = x + g * cig;
        q->a_h = p->h;
        q->a_w = p->w;
        q->a_sn = p->h * p->w * p->c;
        q->a_sr = p->w * p->c;
        q->a_sc = p->c;
        q->k = cig;
        q->ar = p->stride_h;
        q->ar0 = -p->pad_top;
        q->ai = p->dilation_h;
        q->nti = p->kh;
        q->ac = p->stride_w;
        q->ac0 = -p->pad_left;
        q->aj = p->dilation_w;
        q->ntj = p->kw;
        q->w = in_place ? w : packed + g * w_sg;
        q->w_sb = w_sb;
        q->w_si = w_si;
        q->w_sj = w_sj;
        q->bias = pbias ? pbias + g * nblocks * NB : NULL;
        q->relu = relu;
        q->nv = nv;
        q->dot = dot;
        q->w_so = kp;
    }
    return probs;
}

cf_status cf_conv2d_fwd(const cf_conv2d_params *p, const float *x, const float *w, const float *bias,
                        int activation, float *y) {
    if (!params_ok(p) || !activation_ok(activation)) return CF_ERR_ARGUMENT;
    if (p->n == 0 || p->ho == 0 || p->wo == 0 || p->cout == 0) return CF_OK;
    const cf_conv_kernels *K = kernels_for_isa();
    const int relu = activation;   /* the kernels' code: 0, 1 (ReLU), 2 (ReLU6) */
    if (use_pointwise_gemm(p))
        return cf_sgemm(0, 0, p->n * p->h * p->w, p->cout, p->c, 1.0f, x, p->c, w, p->cout, 0.0f,
                        y, p->cout, bias, relu);
    if (use_depthwise(p, K)) return depthwise_fwd(K, p, x, w, bias, relu, y);
    if (use_winograd(p, WINO_FWD))
        return wino_forward(K, p->n, x, p->h, p->w, p->c, y, p->ho, p->wo, p->cout, p->pad_top,
                            p->pad_left, w, p->c, p->cout, 0, bias, relu, conv_flops(p));
    if (use_im2col(p)) return im2col_fwd(p, x, w, bias, relu, y);
    const cf_conv_gather *probs = igemm_fwd_setup(K, p, x, w, bias, relu, y, p->ho * p->wo * p->cout);
    if (probs == NULL) return CF_ERR_NOMEM;
    return run_gather(K, probs, p->groups, p->n, conv_flops(p));
}

/* Convolution and max-pooling, one image at a time per thread: the image's convolution output
 * goes to a per-thread buffer (ho x wo x cout floats: 86 KB for the 26x26x32 first layer of
 * the MNIST tutorial) that is pooled while it is still in L2, so the full-size activation is
 * never written to memory nor read back. Weights are packed / transformed once per call. */
cf_status cf_conv2d_fwd_maxpool(const cf_conv2d_params *p, const float *x, const float *w,
                                const float *bias, int activation, const cf_pool2d_shape *pool,
                                float *y, void *argmax, int index_bytes) {
    if (!params_ok(p) || (activation != CF_CONV_ACT_NONE && activation != CF_CONV_ACT_RELU))
        return CF_ERR_ARGUMENT;
    if (pool == NULL || !cf_maxpool2d_fwd_args_ok(pool, argmax ? index_bytes : 4) ||
        pool->n != p->n || pool->h != p->ho || pool->w != p->wo || pool->c != p->cout)
        return CF_ERR_ARGUMENT;
    if (p->n == 0 || pool->ho == 0 || pool->wo == 0 || p->cout == 0) return CF_OK;
    if (p->c == 0 || y == NULL) return CF_ERR_ARGUMENT;  /* no input channels: the caller's case */
    const cf_conv_kernels *K = kernels_for_isa();
    if (use_depthwise(p, K)) return CF_ERR_ARGUMENT;
    const cf_pool_kernels *P = cf_pool_kernels_active();
    const int relu = activation == CF_CONV_ACT_RELU;
    const int wino = use_winograd(p, WINO_FWD);
    const int64_t z_floats = p->ho * p->wo * p->cout;
    const int64_t y_image = pool->ho * pool->wo * pool->c;
    cf_wino_fwd wq;
    const cf_conv_gather *probs = NULL;
    int64_t scratch_floats, wino_items = 0;
    if (wino) {
        const cf_status st = wino_fwd_setup(K, x, p->h, p->w, p->c, NULL, p->ho, p->wo, p->cout,
                                            p->pad_top, p->pad_left, w, p->c, p->cout, 0, bias,
                                            relu, &wq);
        if (st != CF_OK) return st;
        wq.y_sn = 0;
        wino_items = wino_blocks(wq.nty, wq.rows_per_block, wq.ntx, wq.cols_per_block);
        scratch_floats = cf_wino_ws_floats(wq.rows_per_block * wq.cols_per_block, wq.cp, wq.kp);
    } else {
        probs = igemm_fwd_setup(K, p, x, w, bias, relu, NULL, 0);
        if (probs == NULL) return CF_ERR_NOMEM;
        const int rmax = probs[0].dot ? K->dot_rows[probs[0].nout] : K->max_rows[probs[0].nv];
        scratch_floats = 1;
        for (int64_t g = 0; g < p->groups; g++)
            scratch_floats = CF_MAX(scratch_floats, cf_conv_tilebuf_floats(&probs[g], rmax));
    }
    const int nt = threads_for_work(p->n, conv_flops(p));
    int failed = 0;
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const cf_range rg = cf_split(p->n, cf_thread_id(), cf_thread_count());
        float *scratch = (float *)cf_workspace(1, (size_t)scratch_floats * sizeof(float));
        float *z = (float *)cf_workspace(3, (size_t)z_floats * sizeof(float));
        if (scratch == NULL || z == NULL) {
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        } else {
            cf_pool2d_shape one = *pool;
            one.n = 1;
            cf_wino_fwd mine = wq;
            mine.y = z;
            for (int64_t i = rg.begin; i < rg.end; i++) {
                if (wino) {
                    K->wino_fwd_items(&mine, i * wino_items, (i + 1) * wino_items, scratch);
                } else {
                    for (int64_t g = 0; g < p->groups; g++) {
                        cf_conv_gather q = probs[g];
                        q.y = z + g * (p->cout / p->groups);
                        K->gather_rows(&q, i * p->ho, (i + 1) * p->ho, scratch);
                    }
                }
                void *am = argmax ? (char *)argmax + i * y_image * index_bytes : NULL;
                P->maxpool_fwd_rows(&one, z, y + i * y_image, am, index_bytes, 0, pool->ho);
            }
        }
        CF_FTZ_END;
    }
    return failed ? CF_ERR_NOMEM : CF_OK;
}

/* ------------------------------------------------------------------------------------------ */

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        const int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Taps k in [0, kn) with (k*d) == (phase + pad) mod s: first one, count and step. */
static void phase_taps(int64_t phase, int64_t pad, int64_t s, int64_t d, int64_t kn,
                       int64_t *first, int64_t *count, int64_t *step) {
    *first = -1;
    *count = 0;
    *step = s / gcd64(s, d);
    for (int64_t k = 0; k < kn; k++) {
        int64_t r = (k * d - phase - pad) % s;
        if (r < 0) r += s;
        if (r == 0) {
            if (*first < 0) *first = k;
            (*count)++;
        }
    }
}

static cf_status depthwise_bwd_data(const cf_conv_kernels *K, const cf_conv2d_params *p,
                                    const float *dy, const float *w, float *dx) {
    const int64_t rows = p->n * p->h;
    const int nt = threads_for_work(rows, conv_flops(p));
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const cf_range rg = cf_split(rows, cf_thread_id(), cf_thread_count());
        K->dw_bwd_data_rows(p, dy, w, dx, rg.begin, rg.end);
        CF_FTZ_END;
    }
    return CF_OK;
}

/* dx = bias + conv2d_fwd^T(dy) (then ReLU): backward-data, and the transposed convolution. */
static cf_status bwd_data_impl(const cf_conv2d_params *p, const float *dy, const float *w,
                               const float *bias, int relu, float *dx) {
    if (p->n == 0 || p->h == 0 || p->w == 0 || p->c == 0) return CF_OK;
    const cf_conv_kernels *K = kernels_for_isa();
    if (use_pointwise_gemm(p))   /* dx = dy @ W^T, W stored (c, cout) */
        return cf_sgemm(0, 1, p->n * p->h * p->w, p->c, p->cout, 1.0f, dy, p->cout, w, p->cout, 0.0f,
                        dx, p->c, bias, relu);
    if (bias == NULL && !relu && use_depthwise(p, K)) {
        if (p->ho == 0 || p->wo == 0 || p->cout == 0) {
            memset(dx, 0, (size_t)(p->n * p->h * p->w * p->c) * sizeof(float));
            return CF_OK;
        }
        return depthwise_bwd_data(K, p, dy, w, dx);
    }
    if (p->algo == CF_CONV_ALGO_DEPTHWISE) return CF_ERR_ARGUMENT;
    if (use_winograd(p, WINO_BWD_DATA) && p->ho > 0 && p->wo > 0 && p->cout > 0) {
        /* By transposition when every thread gets whole images: it computes only the dy tiles
         * (ho x wo), where the forward-style form pays for the "full" padding ring around them. */
        const int nt = threads_for_work(p->n, conv_flops(p));
        const int64_t gather_tiles = ((p->h + 1) / 2) * ((p->w + 1) / 2);
        const int64_t scatter_tiles = ((p->ho + 1) / 2) * ((p->wo + 1) / 2);
        if (p->n >= nt && scatter_tiles < gather_tiles)
            return wino_bwd_data(K, p, dy, w, bias, relu, dx, nt);
        return wino_forward(K, p->n, dy, p->ho, p->wo, p->cout, dx, p->h, p->w, p->c,
                            2 - p->pad_top, 2 - p->pad_left, w, p->c, p->cout, 1, bias, relu,
                            conv_flops(p));
    }

    const int64_t G = p->groups, cig = p->c / G, cog = p->cout / G;
    const int64_t sh = p->stride_h, sw = p->stride_w;
    const int dot = use_dot(cig, cog);
    const int nv = choose_nv(cig, K);
    const int64_t NB = dot ? cig : (int64_t)nv * K->vlen, nblocks = (cig + NB - 1) / NB;
    const int64_t kp = dot ? CF_ROUND_UP(cog, K->vlen) : cog;
    const int64_t w_sj = kp * NB, w_si = p->kw * w_sj, w_sb = p->kh * w_si, w_sg = nblocks * w_sb;
    const int64_t nprob = G * sh * sw;
    const int64_t wfloats = G * w_sg, bfloats = bias ? G * nblocks * NB : 0;
    float *packed = (float *)cf_workspace(0, (size_t)(wfloats + bfloats) * sizeof(float));
    cf_conv_gather *probs = (cf_conv_gather *)cf_workspace(2, (size_t)nprob * sizeof(cf_conv_gather));
    if (packed == NULL || probs == NULL) return CF_ERR_NOMEM;

    if (dot) {
        /* [g][i'][j'][ci][kp] = w[kh-1-i'][kw-1-j'][ci][g*cog + co], zero past cog. */
        memset(packed, 0, (size_t)(G * w_sg) * sizeof(float));
        for (int64_t g = 0; g < G; g++)
            for (int64_t i2 = 0; i2 < p->kh; i2++)
                for (int64_t j2 = 0; j2 < p->kw; j2++)
                    for (int64_t ci = 0; ci < cig; ci++)
                        memcpy(packed + g * w_sg + i2 * w_si + j2 * w_sj + ci * kp,
                               w + (((p->kh - 1 - i2) * p->kw + (p->kw - 1 - j2)) * cig + ci) * p->cout +
                                   g * cog,
                               (size_t)cog * sizeof(float));
    } else
    /* Pack the transposed, flipped weights: [g][block of ci][i'][j'][co][NB] with
     * i' = kh-1-i, j' = kw-1-j, lane = ci within the block. */
    for (int64_t g = 0; g < G; g++)
        for (int64_t b = 0; b < nblocks; b++) {
            const int64_t nvalid = CF_MIN(cig - b * NB, NB);
            for (int64_t i2 = 0; i2 < p->kh; i2++)
                for (int64_t j2 = 0; j2 < p->kw; j2++) {
                    const int64_t i = p->kh - 1 - i2, j = p->kw - 1 - j2;
                    for (int64_t co = 0; co < cog; co++) {
                        float *dst = packed + g * w_sg + b * w_sb + i2 * w_si + j2 * w_sj + co * NB;
                        const float *src = w + ((i * p->kw + j) * cig + b * NB) * p->cout + g * cog + co;
                        for (int64_t l = 0; l < nvalid; l++) dst[l] = src[l * p->cout];
                        for (int64_t l = nvalid; l < NB; l++) dst[l] = 0.0f;
                    }
                }
        }
    float *pbias = bias ? packed + wfloats : NULL;
    if (bias)
        for (int64_t g = 0; g < G; g++) {
            float *dst = pbias + g * nblocks * NB;
            memcpy(dst, bias + g * cig, (size_t)cig * sizeof(float));
            memset(dst + cig, 0, (size_t)(nblocks * NB - cig) * sizeof(float));
        }

    int64_t q = 0;
    for (int64_t g = 0; g < G; g++)
        for (int64_t ph = 0; ph < sh; ph++)
            for (int64_t pw = 0; pw < sw; pw++, q++) {
                cf_conv_gather *pr = &probs[q];
                memset(pr, 0, sizeof *pr);
                int64_t fh, nh, th, fw, nw, tw;
                phase_taps(ph, p->pad_top, sh, p->dilation_h, p->kh, &fh, &nh, &th);
                phase_taps(pw, p->pad_left, sw, p->dilation_w, p->kw, &fw, &nw, &tw);
                pr->y = dx + ph * p->w * p->c + pw * p->c + g * cig;
                pr->y_rows = p->h > ph ? (p->h - ph + sh - 1) / sh : 0;
                pr->y_cols = p->w > pw ? (p->w - pw + sw - 1) / sw : 0;
                pr->y_sn = p->h * p->w * p->c;
                pr->y_sr = sh * p->w * p->c;
                pr->y_sc = sw * p->c;
                pr->nout = cig;
                pr->a = dy + g * cog;
                pr->a_h = p->ho;
                pr->a_w = p->wo;
                pr->a_sn = p->ho * p->wo * p->cout;
                pr->a_sr = p->wo * p->cout;
                pr->a_sc = p->cout;
                pr->k = cog;
                pr->ar = 1;
                pr->ac = 1;
                pr->nti = nh;
                pr->ntj = nw;
                pr->ai = th * p->dilation_h / sh;
                pr->aj = tw * p->dilation_w / sw;
                int64_t i0 = 0, j0 = 0;
                if (nh > 0) {
                    const int64_t last = fh + (nh - 1) * th;
                    pr->ar0 = (ph + p->pad_top - last * p->dilation_h) / sh;
                    i0 = p->kh - 1 - last;
                }
                if (nw > 0) {
                    const int64_t last = fw + (nw - 1) * tw;
                    pr->ac0 = (pw + p->pad_left - last * p->dilation_w) / sw;
                    j0 = p->kw - 1 - last;
                }
                if (pr->ai < 1) pr->ai = 1;
                if (pr->aj < 1) pr->aj = 1;
                pr->w = packed + g * w_sg + i0 * w_si + j0 * w_sj;
                pr->w_sb = w_sb;
                pr->w_si = th * w_si;
                pr->w_sj = tw * w_sj;
                pr->bias = pbias ? pbias + g * nblocks * NB : NULL;
                pr->relu = relu;
                pr->nv = nv;
                pr->dot = dot;
                pr->w_so = kp;
                if (p->ho == 0 || p->wo == 0 || cog == 0) pr->nti = pr->ntj = 0;  /* bias only */
            }
    return run_gather(K, probs, nprob, p->n, conv_flops(p));
}

cf_status cf_conv2d_bwd_data(const cf_conv2d_params *p, const float *dy, const float *w, float *dx) {
    if (!params_ok(p)) return CF_ERR_ARGUMENT;
    return bwd_data_impl(p, dy, w, NULL, 0, dx);
}

cf_status cf_conv2d_transpose_fwd(const cf_conv2d_params *p, const float *x, const float *w,
                                  const float *bias, int activation, float *y) {
    if (!params_ok(p) || !activation_ok(activation)) return CF_ERR_ARGUMENT;
    return bwd_data_impl(p, x, w, bias, activation, y);
}

/* ------------------------------------------------------------------------------------------ */

/* Sum nt private copies (stride `pstride` floats apart) of `rows` rows of `len` floats into
 * dst (row stride dst_ld), in thread order; rows split over the calling team. */
static void reduce_rows(const float *priv, int64_t pstride, int nt, int64_t rows, int64_t len,
                        int64_t src_ld, float *dst, int64_t dst_ld, int64_t (*dst_row)(int64_t, const void *),
                        const void *ctx, int t, int nthr) {
    const cf_range rg = cf_split(rows, t, nthr);
    for (int64_t r = rg.begin; r < rg.end; r++) {
        float *d = dst + (dst_row ? dst_row(r, ctx) : r * dst_ld);
        const float *s0 = priv + r * src_ld;
        for (int64_t o = 0; o < len; o++) d[o] = s0[o];
        for (int tt = 1; tt < nt; tt++) {
            const float *s = s0 + (int64_t)tt * pstride;
            for (int64_t o = 0; o < len; o++) d[o] += s[o];
        }
    }
}

typedef struct { int64_t taps_cig, cout, cog; } dw_row_map;

/* Private row (g, tap*cig + ci) -> offset of dW[tap][ci][g*cog] in HWIO. */
static int64_t hwio_row(int64_t r, const void *ctx) {
    const dw_row_map *m = (const dw_row_map *)ctx;
    const int64_t g = r / m->taps_cig, q = r % m->taps_cig;
    return q * m->cout + g * m->cog;
}

static cf_status depthwise_bwd_filter(const cf_conv_kernels *K, const cf_conv2d_params *p,
                                      const float *x, const float *dy, float *dw, float *db) {
    const int64_t rows = p->n * p->ho, taps = p->kh * p->kw, CO = p->cout;
    const int nt = threads_for_work(rows, conv_flops(p));
    const int64_t pstride = CF_ROUND_UP(taps * CO + CO, 16);
    float *priv = (float *)cf_workspace(0, (size_t)(nt * pstride) * sizeof(float));
    if (priv == NULL) return CF_ERR_NOMEM;
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const int t = cf_thread_id(), nthr = cf_thread_count();
        float *mine = priv + (int64_t)t * pstride;
        memset(mine, 0, (size_t)pstride * sizeof(float));
        const cf_range rg = cf_split(rows, t, nthr);
        K->dw_bwf_rows(p, x, dy, mine, db ? mine + taps * CO : NULL, rg.begin, rg.end);
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp barrier
#endif
        reduce_rows(priv, pstride, nthr, taps, CO, CO, dw, CO, NULL, NULL, t, nthr);
        if (db && t == 0) reduce_rows(priv + taps * CO, pstride, nthr, 1, CO, CO, db, CO, NULL, NULL, 0, 1);
        CF_FTZ_END;
    }
    return CF_OK;
}

cf_status cf_conv2d_bwd_filter(const cf_conv2d_params *p, const float *x, const float *dy, float *dw,
                               float *db) {
    if (!params_ok(p)) return CF_ERR_ARGUMENT;
    const int64_t G = p->groups, cig = p->c / G, cog = p->cout / G;
    const int64_t taps = p->kh * p->kw;
    if (p->n == 0 || p->ho == 0 || p->wo == 0 || p->c == 0 || p->cout == 0) {
        if (taps * cig * p->cout > 0) memset(dw, 0, (size_t)(taps * cig * p->cout) * sizeof(float));
        if (db && p->cout > 0) {
            memset(db, 0, (size_t)p->cout * sizeof(float));
            if (p->c == 0 && p->n * p->ho * p->wo > 0) {
                /* no input channels: the bias gradient is still the sum of dy */
                for (int64_t px = 0; px < p->n * p->ho * p->wo; px++)
                    for (int64_t o = 0; o < p->cout; o++) db[o] += dy[px * p->cout + o];
            }
        }
        return CF_OK;
    }
    const cf_conv_kernels *K = kernels_for_isa();
    if (use_depthwise(p, K)) return depthwise_bwd_filter(K, p, x, dy, dw, db);
    if (use_winograd(p, WINO_BWD_FILTER)) return wino_bwd_filter(K, p, x, dy, dw, db);

    const int nv = choose_nv(cog, K);
    const int64_t NB = (int64_t)nv * K->vlen, cog_pad = CF_ROUND_UP(cog, NB);
    int64_t rpb = (CF_CONV_BWF_PIXELS + p->wo - 1) / p->wo;
    if (rpb > p->ho) rpb = p->ho;
    const int64_t nblk = (p->ho + rpb - 1) / rpb;
    const int64_t items = G * p->n * nblk;
    const int64_t gsize = taps * cig * cog_pad;                 /* per group dW */
    const int64_t pstride = CF_ROUND_UP(G * gsize + G * cog_pad, 16);
    const int nt = threads_for_work(items, conv_flops(p));

    cf_conv_bwf *probs = (cf_conv_bwf *)cf_workspace(2, (size_t)G * sizeof(cf_conv_bwf));
    float *priv = (float *)cf_workspace(0, (size_t)(nt * pstride) * sizeof(float));
    if (probs == NULL || priv == NULL) return CF_ERR_NOMEM;
    for (int64_t g = 0; g < G; g++) {
        cf_conv_bwf *q = &probs[g];
        memset(q, 0, sizeof *q);
        q->x = x + g * cig;
        q->h = p->h;
        q->w = p->w;
        q->x_sn = p->h * p->w * p->c;
        q->x_sr = p->w * p->c;
        q->x_sc = p->c;
        q->dy = dy + g * cog;
        q->ho = p->ho;
        q->wo = p->wo;
        q->dy_sn = p->ho * p->wo * p->cout;
        q->dy_sr = p->wo * p->cout;
        q->dy_sc = p->cout;
        q->cig = cig;
        q->cog = cog;
        q->kh = p->kh;
        q->kw = p->kw;
        q->sh = p->stride_h;
        q->sw = p->stride_w;
        q->pt = p->pad_top;
        q->pl = p->pad_left;
        q->dh = p->dilation_h;
        q->dw = p->dilation_w;
        q->rows_per_block = rpb;
        q->cog_pad = cog_pad;
        q->nv = nv;
    }
    const int64_t wb_floats = cf_conv_bwf_winbuf_floats(&probs[0]);
    int failed = 0;
    dw_row_map map = {taps * cig, p->cout, cog};
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const int t = cf_thread_id(), nthr = cf_thread_count();
        float *mine = priv + (int64_t)t * pstride;
        memset(mine, 0, (size_t)pstride * sizeof(float));
        float *winbuf = (float *)cf_workspace(1, (size_t)wb_floats * sizeof(float));
        if (winbuf == NULL) {
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        } else {
            const cf_range rg = cf_split(items, t, nthr);
            for (int64_t it = rg.begin; it < rg.end; it++) {
                const int64_t g = it / (p->n * nblk), rest = it % (p->n * nblk);
                const int64_t n = rest / nblk, blk = rest % nblk;
                const int64_t r0 = blk * rpb, r1 = CF_MIN(p->ho, r0 + rpb);
                K->bwf_block(&probs[g], n, r0, r1, mine + g * gsize,
                             db ? mine + G * gsize + g * cog_pad : NULL, winbuf);
            }
        }
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp barrier
#endif
        /* Fixed-order reduction: rows (g, tap, ci) of cog floats, split over the team. */
        reduce_rows(priv, pstride, nthr, G * taps * cig, cog, cog_pad, dw, 0, hwio_row, &map, t, nthr);
        if (db) {
            const cf_range rg = cf_split(G, t, nthr);
            for (int64_t g = rg.begin; g < rg.end; g++)
                reduce_rows(priv + G * gsize + g * cog_pad, pstride, nthr, 1, cog, cog_pad,
                            db + g * cog, cog, NULL, NULL, 0, 1);
        }
        CF_FTZ_END;
    }
    return failed ? CF_ERR_NOMEM : CF_OK;
}

/* ------------------------------------------------------------------------------------------ */

cf_status cf_correlate2d(const float *image, int64_t h, int64_t w, const float *kernel, int64_t kh,
                         int64_t kw, int64_t pad_top, int64_t pad_left, float *out, int64_t ho,
                         int64_t wo) {
    if (h < 0 || w < 0 || kh < 0 || kw < 0 || pad_top < 0 || pad_left < 0 || ho < 0 || wo < 0)
        return CF_ERR_ARGUMENT;
    if (ho == 0 || wo == 0) return CF_OK;
    const cf_conv_kernels *K = kernels_for_isa();
    const int nt = threads_for_work(ho, 2.0 * (double)ho * (double)wo * (double)kh * (double)kw);
#ifdef CNNFAST_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_FTZ_BEGIN;
        const cf_range rg = cf_split(ho, cf_thread_id(), cf_thread_count());
        K->correlate_rows(image, h, w, kernel, kh, kw, pad_top, pad_left, out, wo, rg.begin, rg.end);
        CF_FTZ_END;
    }
    return CF_OK;
}
