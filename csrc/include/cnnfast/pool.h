/*
 * cnnfast/pool.h — 2-D max / average pooling and global pooling over NHWC float32 images,
 * forward and backward.
 *
 * Geometry follows Keras (channels_last): a window of ph x pw cells moves with strides sh x sw;
 * output row oh covers input rows oh*sh - pad_top ... oh*sh - pad_top + ph - 1, clipped to the
 * image. Padded cells never take part: max pooling ignores them and average pooling divides by
 * the number of real cells (Keras / TensorFlow "same" semantics). For padding="valid" pad_top =
 * pad_left = 0; for "same" the TensorFlow split puts the odd cell at the bottom / right.
 *
 * Max pooling can record, per output element, which cell of its window won: the index
 * kh * pw + kw, stored as uint8 (index_bytes = 1, windows of at most 256 cells) or int32
 * (index_bytes = 4, any window). Ties keep the first cell in row-major window order; a NaN in a
 * window wins (the first NaN), so NaNs propagate as in PyTorch. Backward routes each dy to the
 * recorded cell; windows that overlap (strides < pool size) accumulate in a fixed order.
 *
 * Threads: forward kernels split the N*Ho output rows, backward kernels the N*H input rows
 * (each input row gathers from the windows that cover it), so no two threads write the same
 * element and results do not depend on the thread count. Calls smaller than ~128 KB of data
 * run on one thread. Scratch (average pooling, global average pooling) comes from each
 * thread's last workspace slot (CF_WORKSPACE_SLOTS - 1).
 */
#ifndef CNNFAST_POOL_H
#define CNNFAST_POOL_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shape of one 2-D pooling call. */
typedef struct cf_pool2d_shape {
    int64_t n, h, w, c;         /* input batch, height, width, channels (NHWC) */
    int64_t ho, wo;             /* output height and width */
    int64_t ph, pw;             /* window (pool_size) height and width, >= 1 */
    int64_t sh, sw;             /* strides, >= 1 */
    int64_t pad_top, pad_left;  /* cells of padding before the first row / column, < ph / pw */
} cf_pool2d_shape;

/* Max pooling forward. Returns CF_ERR_ARGUMENT for an inconsistent shape (a window with no real
 * cell, negative sizes) or index_bytes not 1/4 (or 1 with a window of more than 256 cells). */
cf_status cf_maxpool2d_fwd(
        const cf_pool2d_shape *s,  /* geometry */
        const float *x,            /* input,  (n, h, w, c) */
        float *y,                  /* output, (n, ho, wo, c) */
        void *argmax,              /* NULL, or (n, ho, wo, c) window indices kh*pw + kw */
        int index_bytes);          /* 1: argmax is uint8; 4: argmax is int32 */

/* Max pooling backward: dx = scatter of dy to the recorded cells (dx is fully overwritten).
 * Indices outside the window are ignored. */
cf_status cf_maxpool2d_bwd(
        const cf_pool2d_shape *s,  /* geometry of the forward call */
        const float *dy,           /* output gradient, (n, ho, wo, c) */
        const void *argmax,        /* (n, ho, wo, c) indices from cf_maxpool2d_fwd */
        int index_bytes,           /* 1 (uint8) or 4 (int32), as in the forward call */
        float *dx);                /* input gradient, (n, h, w, c), overwritten */

/* Average pooling forward: the mean over the real (non-padded) cells of each window. */
cf_status cf_avgpool2d_fwd(
        const cf_pool2d_shape *s,  /* geometry */
        const float *x,            /* input,  (n, h, w, c) */
        float *y);                 /* output, (n, ho, wo, c) */

/* Average pooling backward: each dy spread evenly over the real cells of its window. */
cf_status cf_avgpool2d_bwd(
        const cf_pool2d_shape *s,  /* geometry of the forward call */
        const float *dy,           /* output gradient, (n, ho, wo, c) */
        float *dx);                /* input gradient, (n, h, w, c), overwritten */

/* Global average pooling: y[i, c] = mean over the hw pixels of image i. hw >= 1 unless n*c == 0.
 * Pixels are summed in float32 blocks of 256, blocks summed in float32 (error ~ (256 + hw/256) ulp
 * worst case). */
cf_status cf_global_avgpool2d_fwd(
        const float *x,   /* input, (n, hw, c) (an NHWC image with H*W flattened) */
        float *y,         /* output, (n, c) */
        int64_t n,        /* images */
        int64_t hw,       /* pixels per image, H*W */
        int64_t c);       /* channels */

/* Global average pooling backward: dx[i, p, c] = dy[i, c] / hw. */
cf_status cf_global_avgpool2d_bwd(
        const float *dy,  /* output gradient, (n, c) */
        float *dx,        /* input gradient, (n, hw, c), overwritten */
        int64_t n,        /* images */
        int64_t hw,       /* pixels per image */
        int64_t c);       /* channels */

/* Global max pooling: y[i, c] = max over the pixels, argmax[i, c] = the pixel index (first one on
 * ties; a NaN wins). */
cf_status cf_global_maxpool2d_fwd(
        const float *x,   /* input, (n, hw, c) */
        float *y,         /* output, (n, c) */
        int32_t *argmax,  /* NULL, or (n, c) pixel indices in [0, hw) */
        int64_t n,        /* images */
        int64_t hw,       /* pixels per image, >= 1 unless n*c == 0 */
        int64_t c);       /* channels */

/* Global max pooling backward: dx is zero except dx[i, argmax[i, c], c] = dy[i, c]. Indices
 * outside [0, hw) are ignored. */
cf_status cf_global_maxpool2d_bwd(
        const float *dy,        /* output gradient, (n, c) */
        const int32_t *argmax,  /* (n, c) from cf_global_maxpool2d_fwd */
        float *dx,              /* input gradient, (n, hw, c), overwritten */
        int64_t n,              /* images */
        int64_t hw,             /* pixels per image */
        int64_t c);             /* channels */

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_POOL_H */
