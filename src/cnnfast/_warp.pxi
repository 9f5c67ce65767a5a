# Warping kernels (csrc/warp): projective / affine warp of NHWC images, nearest or bilinear, with
# Keras's fill modes, and per-image intensity maps. Flat C-contiguous buffers, validated and sized by
# cnnfast.ops._warp (affine_warp, image_scale_shift).

cdef extern from "cnnfast/warp.h" nogil:
    cf_status cf_affine_warp(const float *x, int64_t n, int64_t h, int64_t w, int64_t c,
                             const double *transforms, int64_t n_transforms,
                             int interpolation, int fill_mode, float fill_value, float *y)


def affine_warp(const float[::1] x, tuple shape, const double[::1] transforms, int64_t n_transforms,
                int interpolation, int fill_mode, float fill_value, float[::1] y):
    """y := x (NHWC `shape`) warped by `transforms` (n_transforms rows of 8), y of `shape`"""
    cdef int64_t n = shape[0], h = shape[1], w = shape[2], c = shape[3]
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef const double *tp = NULL
    cdef cf_status st
    if transforms.shape[0] > 0:
        tp = &transforms[0]
    with nogil:
        st = cf_affine_warp(xp, n, h, w, c, tp, n_transforms, interpolation, fill_mode, fill_value, yp)
    check_status(st, "affine_warp")


cdef extern from "cnnfast/warp.h" nogil:
    cf_status cf_image_scale_shift(const float *x, int64_t n, int64_t hw, int64_t c, const float *scale,
                                   const float *shift, const float *mean_coef, float lo, float hi, float *y)


def image_scale_shift(const float[::1] x, int64_t n, int64_t hw, int64_t c, const float[::1] scale,
                      const float[::1] shift, const float[::1] mean_coef, float lo, float hi, float[::1] y):
    """y := clip(x * scale[b] + shift[b, k] + mean_coef[b] * mean_b,k(x), lo, hi) over (n, hw, c)
    images; mean_coef None: no mean term"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef const float *sp = _cf32_or_null(scale)
    cdef const float *hp = _cf32_or_null(shift)
    cdef const float *mp = _cf32_or_null(mean_coef)
    cdef cf_status st
    with nogil:
        st = cf_image_scale_shift(xp, n, hw, c, sp, hp, mp, lo, hi, yp)
    check_status(st, "image_scale_shift")
