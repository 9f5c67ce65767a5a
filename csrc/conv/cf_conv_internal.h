/*
 * cf_conv_internal.h — what the conv driver (cf_conv2d.c, baseline ISA) shares with the per-ISA
 * kernel files (cf_conv2d_generic.c, cf_conv2d__avx2.c, cf_conv2d__avx512.c).
 *
 * The driver validates, packs weights, builds a list of "gather problems", opens the one parallel
 * region and hands each thread a contiguous range of output rows. The per-ISA files export one
 * table of function pointers each (cf_conv_kernels_<isa>); every other symbol in them is static.
 *
 * Gather problem (forward convolution, and backward-data as a forward convolution of dy with the
 * transposed, flipped weights, one problem per stride phase):
 *
 *     Y[n, r, c, o] = bias[o] + sum_{i < nti, j < ntj, k < K} A[n, r*ar + ar0 + i*ai,
 *                                                              c*ac + ac0 + j*aj, k] * W[i, j, k, o]
 *
 * with zeros read outside A's (a_h, a_w) bounds. W is packed in blocks of NB = nv * VLEN output
 * channels: block b, tap (i, j) starts at w + b*w_sb + i*w_si + j*w_sj and holds K rows of NB
 * contiguous floats (zero-padded past nout).
 */
#ifndef CF_CONV_INTERNAL_H
#define CF_CONV_INTERNAL_H

#include <stdint.h>
#include "cnnfast/conv.h"

typedef struct {
    float *y;                       /* output base (group / phase offsets applied) */
    int64_t y_rows, y_cols;         /* output rows and columns of this problem */
    int64_t y_sn, y_sr, y_sc;       /* output strides (floats): image, row, column */
    int64_t nout;                   /* output channels computed (<= blocks * NB) */
    const float *a;                 /* gathered input base (group channel offset applied) */
    int64_t a_h, a_w;               /* input bounds; zeros outside */
    int64_t a_sn, a_sr, a_sc;       /* input strides (floats): image, row, pixel */
    int64_t k;                      /* reduction channels per tap */
    int64_t ar, ar0, ai, nti;       /* input row = r*ar + ar0 + i*ai, i < nti (ai >= 1) */
    int64_t ac, ac0, aj, ntj;       /* input col = c*ac + ac0 + j*aj, j < ntj (aj >= 1) */
    const float *w;                 /* packed weights */
    int64_t w_sb, w_si, w_sj;       /* packed strides: block, tap row, tap column */
    const float *bias;              /* packed bias (blocks * NB floats) or NULL */
    int relu;                       /* fuse max(0, .) */
    int nv;                         /* vectors per block: 1, 2 or 4 */
    int dot;                        /* nout <= 4: vectors along k, weights [tap][o][w_so] */
    int64_t w_so;                   /* dot: packed stride between output channels (k padded) */
} cf_conv_gather;

/* Backward-filter problem for one group: dW[i, j, ci, o] += sum_{n, r, c} X[n, r*sh - pt + i*dh,
 * c*sw - pl + j*dw, ci] * dY[n, r, c, o] into a private, NB-padded accumulator [i][j][ci][nout_pad]. */
typedef struct {
    const float *x;                 /* input base (group channel offset applied) */
    int64_t h, w;                   /* input bounds */
    int64_t x_sn, x_sr, x_sc;       /* input strides: image, row, pixel */
    const float *dy;                /* output gradient base (group channel offset applied) */
    int64_t ho, wo;                 /* output size */
    int64_t dy_sn, dy_sr, dy_sc;    /* output-gradient strides */
    int64_t cig, cog;               /* channels per group in / out */
    int64_t kh, kw, sh, sw, pt, pl, dh, dw;
    int64_t rows_per_block;         /* output rows per work item */
    int64_t cog_pad;                /* nout rounded up to NB: private row stride */
    int nv;                         /* vectors per block */
} cf_conv_bwf;

/* Winograd F(2x2, 3x3) forward problem (also backward-data, on dy with flipped weights):
 * output tile (ty, tx) covers output pixels [2ty, 2ty+2) x [2tx, 2tx+2) and reads the 4x4 input
 * tile at rows 2ty - pt + [0, 4), cols 2tx - pl + [0, 4), zeros outside. Per block of tiles:
 * V[16][T][cp] = B^T d B, M[16][T][kp] = V . U (16 GEMMs), y = A^T M A (+ bias, ReLU). */
typedef struct {
    const float *x;                 /* input (n, h, w, c) */
    int64_t h, w, c;
    float *y;                       /* output (n, ho, wo, k) */
    int64_t ho, wo, k;
    int64_t y_sn;                   /* floats between output images: ho*wo*k, or 0 to reuse one */
    int64_t pt, pl;                 /* tile origin offsets (may be negative) */
    int64_t nty, ntx;               /* tiles per column / row */
    int64_t rows_per_block;         /* tile rows per block (work item) */
    int64_t cols_per_block;         /* tiles along a row per block */
    const float *u;                 /* transformed weights [16][nblocks][c][NB] */
    int64_t u_sxi, u_sb;            /* strides (floats): per transform point, per block */
    const float *bias;              /* (k,) or NULL */
    int relu;
    int nv;                         /* NB = nv * VLEN */
    int64_t cp, kp;                 /* c rounded up to VLEN, k rounded up to NB */
} cf_wino_fwd;

/* Winograd F(3x3, 2x2) backward-filter: for each 2x2 dy tile and the 4x4 x tile under it,
 * P[16][c][kp] += (B^T x B)^T (A dy A^T), summed over tiles; dW = G^T P G afterwards. */
typedef struct {
    const float *x;                 /* input (n, h, w, c) */
    int64_t h, w, c;
    const float *dy;                /* output gradient (n, ho, wo, k) */
    int64_t ho, wo, k;
    int64_t pt, pl;
    int64_t nty, ntx;
    int64_t rows_per_block, cols_per_block;
    int nv;
    int64_t cp, kp;
} cf_wino_bwf;

/* Winograd backward-data by transposition (forward tiles of dy, scattered onto dx). */
typedef struct {
    const float *dy;                /* output gradient (n, ho, wo, k) */
    int64_t ho, wo, k;
    float *dx;                      /* input gradient (n, h, w, c), overwritten */
    int64_t h, w, c;
    int64_t pt, pl;                 /* forward padding: dy tile (ty, tx) maps to dx rows 2ty - pt + [0, 4) */
    int64_t nty, ntx;               /* dy tiles */
    int64_t rows_per_block, cols_per_block;
    const float *u;                 /* transformed weights, transposed: [16][c blocks][k][NB] */
    int64_t u_sxi, u_sb;
    const float *bias;              /* (c,) or NULL, added at the end (conv2d_transpose) */
    int relu;
    int nv;                         /* NB = nv * VLEN over c */
    int64_t kp, cpp;                /* k rounded up to VLEN, c rounded up to NB */
} cf_wino_bwd;

/* Floats of the per-thread Winograd workspace: V, M (or D), an edge tile and a zero pixel. */
static inline int64_t cf_wino_ws_floats(int64_t tiles, int64_t cp, int64_t kp) {
    return 16 * tiles * cp + 16 * tiles * kp + 16 * cp + kp + 64;
}

typedef struct {
    int vlen;                       /* floats per vector */
    int max_rows[5];                /* register-tile rows for nv = 1, 2, 4 (index nv) */
    int dot_rows[5];                /* few-output tile rows for nout = 1..4 */
    /* Forward-style gather over flattened rows [begin, end) of n * y_rows. tilebuf holds at least
     * cf_conv_tilebuf_floats() floats. */
    void (*gather_rows)(const cf_conv_gather *g, int64_t begin, int64_t end, float *tilebuf);
    /* Backward-filter for image n, output rows [r0, r1): accumulates into dw_priv (this group's
     * [kh*kw*cig][cog_pad]) and db_priv (cog_pad). winbuf holds cf_conv_bwf_winbuf_floats(). */
    void (*bwf_block)(const cf_conv_bwf *p, int64_t n, int64_t r0, int64_t r1,
                      float *dw_priv, float *db_priv, float *winbuf);
    /* Depthwise (c == groups): forward over rows [begin, end) of n*ho. */
    void (*dw_fwd_rows)(const cf_conv2d_params *p, const float *x, const float *w, const float *bias,
                        int relu, float *y, int64_t begin, int64_t end);
    /* Depthwise backward-data over rows [begin, end) of n*h. */
    void (*dw_bwd_data_rows)(const cf_conv2d_params *p, const float *dy, const float *w, float *dx,
                             int64_t begin, int64_t end);
    /* Depthwise backward-filter over rows [begin, end) of n*ho into private [kh*kw][cout], [cout]. */
    void (*dw_bwf_rows)(const cf_conv2d_params *p, const float *x, const float *dy, float *dw_priv,
                        float *db_priv, int64_t begin, int64_t end);
    /* Winograd forward over work items [begin, end) of n * ceil(nty / rows_per_block). */
    void (*wino_fwd_items)(const cf_wino_fwd *p, int64_t begin, int64_t end, float *ws);
    /* Winograd backward-filter over work items [begin, end): accumulates P (16*c*kp) and db (kp). */
    void (*wino_bwf_items)(const cf_wino_bwf *p, int64_t begin, int64_t end, float *P, float *db,
                           float *ws);
    /* Winograd backward-data over images [begin, end). */
    void (*wino_bwd_data_items)(const cf_wino_bwd *p, int64_t begin, int64_t end, float *ws);
    /* Single-image correlation over output rows [begin, end). */
    void (*correlate_rows)(const float *image, int64_t h, int64_t w, const float *kernel, int64_t kh,
                           int64_t kw, int64_t pt, int64_t pl, float *out, int64_t wo,
                           int64_t begin, int64_t end);
} cf_conv_kernels;

extern const cf_conv_kernels cf_conv_kernels_generic;
extern const cf_conv_kernels cf_conv_kernels_avx2;
extern const cf_conv_kernels cf_conv_kernels_avx512;
#if !defined(__x86_64__)  /* portable build: no AVX files; cf_get_isa() is always generic */
#define cf_conv_kernels_avx2 cf_conv_kernels_generic
#define cf_conv_kernels_avx512 cf_conv_kernels_generic
#endif

/* Floor / ceiling division for signed numerators and positive denominators. */
static inline int64_t cf_floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static inline int64_t cf_ceildiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/* Balanced tiling of `cols` columns into tiles of at most `rmax`: tile t starts at
 * cf_tile_start(t) and has base or base + 1 columns. */
static inline int64_t cf_tile_count(int64_t cols, int64_t rmax) { return (cols + rmax - 1) / rmax; }

/* Floats of the per-thread tile buffer the gather kernels need for problem g with tile rows rmax. */
static inline int64_t cf_conv_tilebuf_floats(const cf_conv_gather *g, int64_t rmax) {
    /* rmax is the largest tile the problem can use (dot or NB tiles) */
    int64_t width = (rmax - 1) * g->ac + (g->ntj > 0 ? (g->ntj - 1) * g->aj : 0) + 1;
    return (g->nti > 0 ? g->nti : 1) * width * (g->k > 0 ? g->k : 1);
}

/* Floats of the per-thread window buffer backward-filter needs. */
static inline int64_t cf_conv_bwf_winbuf_floats(const cf_conv_bwf *p) {
    int64_t rows = (p->rows_per_block - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    int64_t cols = (p->wo > 0 ? (p->wo - 1) * p->sw : 0) + (p->kw - 1) * p->dw + 1;
    return rows * cols * (p->cig > 0 ? p->cig : 1);
}

#endif /* CF_CONV_INTERNAL_H */
