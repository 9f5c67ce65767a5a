# Optimiser kernels (csrc/optim): fused in-place updates of flat float32 arrays (SGD, Adam /
# AdamW / AMSGrad, RMSprop), weight decay and the sum of squares for global-norm clipping.
# cnnfast.ops checks every array (float32, C-contiguous, writeable, same length) first.

cdef extern from "cnnfast.h" nogil:
    cf_status cf_sgd_update(float *param, const float *grad, float *velocity, int64_t n, double learning_rate,
                            double momentum, int nesterov, double weight_decay)
    cf_status cf_adam_update(float *param, const float *grad, float *m, float *v, float *v_hat, int64_t n,
                             double learning_rate, double beta_1, double beta_2, double epsilon, int64_t step,
                             double weight_decay)
    cf_status cf_rmsprop_update(float *param, const float *grad, float *velocity, float *average_grad,
                                float *momentum_buffer, int64_t n, double learning_rate, double rho,
                                double momentum, double epsilon, double weight_decay)
    cf_status cf_weight_decay(float *param, int64_t n, double learning_rate, double weight_decay)
    cf_status cf_sum_squares(const float *x, int64_t n, double *out)


def sgd_update(float[::1] param, const float[::1] grad, float[::1] velocity, double learning_rate,
               double momentum, bint nesterov, double weight_decay):
    """param, velocity := one SGD (momentum / Nesterov) step; velocity may be None"""
    cdef float *pp = _f32_or_null(param)
    cdef const float *gp = _cf32_or_null(grad)
    cdef float *vp = _f32_or_null(velocity)
    cdef int64_t n = param.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_sgd_update(pp, gp, vp, n, learning_rate, momentum, nesterov, weight_decay)
    check_status(st, "sgd_update")


def adam_update(float[::1] param, const float[::1] grad, float[::1] m, float[::1] v, float[::1] v_hat,
                double learning_rate, double beta_1, double beta_2, double epsilon, int64_t step,
                double weight_decay):
    """param, m, v (, v_hat) := one Adam / AdamW (/ AMSGrad) step; v_hat may be None"""
    cdef float *pp = _f32_or_null(param)
    cdef const float *gp = _cf32_or_null(grad)
    cdef float *mp = _f32_or_null(m)
    cdef float *vp = _f32_or_null(v)
    cdef float *hp = _f32_or_null(v_hat)
    cdef int64_t n = param.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_adam_update(pp, gp, mp, vp, hp, n, learning_rate, beta_1, beta_2, epsilon, step, weight_decay)
    check_status(st, "adam_update")


def rmsprop_update(float[::1] param, const float[::1] grad, float[::1] velocity, float[::1] average_grad,
                   float[::1] momentum_buffer, double learning_rate, double rho, double momentum,
                   double epsilon, double weight_decay):
    """param and state := one RMSprop step; average_grad / momentum_buffer may be None"""
    cdef float *pp = _f32_or_null(param)
    cdef const float *gp = _cf32_or_null(grad)
    cdef float *vp = _f32_or_null(velocity)
    cdef float *ap = _f32_or_null(average_grad)
    cdef float *bp = _f32_or_null(momentum_buffer)
    cdef int64_t n = param.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_rmsprop_update(pp, gp, vp, ap, bp, n, learning_rate, rho, momentum, epsilon, weight_decay)
    check_status(st, "rmsprop_update")


def weight_decay(float[::1] param, double learning_rate, double decay):
    """param -= param * decay * learning_rate"""
    cdef float *pp = _f32_or_null(param)
    cdef int64_t n = param.shape[0]
    cdef cf_status st
    with nogil:
        st = cf_weight_decay(pp, n, learning_rate, decay)
    check_status(st, "apply_weight_decay")


def sum_squares(const float[::1] x):
    """sum(x^2) in float64"""
    cdef const float *xp = _cf32_or_null(x)
    cdef int64_t n = x.shape[0]
    cdef double out = 0.0
    cdef cf_status st
    with nogil:
        st = cf_sum_squares(xp, n, &out)
    check_status(st, "global_norm")
    return out
