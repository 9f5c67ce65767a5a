# Convolution kernels (csrc/conv): forward, backward-data, backward-filter, transposed forward,
# and the single-image correlation. Arguments arrive validated from cnnfast.ops._conv; sizes are
# read from the buffers, hyper-parameters are passed through.

cdef extern from "cnnfast.h" nogil:
    ctypedef struct cf_conv2d_params:
        int64_t n, h, w, c, kh, kw, cout, ho, wo
        int64_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, groups
        int algo
    cf_status cf_conv2d_fwd(const cf_conv2d_params *p, const float *x, const float *w,
                            const float *bias, int activation, float *y)
    cf_status cf_conv2d_bwd_data(const cf_conv2d_params *p, const float *dy, const float *w,
                                 float *dx)
    cf_status cf_conv2d_bwd_filter(const cf_conv2d_params *p, const float *x, const float *dy,
                                   float *dw, float *db)
    cf_status cf_conv2d_transpose_fwd(const cf_conv2d_params *p, const float *x, const float *w,
                                      const float *bias, int activation, float *y)
    cf_status cf_correlate2d(const float *image, int64_t h, int64_t w, const float *kernel,
                             int64_t kh, int64_t kw, int64_t pad_top, int64_t pad_left,
                             float *out, int64_t ho, int64_t wo)


cdef inline const float *_cptr4(const float[:, :, :, ::1] a):
    if a.shape[0] == 0 or a.shape[1] == 0 or a.shape[2] == 0 or a.shape[3] == 0:
        return NULL
    return &a[0, 0, 0, 0]


cdef inline float *_ptr4(float[:, :, :, ::1] a):
    if a.shape[0] == 0 or a.shape[1] == 0 or a.shape[2] == 0 or a.shape[3] == 0:
        return NULL
    return &a[0, 0, 0, 0]


cdef inline const float *_cptr1(const float[::1] a):
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


cdef inline float *_ptr1(float[::1] a):
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


cdef cf_conv2d_params _conv_params(Py_ssize_t *x_shape, Py_ssize_t *w_shape, Py_ssize_t *y_shape,
                                   int64_t cout, tuple hp):
    """Sizes from the buffers: x (n, h, w, c), w (kh, kw, ...), y (n, ho, wo, ...); hp = (sh, sw,
    pt, pl, dh, dw, groups, algo)."""
    cdef cf_conv2d_params p
    p.n, p.h, p.w, p.c = x_shape[0], x_shape[1], x_shape[2], x_shape[3]
    p.kh, p.kw = w_shape[0], w_shape[1]
    p.cout = cout
    p.ho, p.wo = y_shape[1], y_shape[2]
    p.stride_h, p.stride_w, p.pad_top, p.pad_left = hp[0], hp[1], hp[2], hp[3]
    p.dilation_h, p.dilation_w, p.groups, p.algo = hp[4], hp[5], hp[6], hp[7]
    return p


def conv2d_fwd(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] bias,
               float[:, :, :, ::1] y, tuple hp, int activation):
    """y = act(conv2d(x, w) + bias); hp = (sh, sw, pt, pl, dh, dw, groups, algo)."""
    cdef cf_conv2d_params p = _conv_params(x.shape, w.shape, y.shape, w.shape[3], hp)
    cdef const float *xp = _cptr4(x)
    cdef const float *wp = _cptr4(w)
    cdef const float *bp = _cptr1(bias)
    cdef float *yp = _ptr4(y)
    cdef cf_status st
    with nogil:
        st = cf_conv2d_fwd(&p, xp, wp, bp, activation, yp)
    check_status(st, "conv2d")


def conv2d_bwd_data(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] w,
                    float[:, :, :, ::1] dx, tuple hp):
    """dx = dL/dx of y = conv2d(dx-shaped x, w)."""
    cdef cf_conv2d_params p = _conv_params(dx.shape, w.shape, dy.shape, w.shape[3], hp)
    cdef const float *dyp = _cptr4(dy)
    cdef const float *wp = _cptr4(w)
    cdef float *dxp = _ptr4(dx)
    cdef cf_status st
    with nogil:
        st = cf_conv2d_bwd_data(&p, dyp, wp, dxp)
    check_status(st, "conv2d_backward")


def conv2d_bwd_filter(const float[:, :, :, ::1] x, const float[:, :, :, ::1] dy,
                      float[:, :, :, ::1] dw, float[::1] db, tuple hp):
    """dw = dL/dw, db = dL/dbias (db may be None)."""
    cdef cf_conv2d_params p = _conv_params(x.shape, dw.shape, dy.shape, dw.shape[3], hp)
    cdef const float *xp = _cptr4(x)
    cdef const float *dyp = _cptr4(dy)
    cdef float *dwp = _ptr4(dw)
    cdef float *dbp = _ptr1(db)
    cdef cf_status st
    with nogil:
        st = cf_conv2d_bwd_filter(&p, xp, dyp, dwp, dbp)
    check_status(st, "conv2d_backward")


def conv2d_transpose_fwd(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w,
                         const float[::1] bias, float[:, :, :, ::1] y, tuple hp, int activation):
    """y = act(conv2d_transpose(x, w) + bias): the backward-data of the convolution y -> x."""
    cdef cf_conv2d_params p = _conv_params(y.shape, w.shape, x.shape, w.shape[3], hp)
    cdef const float *xp = _cptr4(x)
    cdef const float *wp = _cptr4(w)
    cdef const float *bp = _cptr1(bias)
    cdef float *yp = _ptr4(y)
    cdef cf_status st
    with nogil:
        st = cf_conv2d_transpose_fwd(&p, xp, wp, bp, activation, yp)
    check_status(st, "conv2d_transpose")


def correlate2d(const float[:, ::1] image, const float[:, ::1] kernel, float[:, ::1] out,
                int64_t pad_top, int64_t pad_left):
    """out = zero-padded 2-D cross-correlation of image with kernel."""
    cdef const float *ip = NULL
    cdef const float *kp = NULL
    cdef float *op = NULL
    if image.shape[0] > 0 and image.shape[1] > 0:
        ip = &image[0, 0]
    if kernel.shape[0] > 0 and kernel.shape[1] > 0:
        kp = &kernel[0, 0]
    if out.shape[0] > 0 and out.shape[1] > 0:
        op = &out[0, 0]
    cdef cf_status st
    with nogil:
        st = cf_correlate2d(ip, image.shape[0], image.shape[1], kp, kernel.shape[0],
                            kernel.shape[1], pad_top, pad_left, op, out.shape[0], out.shape[1])
    check_status(st, "correlate2d")
