/*
 * cnnfast/warp.h — projective / affine warping of NHWC float32 images (Keras 3's
 * keras.ops.image.affine_transform, TensorFlow's ImageProjectiveTransformV3), and the
 * per-image intensity maps of the colour augmentations.
 *
 * Geometry: each image b has its own 8 parameters t = [a0, a1, a2, b0, b1, b2, c0, c1] (or one
 * set shared by every image). Output pixel (x, y) — x the column, y the row, integer pixel
 * indices — reads the input at
 *     x' = (a0 x + a1 y + a2) / k,   y' = (b0 x + b1 y + b2) / k,   k = c0 x + c1 y + 1.
 * The output has the input's size. A point with k == 0 (or non-finite coordinates) is fill_value.
 *
 * Interpolation: nearest reads pixel (rint(x'), rint(y')) (ties to even, as torch.round);
 * bilinear blends the four taps floor(.) and floor(.) + 1 of each axis.
 * Each tap index i of an axis of n pixels is mapped into the image per fill mode, exactly as
 * Keras 3's map_coordinates (jax/torch/numpy backends) does, tap by tap:
 *     constant  a tap outside [0, n) contributes fill_value (with its weight)
 *     nearest   clamp to [0, n - 1]                        (a a a | a b c d | d d d)
 *     wrap      i mod n                                    (a b c d | a b c d | a b c d)
 *     reflect   half-sample symmetric                      (d c b a | a b c d | d c b a)
 *
 * Threads: the n * h output rows are split statically; every output element is computed by one
 * thread from the input alone, so results are bit-identical for any thread count.
 */
#ifndef CNNFAST_WARP_H
#define CNNFAST_WARP_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CF_WARP_NEAREST = 0, CF_WARP_BILINEAR = 1 } cf_warp_interpolation;

typedef enum {
    CF_FILL_CONSTANT = 0,
    CF_FILL_NEAREST = 1,
    CF_FILL_WRAP = 2,
    CF_FILL_REFLECT = 3
} cf_fill_mode;

/* y = x warped by `transforms`.
 *   x, y          (n, h, w, c) images; y must not overlap x
 *   transforms    n_transforms rows of 8 doubles, n_transforms == n or 1 (shared)
 *   interpolation a cf_warp_interpolation; fill_mode a cf_fill_mode
 *   fill_value    the value of points (constant mode: taps) outside the image
 * Sizes >= 0. Returns CF_ERR_ARGUMENT for a bad size, mode or pointer. */
cf_status cf_affine_warp(const float *x, int64_t n, int64_t h, int64_t w, int64_t c,
                         const double *transforms, int64_t n_transforms,
                         int interpolation, int fill_mode, float fill_value, float *y);

/* y = clamp(x * scale[b] + shift[b, k] + mean_coef[b] * mean[b, k], lo, hi) for channel k of
 * pixel p of image b, mean[b, k] being the mean of that channel over image b.
 *   x, y       (n, hw, c) images (y may be x: in place)
 *   scale      n factors; shift (n, c) offsets
 *   mean_coef  n weights of the channel means, or NULL for none (no mean pass)
 * A NaN input stays NaN. Sizes >= 0. */
cf_status cf_image_scale_shift(const float *x, int64_t n, int64_t hw, int64_t c, const float *scale,
                               const float *shift, const float *mean_coef, float lo, float hi, float *y);

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_WARP_H */
