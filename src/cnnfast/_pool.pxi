# Pooling kernels (csrc/pool): NHWC max / average / global pooling, forward and backward.
#
# Every wrapper takes flat (1-D) C-contiguous buffers that cnnfast.ops.max_pool2d & co. have
# already validated and sized; argmax buffers of any index type arrive as their raw bytes.
#
# The pointer helpers below are shared with _eltwise.pxi and _optim.pxi (included after this
# file): an empty or absent buffer becomes NULL, which the C kernels accept for empty sizes.

cdef extern from "cnnfast.h" nogil:
    ctypedef struct cf_pool2d_shape:
        int64_t n, h, w, c
        int64_t ho, wo
        int64_t ph, pw
        int64_t sh, sw
        int64_t pad_top, pad_left

    cf_status cf_maxpool2d_fwd(const cf_pool2d_shape *s, const float *x, float *y, void *argmax, int index_bytes)
    cf_status cf_maxpool2d_bwd(const cf_pool2d_shape *s, const float *dy, const void *argmax, int index_bytes, float *dx)
    cf_status cf_avgpool2d_fwd(const cf_pool2d_shape *s, const float *x, float *y)
    cf_status cf_avgpool2d_bwd(const cf_pool2d_shape *s, const float *dy, float *dx)
    cf_status cf_global_avgpool2d_fwd(const float *x, float *y, int64_t n, int64_t hw, int64_t c)
    cf_status cf_global_avgpool2d_bwd(const float *dy, float *dx, int64_t n, int64_t hw, int64_t c)
    cf_status cf_global_maxpool2d_fwd(const float *x, float *y, int32_t *argmax, int64_t n, int64_t hw, int64_t c)
    cf_status cf_global_maxpool2d_bwd(const float *dy, const int32_t *argmax, float *dx, int64_t n, int64_t hw, int64_t c)


cdef inline float *_f32_or_null(float[::1] a):
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]

cdef inline const float *_cf32_or_null(const float[::1] a):
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]

cdef inline uint8_t *_u8_or_null(uint8_t[::1] a):
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]

cdef inline const uint8_t *_cu8_or_null(const uint8_t[::1] a):
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]

cdef inline int32_t *_i32_or_null(int32_t[::1] a):
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]

cdef inline const int32_t *_ci32_or_null(const int32_t[::1] a):
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


cdef cf_pool2d_shape _pool_shape(tuple geometry) except *:
    """(n, h, w, c, ho, wo, ph, pw, sh, sw, pad_top, pad_left) -> cf_pool2d_shape"""
    cdef cf_pool2d_shape s
    (s.n, s.h, s.w, s.c, s.ho, s.wo, s.ph, s.pw, s.sh, s.sw, s.pad_top, s.pad_left) = geometry
    return s


def maxpool2d_fwd(tuple geometry, const float[::1] x, float[::1] y, uint8_t[::1] argmax_bytes, int index_bytes):
    """y, argmax := max pooling of x (argmax_bytes may be None)"""
    cdef cf_pool2d_shape s = _pool_shape(geometry)
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef void *ap = _u8_or_null(argmax_bytes)
    cdef cf_status st
    with nogil:
        st = cf_maxpool2d_fwd(&s, xp, yp, ap, index_bytes)
    check_status(st, "max_pool2d")


def maxpool2d_bwd(tuple geometry, const float[::1] dy, const uint8_t[::1] argmax_bytes, int index_bytes, float[::1] dx):
    """dx := scatter of dy to the argmax cells"""
    cdef cf_pool2d_shape s = _pool_shape(geometry)
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const void *ap = _cu8_or_null(argmax_bytes)
    cdef float *dxp = _f32_or_null(dx)
    cdef cf_status st
    with nogil:
        st = cf_maxpool2d_bwd(&s, dyp, ap, index_bytes, dxp)
    check_status(st, "max_pool2d_backward")


def avgpool2d_fwd(tuple geometry, const float[::1] x, float[::1] y):
    """y := average pooling of x over the real cells of each window"""
    cdef cf_pool2d_shape s = _pool_shape(geometry)
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef cf_status st
    with nogil:
        st = cf_avgpool2d_fwd(&s, xp, yp)
    check_status(st, "avg_pool2d")


def avgpool2d_bwd(tuple geometry, const float[::1] dy, float[::1] dx):
    """dx := dy spread evenly over the real cells of each window"""
    cdef cf_pool2d_shape s = _pool_shape(geometry)
    cdef const float *dyp = _cf32_or_null(dy)
    cdef float *dxp = _f32_or_null(dx)
    cdef cf_status st
    with nogil:
        st = cf_avgpool2d_bwd(&s, dyp, dxp)
    check_status(st, "avg_pool2d_backward")


def global_avgpool2d_fwd(const float[::1] x, float[::1] y, int64_t n, int64_t hw, int64_t c):
    """y[i, c] := mean_p x[i, p, c]"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef cf_status st
    with nogil:
        st = cf_global_avgpool2d_fwd(xp, yp, n, hw, c)
    check_status(st, "global_avg_pool2d")


def global_avgpool2d_bwd(const float[::1] dy, float[::1] dx, int64_t n, int64_t hw, int64_t c):
    """dx[i, p, c] := dy[i, c] / hw"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef float *dxp = _f32_or_null(dx)
    cdef cf_status st
    with nogil:
        st = cf_global_avgpool2d_bwd(dyp, dxp, n, hw, c)
    check_status(st, "global_avg_pool2d_backward")


def global_maxpool2d_fwd(const float[::1] x, float[::1] y, int32_t[::1] argmax, int64_t n, int64_t hw, int64_t c):
    """y[i, c] := max_p x[i, p, c]; argmax[i, c] := its pixel (argmax may be None)"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef int32_t *ap = _i32_or_null(argmax)
    cdef cf_status st
    with nogil:
        st = cf_global_maxpool2d_fwd(xp, yp, ap, n, hw, c)
    check_status(st, "global_max_pool2d")


def global_maxpool2d_bwd(const float[::1] dy, const int32_t[::1] argmax, float[::1] dx, int64_t n, int64_t hw, int64_t c):
    """dx := 0; dx[i, argmax[i, c], c] := dy[i, c]"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const int32_t *ap = _ci32_or_null(argmax)
    cdef float *dxp = _f32_or_null(dx)
    cdef cf_status st
    with nogil:
        st = cf_global_maxpool2d_bwd(dyp, ap, dxp, n, hw, c)
    check_status(st, "global_max_pool2d_backward")


# Convolution followed by max pooling (csrc/conv/cf_conv2d.c). It lives here because it needs
# both the convolution declarations (_conv.pxi, included earlier) and cf_pool2d_shape.
cdef extern from "cnnfast.h" nogil:
    cf_status cf_conv2d_fwd_maxpool(const cf_conv2d_params *p, const float *x, const float *w,
                                    const float *bias, int activation, const cf_pool2d_shape *pool,
                                    float *y, void *argmax, int index_bytes)


def conv2d_fwd_maxpool(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] bias,
                       tuple conv_out_shape, tuple hp, int activation, tuple pool_geometry,
                       float[::1] y, uint8_t[::1] argmax_bytes, int index_bytes):
    """y, argmax := max_pool(act(conv2d(x, w) + bias)); conv_out_shape = (n, ho, wo, cout)."""
    cdef cf_conv2d_params p = _conv_params(x.shape, w.shape, x.shape, w.shape[3], hp)
    p.ho, p.wo = conv_out_shape[1], conv_out_shape[2]
    cdef cf_pool2d_shape s = _pool_shape(pool_geometry)
    cdef const float *xp = _cptr4(x)
    cdef const float *wp = _cptr4(w)
    cdef const float *bp = _cptr1(bias)
    cdef float *yp = _f32_or_null(y)
    cdef void *ap = _u8_or_null(argmax_bytes)
    cdef cf_status st
    with nogil:
        st = cf_conv2d_fwd_maxpool(&p, xp, wp, bp, activation, &s, yp, ap, index_bytes)
    check_status(st, "conv2d_max_pool2d")
