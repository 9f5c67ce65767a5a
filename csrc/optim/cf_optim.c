/*
 * cf_optim.c — public optimiser entry points: check arguments, turn the float64
 * hyper-parameters into the float32 coefficients the element loops use (Adam's bias
 * correction included), then call the kernel table of the active ISA.
 */
#include "optim/cf_optim_internal.h"
#include <math.h>
#include <stddef.h>

static const cf_optim_kernels *optim_table(void) {
    switch (cf_get_isa()) {
        case CF_ISA_AVX512: return &cf_optim_kernels__avx512;
        case CF_ISA_AVX2: return &cf_optim_kernels__avx2;
        default: return &cf_optim_kernels__generic;
    }
}

static int is_finite(double v) { return isfinite(v) != 0; }

static cf_optim_coef base_coef(double lr, double weight_decay) {
    cf_optim_coef c = {0};
    c.lr = (float)lr;
    c.wd_lr = (float)(weight_decay * lr);
    return c;
}

cf_status cf_sgd_update(float *param, const float *grad, float *velocity, int64_t n, double learning_rate,
                        double momentum, int nesterov, double weight_decay) {
    if (n < 0 || !is_finite(learning_rate) || !is_finite(momentum) || !is_finite(weight_decay)) return CF_ERR_ARGUMENT;
    if (n == 0) return CF_OK;
    if (param == NULL || grad == NULL) return CF_ERR_ARGUMENT;
    cf_optim_coef c = base_coef(learning_rate, weight_decay);
    c.momentum = (float)momentum;
    c.nesterov = nesterov != 0;
    optim_table()->sgd(param, grad, velocity, n, &c);
    return CF_OK;
}

cf_status cf_adam_update(float *param, const float *grad, float *m, float *v, float *v_hat, int64_t n,
                         double learning_rate, double beta_1, double beta_2, double epsilon, int64_t step,
                         double weight_decay) {
    if (n < 0 || step < 1 || !is_finite(learning_rate) || !is_finite(beta_1) || !is_finite(beta_2) || !is_finite(epsilon) ||
        !is_finite(weight_decay) || beta_1 == 1.0)
        return CF_ERR_ARGUMENT;
    if (n == 0) return CF_OK;
    if (param == NULL || grad == NULL || m == NULL || v == NULL) return CF_ERR_ARGUMENT;
    cf_optim_coef c = base_coef(learning_rate, weight_decay);
    const double t = (double)step;
    c.alpha = (float)(learning_rate * sqrt(1.0 - pow(beta_2, t)) / (1.0 - pow(beta_1, t)));
    c.one_minus_beta_1 = (float)(1.0 - beta_1);
    c.one_minus_beta_2 = (float)(1.0 - beta_2);
    c.epsilon = (float)epsilon;
    optim_table()->adam(param, grad, m, v, v_hat, n, &c);
    return CF_OK;
}

cf_status cf_rmsprop_update(float *param, const float *grad, float *velocity, float *average_grad,
                            float *momentum_buffer, int64_t n, double learning_rate, double rho, double momentum,
                            double epsilon, double weight_decay) {
    if (n < 0 || !is_finite(learning_rate) || !is_finite(rho) || !is_finite(momentum) || !is_finite(epsilon) || !is_finite(weight_decay))
        return CF_ERR_ARGUMENT;
    if (n == 0) return CF_OK;
    if (param == NULL || grad == NULL || velocity == NULL) return CF_ERR_ARGUMENT;
    cf_optim_coef c = base_coef(learning_rate, weight_decay);
    c.rho = (float)rho;
    c.one_minus_rho = (float)(1.0 - rho);
    c.momentum = (float)momentum;
    c.epsilon = (float)epsilon;
    optim_table()->rmsprop(param, grad, velocity, average_grad, momentum_buffer, n, &c);
    return CF_OK;
}

cf_status cf_weight_decay(float *param, int64_t n, double learning_rate, double weight_decay) {
    if (n < 0 || !is_finite(learning_rate) || !is_finite(weight_decay)) return CF_ERR_ARGUMENT;
    if (n == 0) return CF_OK;
    if (param == NULL) return CF_ERR_ARGUMENT;
    cf_optim_coef c = base_coef(learning_rate, weight_decay);
    optim_table()->sgd(param, NULL, NULL, n, &c);  /* no gradient: the decay step alone */
    return CF_OK;
}

cf_status cf_sum_squares(const float *x, int64_t n, double *out) {
    if (n < 0 || out == NULL) return CF_ERR_ARGUMENT;
    *out = 0.0;
    if (n == 0) return CF_OK;
    if (x == NULL) return CF_ERR_ARGUMENT;
    return optim_table()->sum_squares(x, n, out);
}
