/*
 * cnnfast/conv.h — 2-D convolution: forward, backward-data, backward-filter, and the textbook
 * single-image correlation.
 *
 * Layout: images NHWC, weights HWIO (kh, kw, c / groups, cout) exactly as Keras stores them;
 * output channel o of group g is g * (cout / groups) + o. Convolution here is cross-correlation
 * (no kernel flip), as in Keras and PyTorch:
 *
 *     y[n, oh, ow, o] = bias[o] + sum_{i, j, ci} x[n, oh*sh - pt + i*dh, ow*sw - pl + j*dw, g*cig + ci]
 *                                                 * w[i, j, ci, o]
 *
 * with zeros read outside the input. The caller computes the output size (ho, wo) from its padding
 * rule ("valid", "same", ...); the kernels take only the top/left padding and read zeros for
 * every row/column past the bottom/right edge, so any padding rule reduces to these numbers.
 *
 * Example (the second layer of a Keras MNIST model, 26x26x32 -> 24x24x32, batch 64):
 *
 *     cf_conv2d_params p = {.n = 64, .h = 26, .w = 26, .c = 32, .kh = 3, .kw = 3, .cout = 32,
 *                           .ho = 24, .wo = 24, .stride_h = 1, .stride_w = 1, .dilation_h = 1,
 *                           .dilation_w = 1, .groups = 1};
 *     cf_conv2d_fwd(&p, x, w, bias, CF_CONV_ACT_RELU, y);          // y = relu(conv(x, w) + bias)
 *     cf_conv2d_bwd_data(&p, dy, w, dx);                           // dx = dL/dx
 *     cf_conv2d_bwd_filter(&p, x, dy, dw, db);                     // dw = dL/dw, db = dL/dbias
 *
 * All functions return CF_OK, CF_ERR_ARGUMENT for inconsistent sizes, or CF_ERR_NOMEM when the
 * per-thread workspace cannot grow. Results are bit-identical run to run for a given thread count
 * and ISA path (backward-filter reduces per-thread partial sums in a fixed order).
 */
#ifndef CNNFAST_CONV_H
#define CNNFAST_CONV_H

#include "cnnfast/runtime.h"
#include "cnnfast/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Activation fused into the forward epilogue. */
#define CF_CONV_ACT_NONE 0
#define CF_CONV_ACT_RELU 1
#define CF_CONV_ACT_RELU6 2   /* min(max(., 0), 6); not for cf_conv2d_fwd_maxpool */

/* Algorithm selection (cf_conv2d_params.algo). AUTO is what cnnfast.ops uses; the others exist
 * so tests and benchmarks can force a path. A forced algorithm that cannot run the problem
 * returns CF_ERR_ARGUMENT. */
#define CF_CONV_ALGO_AUTO 0       /* pick per shape */
#define CF_CONV_ALGO_IGEMM 1      /* register-blocked implicit GEMM (any shape, any groups) */
#define CF_CONV_ALGO_DEPTHWISE 2  /* channel-vectorised direct loops; needs c == groups */
#define CF_CONV_ALGO_WINOGRAD 3   /* Winograd F(2x2, 3x3); needs 3x3, stride 1, dilation 1, groups 1 */
#define CF_CONV_ALGO_GEMM 4       /* pointwise: 1x1, stride 1, no padding, groups 1; forward and
                                     backward-data are one sgemm on the NHWC tensor seen as a
                                     (n*h*w, c) matrix (backward-filter runs IGEMM) */
#define CF_CONV_ALGO_IM2COL 5     /* forward only, groups 1: the patches of a few images copied into
                                     a (pixels, kh*kw*c) matrix, then one sgemm against the HWIO
                                     weights (the other directions run IGEMM) */

typedef struct cf_conv2d_params {
    int64_t n;                        /* images in the batch (>= 0) */
    int64_t h, w;                     /* input height, width (>= 0) */
    int64_t c;                        /* input channels, all groups together (>= 0) */
    int64_t kh, kw;                   /* kernel height, width (>= 1) */
    int64_t cout;                     /* output channels, all groups together (>= 0) */
    int64_t ho, wo;                   /* output height, width (>= 0), from the caller's padding rule */
    int64_t stride_h, stride_w;       /* strides (>= 1) */
    int64_t pad_top, pad_left;        /* zero rows above / columns left of the input (>= 0) */
    int64_t dilation_h, dilation_w;   /* dilation rates (>= 1) */
    int64_t groups;                   /* >= 1; divides c and cout */
    int algo;                         /* CF_CONV_ALGO_*; 0 (AUTO) when zero-initialised */
} cf_conv2d_params;

/* Forward convolution with fused bias and activation. */
cf_status cf_conv2d_fwd(
        const cf_conv2d_params *p,    /* sizes, strides, padding, dilation, groups */
        const float *x,               /* input, (n, h, w, c) */
        const float *w,               /* weights, (kh, kw, c / groups, cout) */
        const float *bias,            /* (cout,), or NULL for no bias */
        int activation,               /* CF_CONV_ACT_NONE or CF_CONV_ACT_RELU */
        float *y);                    /* output, (n, ho, wo, cout); must not overlap the inputs */

/* Convolution (+ bias, ReLU) then max pooling, without writing the convolution output: each
 * image's activation is pooled from a per-thread buffer while it is in cache. Same results as
 * cf_conv2d_fwd followed by cf_maxpool2d_fwd, bit for bit. Not for depthwise problems
 * (CF_ERR_ARGUMENT), nor for c == 0 (no input channels; the caller fills bias-only results). */
cf_status cf_conv2d_fwd_maxpool(
        const cf_conv2d_params *p,    /* the convolution, as for cf_conv2d_fwd */
        const float *x,               /* input, (n, h, w, c) */
        const float *w,               /* weights, (kh, kw, c / groups, cout) */
        const float *bias,            /* (cout,), or NULL */
        int activation,               /* CF_CONV_ACT_NONE or CF_CONV_ACT_RELU */
        const cf_pool2d_shape *pool,  /* pooling of the (n, ho, wo, cout) convolution output */
        float *y,                     /* pooled output, (n, pool->ho, pool->wo, cout) */
        void *argmax,                 /* window-cell indices as cf_maxpool2d_fwd writes them, or NULL */
        int index_bytes);             /* 1 (uint8) or 4 (int32) */

/* Gradient of the loss with respect to the input: dx = conv2d_fwd^T(dy). Every element of dx is
 * written (pixels no output depends on get 0). */
cf_status cf_conv2d_bwd_data(
        const cf_conv2d_params *p,    /* the forward problem's parameters */
        const float *dy,              /* output gradient, (n, ho, wo, cout) */
        const float *w,               /* weights, (kh, kw, c / groups, cout) */
        float *dx);                   /* input gradient, (n, h, w, c); must not overlap the inputs */

/* Transposed convolution (Keras Conv2DTranspose): y = act(bias + conv2d_fwd^T(x)), i.e. the
 * backward-data of the convolution p describes, whose *input* is y and whose *output* is x. So
 * p->h, p->w, p->c are y's height, width, channels, p->ho, p->wo, p->cout are x's, and w is that
 * convolution's HWIO weight (kh, kw, y channels, x channels) — the Keras Conv2DTranspose kernel
 * layout (kh, kw, filters, in_channels). p->groups must be 1 or the depthwise algorithm unused. */
cf_status cf_conv2d_transpose_fwd(
        const cf_conv2d_params *p,    /* the convolution y -> x this transposes */
        const float *x,               /* input, (n, ho, wo, cout) */
        const float *w,               /* weights, (kh, kw, c / groups, cout) */
        const float *bias,            /* (c,), or NULL */
        int activation,               /* CF_CONV_ACT_NONE or CF_CONV_ACT_RELU */
        float *y);                    /* output, (n, h, w, c); must not overlap the inputs */

/* Gradients with respect to the weights and the bias. Per-thread private accumulators are summed
 * in thread order, so the result is deterministic for a given thread count. */
cf_status cf_conv2d_bwd_filter(
        const cf_conv2d_params *p,    /* the forward problem's parameters */
        const float *x,               /* forward input, (n, h, w, c) */
        const float *dy,              /* output gradient, (n, ho, wo, cout) */
        float *dw,                    /* weight gradient, (kh, kw, c / groups, cout), overwritten */
        float *db);                   /* bias gradient, (cout,), overwritten; NULL to skip it */

/* Textbook 2-D cross-correlation of one single-channel image with one kernel (SciPy's
 * correlate2d with a zero boundary): out[r, c] = sum_{i, j} image[r - pad_top + i, c - pad_left + j]
 * * kernel[i, j], reading zeros outside the image. Convolution is this with a flipped kernel. */
cf_status cf_correlate2d(
        const float *image,           /* (h, w), row-major */
        int64_t h, int64_t w,         /* image height, width (>= 0) */
        const float *kernel,          /* (kh, kw), row-major */
        int64_t kh, int64_t kw,       /* kernel height, width (>= 0) */
        int64_t pad_top,              /* zero rows above the image (>= 0) */
        int64_t pad_left,             /* zero columns left of the image (>= 0) */
        float *out,                   /* (ho, wo), row-major; must not overlap the inputs */
        int64_t ho, int64_t wo);      /* output height, width (>= 0) */

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_CONV_H */
