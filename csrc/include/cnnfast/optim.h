/*
 * cnnfast/optim.h — fused optimiser updates on flat float32 arrays, in place.
 *
 * A model keeps every trainable weight in one flat buffer (and the optimiser state in buffers of
 * the same length), so one call updates the whole model in a single pass over memory. Each
 * kernel applies the Keras 3 update rule (keras/src/optimizers/{sgd,adam,rmsprop}.py) element by element, in
 * the same order of operations; scalar coefficients (1 - beta, Adam's bias correction) are
 * computed in float64 and rounded to float32 once.
 *
 * Decoupled weight decay (Keras `weight_decay`, as in AdamW) is folded into every update:
 * w -= w * weight_decay * learning_rate is applied first, exactly as Keras' _apply_weight_decay
 * does before update_step. Pass 0 for none.
 *
 * Threads: arrays of more than ~128 KB are split statically in 16-element chunks; an update is
 * element-wise, so results do not depend on the thread count. cf_sum_squares keeps its block
 * sums in the calling thread's last workspace slot (CF_WORKSPACE_SLOTS - 1).
 */
#ifndef CNNFAST_OPTIM_H
#define CNNFAST_OPTIM_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SGD (keras.optimizers.SGD):
 *   velocity == NULL:  w -= g * lr
 *   else:              v = v * momentum - g * lr;  w += v            (nesterov = 0)
 *                      v = v * momentum - g * lr;  w += v * momentum - g * lr  (nesterov = 1) */
cf_status cf_sgd_update(
        float *param,          /* weights, n, updated */
        const float *grad,     /* gradients, n */
        float *velocity,       /* momentum buffer, n, updated; NULL for plain SGD */
        int64_t n,             /* element count */
        double learning_rate,  /* lr */
        double momentum,       /* momentum (used when velocity != NULL) */
        int nesterov,          /* 1 for Nesterov momentum */
        double weight_decay);  /* decoupled weight decay, 0 for none */

/* Adam / AdamW / AMSGrad (keras.optimizers.Adam, AdamW):
 *   alpha = lr * sqrt(1 - beta_2^step) / (1 - beta_1^step)
 *   m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
 *   v_hat = max(v_hat, v) (when v_hat != NULL; then v_hat replaces v below)
 *   w -= (m * alpha) / (sqrt(v) + epsilon) */
cf_status cf_adam_update(
        float *param,          /* weights, n, updated */
        const float *grad,     /* gradients, n */
        float *m,              /* first moment, n, updated */
        float *v,              /* second moment, n, updated */
        float *v_hat,          /* AMSGrad running max of v, n, updated; NULL for Adam */
        int64_t n,             /* element count */
        double learning_rate,  /* lr */
        double beta_1,         /* first-moment decay */
        double beta_2,         /* second-moment decay */
        double epsilon,        /* added to sqrt(v) */
        int64_t step,          /* 1-based update count (Keras iterations + 1), >= 1 */
        double weight_decay);  /* decoupled weight decay (AdamW), 0 for none */

/* RMSprop (keras.optimizers.RMSprop):
 *   v = rho * v + (1 - rho) * g^2
 *   centered: a = rho * a + (1 - rho) * g;  denom = v - a^2 + epsilon;  else denom = v + epsilon
 *   inc = lr * g / sqrt(denom)
 *   momentum_buffer != NULL: b = momentum * b + inc;  w -= b;   else w -= inc */
cf_status cf_rmsprop_update(
        float *param,            /* weights, n, updated */
        const float *grad,       /* gradients, n */
        float *velocity,         /* mean square, n, updated */
        float *average_grad,     /* mean gradient, n, updated (centered); NULL otherwise */
        float *momentum_buffer,  /* momentum, n, updated; NULL when momentum == 0 */
        int64_t n,               /* element count */
        double learning_rate,    /* lr */
        double rho,              /* decay of the averages */
        double momentum,         /* momentum (used when momentum_buffer != NULL) */
        double epsilon,          /* added under the square root */
        double weight_decay);    /* decoupled weight decay, 0 for none */

/* w -= w * weight_decay * learning_rate (Keras' _apply_weight_decay), for optimisers that
 * apply decay separately. */
cf_status cf_weight_decay(
        float *param,           /* weights, n, updated */
        int64_t n,              /* element count */
        double learning_rate,   /* lr */
        double weight_decay);   /* decay */

/* *out = sum of x[i]^2 in float64 (fixed-order blocked sum, independent of the thread count);
 * for global-norm gradient clipping. */
cf_status cf_sum_squares(
        const float *x,   /* input, n */
        int64_t n,        /* element count */
        double *out);     /* the sum */

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_OPTIM_H */
