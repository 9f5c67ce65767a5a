# Element-wise kernels (csrc/eltwise): activations, bias, softmax, fused softmax + cross-entropy,
# dropout, batch normalisation. Flat C-contiguous buffers, validated by cnnfast.ops first.
# The _*_or_null pointer helpers come from _pool.pxi.

cdef extern from "cnnfast.h" nogil:
    cf_status cf_relu_fwd(const float *x, float *y, int64_t n)
    cf_status cf_relu_bwd(const float *dy, const float *y, float *dx, int64_t n)
    cf_status cf_leaky_relu_fwd(const float *x, float *y, int64_t n, float negative_slope)
    cf_status cf_capped_relu_fwd(const float *x, float *y, int64_t n, float cap)
    cf_status cf_capped_relu_bwd(const float *dy, const float *y, float *dx, int64_t n, float cap)
    cf_status cf_leaky_relu_bwd(const float *dy, const float *x, float *dx, int64_t n, float negative_slope)
    cf_status cf_sigmoid_fwd(const float *x, float *y, int64_t n)
    cf_status cf_sigmoid_bwd(const float *dy, const float *y, float *dx, int64_t n)
    cf_status cf_tanh_fwd(const float *x, float *y, int64_t n)
    cf_status cf_tanh_bwd(const float *dy, const float *y, float *dx, int64_t n)
    cf_status cf_softmax_fwd(const float *x, float *y, int64_t outer, int64_t length, int64_t inner)
    cf_status cf_softmax_bwd(const float *dy, const float *y, float *dx, int64_t outer, int64_t length, int64_t inner)
    cf_status cf_bias_add(const float *x, const float *bias, float *y, int64_t rows, int64_t c)
    cf_status cf_bias_add_bwd(const float *dy, float *db, int64_t rows, int64_t c)
    cf_status cf_softmax_xent(const float *logits, const int32_t *labels, const float *targets,
                              const float *weights, float *dlogits, float *probs, double *loss,
                              int64_t n, int64_t c)
    cf_status cf_dropout(const float *x, float *y, int64_t n, double rate, uint64_t seed, uint64_t step)
    cf_status cf_batchnorm_fwd(const float *x, float *y, int64_t rows, int64_t c, const float *gamma,
                               const float *beta, float *moving_mean, float *moving_var, float *mean,
                               float *inv_std, double momentum, double epsilon, int training)
    cf_status cf_batchnorm_bwd(const float *dy, const float *x, const float *gamma, const float *mean,
                               const float *inv_std, float *dx, float *dgamma, float *dbeta,
                               int64_t rows, int64_t c, int training)


def relu_fwd(const float[::1] x, float[::1] y):
    """y := max(x, 0)"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef int64_t n = x.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_relu_fwd(xp, yp, n)
    check_status(st, "relu")


def relu_bwd(const float[::1] dy, const float[::1] y, float[::1] dx):
    """dx := dy * (y > 0)"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const float *yp = _cf32_or_null(y)
    cdef float *dxp = _f32_or_null(dx)
    cdef int64_t n = dy.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_relu_bwd(dyp, yp, dxp, n)
    check_status(st, "relu_backward")


def capped_relu_fwd(const float[::1] x, float[::1] y, float cap):
    """y := min(max(x, 0), cap)"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef int64_t n = x.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_capped_relu_fwd(xp, yp, n, cap)
    check_status(st, "capped_relu")


def capped_relu_bwd(const float[::1] dy, const float[::1] y, float[::1] dx, float cap):
    """dx := dy * (0 < y < cap)"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const float *yp = _cf32_or_null(y)
    cdef float *dxp = _f32_or_null(dx)
    cdef int64_t n = dy.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_capped_relu_bwd(dyp, yp, dxp, n, cap)
    check_status(st, "capped_relu_backward")


def leaky_relu_fwd(const float[::1] x, float[::1] y, float negative_slope):
    """y := x < 0 ? slope * x : x"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef int64_t n = x.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_leaky_relu_fwd(xp, yp, n, negative_slope)
    check_status(st, "leaky_relu")


def leaky_relu_bwd(const float[::1] dy, const float[::1] x, float[::1] dx, float negative_slope):
    """dx := x > 0 ? dy : slope * dy"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const float *xp = _cf32_or_null(x)
    cdef float *dxp = _f32_or_null(dx)
    cdef int64_t n = dy.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_leaky_relu_bwd(dyp, xp, dxp, n, negative_slope)
    check_status(st, "leaky_relu_backward")


def sigmoid_fwd(const float[::1] x, float[::1] y):
    """y := 1 / (1 + exp(-x))"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef int64_t n = x.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_sigmoid_fwd(xp, yp, n)
    check_status(st, "sigmoid")


def sigmoid_bwd(const float[::1] dy, const float[::1] y, float[::1] dx):
    """dx := dy * y * (1 - y)"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const float *yp = _cf32_or_null(y)
    cdef float *dxp = _f32_or_null(dx)
    cdef int64_t n = dy.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_sigmoid_bwd(dyp, yp, dxp, n)
    check_status(st, "sigmoid_backward")


def tanh_fwd(const float[::1] x, float[::1] y):
    """y := tanh(x)"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef int64_t n = x.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_tanh_fwd(xp, yp, n)
    check_status(st, "tanh")


def tanh_bwd(const float[::1] dy, const float[::1] y, float[::1] dx):
    """dx := dy * (1 - y^2)"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const float *yp = _cf32_or_null(y)
    cdef float *dxp = _f32_or_null(dx)
    cdef int64_t n = dy.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_tanh_bwd(dyp, yp, dxp, n)
    check_status(st, "tanh_backward")


def softmax_fwd(const float[::1] x, float[::1] y, int64_t outer, int64_t length, int64_t inner):
    """y := softmax of x along the middle axis of (outer, length, inner)"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef cf_status st
    with nogil:
        st = cf_softmax_fwd(xp, yp, outer, length, inner)
    check_status(st, "softmax")


def softmax_bwd(const float[::1] dy, const float[::1] y, float[::1] dx, int64_t outer, int64_t length, int64_t inner):
    """dx := y * (dy - sum(dy * y)) along the middle axis"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const float *yp = _cf32_or_null(y)
    cdef float *dxp = _f32_or_null(dx)
    cdef cf_status st
    with nogil:
        st = cf_softmax_bwd(dyp, yp, dxp, outer, length, inner)
    check_status(st, "softmax_backward")


def bias_add(const float[::1] x, const float[::1] bias, float[::1] y, int64_t rows, int64_t c):
    """y[r, :] := x[r, :] + bias"""
    cdef const float *xp = _cf32_or_null(x)
    cdef const float *bp = _cf32_or_null(bias)
    cdef float *yp = _f32_or_null(y)
    cdef cf_status st
    with nogil:
        st = cf_bias_add(xp, bp, yp, rows, c)
    check_status(st, "bias_add")


def bias_add_bwd(const float[::1] dy, float[::1] db, int64_t rows, int64_t c):
    """db := sum over rows of dy"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef float *dbp = _f32_or_null(db)
    cdef cf_status st
    with nogil:
        st = cf_bias_add_bwd(dyp, dbp, rows, c)
    check_status(st, "bias_add_backward")


def softmax_xent(const float[::1] logits, const int32_t[::1] labels, const float[::1] targets,
                 const float[::1] weights, float[::1] dlogits, float[::1] probs, int64_t n, int64_t c):
    """mean cross-entropy of softmax(logits); dlogits, probs := its gradient, the probabilities"""
    cdef const float *lp = _cf32_or_null(logits)
    cdef const int32_t *yp = _ci32_or_null(labels)
    cdef const float *tp = _cf32_or_null(targets)
    cdef const float *wp = _cf32_or_null(weights)
    cdef float *dp = _f32_or_null(dlogits)
    cdef float *pp = _f32_or_null(probs)
    cdef double loss = 0.0
    cdef cf_status st
    with nogil:
        st = cf_softmax_xent(lp, yp, tp, wp, dp, pp, &loss, n, c)
    check_status(st, "softmax_cross_entropy")
    return loss


def dropout(const float[::1] x, float[::1] y, double rate, uint64_t seed, uint64_t step):
    """y := x * keep / (1 - rate), keep drawn from Philox4x32-10(seed, step, index)"""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef int64_t n = x.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_dropout(xp, yp, n, rate, seed, step)
    check_status(st, "dropout")


def batchnorm_fwd(const float[::1] x, float[::1] y, int64_t rows, int64_t c, const float[::1] gamma,
                  const float[::1] beta, const float[::1] moving_mean, const float[::1] moving_var,
                  float[::1] mean, float[::1] inv_std, double momentum, double epsilon, bint training):
    """y := (x - mean) * inv_std * gamma + beta; batch or moving statistics.
    The moving statistics are written only when training (the caller then checked them writeable)."""
    cdef const float *xp = _cf32_or_null(x)
    cdef float *yp = _f32_or_null(y)
    cdef const float *gp = _cf32_or_null(gamma)
    cdef const float *bp = _cf32_or_null(beta)
    cdef float *mmp = <float *>_cf32_or_null(moving_mean)
    cdef float *mvp = <float *>_cf32_or_null(moving_var)
    cdef float *mp = _f32_or_null(mean)
    cdef float *ip = _f32_or_null(inv_std)
    cdef cf_status st
    with nogil:
        st = cf_batchnorm_fwd(xp, yp, rows, c, gp, bp, mmp, mvp, mp, ip, momentum, epsilon, training)
    check_status(st, "batch_norm_forward")


def batchnorm_bwd(const float[::1] dy, const float[::1] x, const float[::1] gamma, const float[::1] mean,
                  const float[::1] inv_std, float[::1] dx, float[::1] dgamma, float[::1] dbeta,
                  int64_t rows, int64_t c, bint training):
    """dx, dgamma, dbeta := gradients of batch normalisation"""
    cdef const float *dyp = _cf32_or_null(dy)
    cdef const float *xp = _cf32_or_null(x)
    cdef const float *gp = _cf32_or_null(gamma)
    cdef const float *mp = _cf32_or_null(mean)
    cdef const float *ip = _cf32_or_null(inv_std)
    cdef float *dxp = _f32_or_null(dx)
    cdef float *dgp = _f32_or_null(dgamma)
    cdef float *dbp = _f32_or_null(dbeta)
    cdef cf_status st
    with nogil:
        st = cf_batchnorm_bwd(dyp, xp, gp, mp, ip, dxp, dgp, dbp, rows, c, training)
    check_status(st, "batch_norm_backward")
