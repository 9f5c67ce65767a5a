/*
 * cnnfast/resize.h — bilinear resizing of NHWC float32 images, forward and backward.
 *
 * Geometry: "half pixel" centres, as Keras 3's UpSampling2D(interpolation="bilinear") and
 * ops.image.resize, torch.nn.functional.interpolate(mode="bilinear", align_corners=False) and
 * ONNX Resize(mode="linear", coordinate_transformation_mode="half_pixel") define it: output
 * pixel o of an axis of length out reads the input at s = (o + 0.5) * in / out - 0.5, clamped to
 * [0, in - 1]; it blends pixels floor(s) and floor(s) + 1 (the last pixel repeats at the edge)
 * with weights 1 - (s - floor(s)) and s - floor(s). No antialiasing (as for upsampling).
 *
 * Threads: images x rows of the output are split statically for the forward pass; the backward
 * pass (a scatter-add) splits the channel axis instead, so no two threads write one element and
 * the sums run in a fixed order: bit-identical results for any thread count.
 */
#ifndef CNNFAST_RESIZE_H
#define CNNFAST_RESIZE_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = bilinear resize of x; x is (n, h, w, c), y is (n, ho, wo, c). Sizes >= 0; h, w >= 1 when
 * ho, wo >= 1. */
cf_status cf_resize_bilinear_fwd(const float *x, int64_t n, int64_t h, int64_t w, int64_t c,
                                 float *y, int64_t ho, int64_t wo);

/* dx = the gradient of cf_resize_bilinear_fwd for dy (n, ho, wo, c); dx (n, h, w, c) is
 * overwritten. */
cf_status cf_resize_bilinear_bwd(const float *dy, int64_t n, int64_t h, int64_t w, int64_t c,
                                 float *dx, int64_t ho, int64_t wo);

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_RESIZE_H */
