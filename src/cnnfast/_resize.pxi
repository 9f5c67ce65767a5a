# Resizing kernels (csrc/resize): bilinear, half-pixel centres, NHWC, forward and backward.
# Flat C-contiguous buffers, validated and sized by cnnfast.ops.resize_bilinear.

cdef extern from "cnnfast.h" nogil:
    cf_status cf_resize_bilinear_fwd(const float *x, int64_t n, int64_t h, int64_t w, int64_t c,
                                     float *y, int64_t ho, int64_t wo)
    cf_status cf_resize_bilinear_bwd(const float *dy, int64_t n, int64_t h, int64_t w, int64_t c,
                                     float *dx, int64_t ho, int64_t wo)


def resize_bilinear_fwd(const float[::1] x, tuple shape, float[::1] y, int64_t ho, int64_t wo):
    """y := bilinear(x), x of NHWC `shape`, y (n, ho, wo, c)"""
    cdef int64_t n = shape[0], h = shape[1], w = shape[2], c = shape[3]
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef cf_status st
    with nogil:
        st = cf_resize_bilinear_fwd(xp, n, h, w, c, yp, ho, wo)
    check_status(st, "resize_bilinear")


def resize_bilinear_bwd(const float[::1] dy, tuple shape, float[::1] dx, int64_t ho, int64_t wo):
    """dx := the gradient of resize_bilinear for dy (n, ho, wo, c); dx of NHWC `shape`"""
    cdef int64_t n = shape[0], h = shape[1], w = shape[2], c = shape[3]
    cdef const float *dyp = _cf32_or_null(dy)
    cdef float *dxp = _f32_or_null(dx)
    cdef cf_status st
    with nogil:
        st = cf_resize_bilinear_bwd(dyp, n, h, w, c, dxp, ho, wo)
    check_status(st, "resize_bilinear_backward")
