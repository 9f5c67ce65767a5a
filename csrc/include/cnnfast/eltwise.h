/*
 * cnnfast/eltwise.h — activations, bias, softmax, fused softmax + cross-entropy, dropout and
 * batch normalisation, forward and backward, on float32 arrays.
 *
 * Element-wise kernels take flat arrays of n elements; an output may be the same array as an
 * input (exact aliasing), never a partial overlap. Per-channel kernels take (rows, c) matrices
 * with the channel axis last and contiguous (NHWC activations flattened to rows = N*H*W).
 *
 * Accuracy: exp-based functions use a vectorised exp with ~1 ulp error; sigmoid, tanh and
 * softmax are within a few ulp of float64 references.
 *
 * Determinism: every reduction (softmax sums, bias gradient, batch-norm statistics, the
 * cross-entropy mean) runs in a fixed order that does not depend on the thread count: rows are
 * summed in blocks of 256 rows (float32), and block sums are added in block order in float64.
 * So results are bit-identical run to run and for 1 or many threads. Dropout masks depend only
 * on (seed, step, element index).
 *
 * Threads: large calls split their rows (or elements, in 64-element chunks) statically over
 * cf_get_num_threads() threads; calls touching less than ~128 KB stay on one thread.
 *
 * Scratch: the reductions use the calling thread's last workspace slot (CF_WORKSPACE_SLOTS - 1).
 */
#ifndef CNNFAST_ELTWISE_H
#define CNNFAST_ELTWISE_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = x < 0 ? 0 : x  (NaN stays NaN) */
cf_status cf_relu_fwd(
        const float *x,   /* input, n elements */
        float *y,         /* output, n elements (may be x) */
        int64_t n);       /* element count */

/* dx = y > 0 ? dy : 0 (the mask is recomputed from the forward output) */
cf_status cf_relu_bwd(
        const float *dy,  /* output gradient, n */
        const float *y,   /* forward output, n */
        float *dx,        /* input gradient, n (may be dy) */
        int64_t n);

/* y = x < 0 ? slope * x : x */
cf_status cf_leaky_relu_fwd(
        const float *x,         /* input, n */
        float *y,               /* output, n (may be x) */
        int64_t n,
        float negative_slope);  /* slope for x < 0 */

/* dx = x > 0 ? dy : slope * dy (as TensorFlow / Keras) */
cf_status cf_leaky_relu_bwd(
        const float *dy,        /* output gradient, n */
        const float *x,         /* forward input, n */
        float *dx,              /* input gradient, n (may be dy) */
        int64_t n,
        float negative_slope);

/* y = min(max(x, 0), cap): ReLU6 for cap = 6 (NaN stays NaN). cap must be >= 0 (+inf allowed). */
cf_status cf_capped_relu_fwd(
        const float *x,   /* input, n */
        float *y,         /* output, n (may be x) */
        int64_t n,
        float cap);       /* upper bound */

/* dx = 0 < y < cap ? dy : 0 (from the forward output; 0 at both kinks, as torch's hardtanh) */
cf_status cf_capped_relu_bwd(
        const float *dy,  /* output gradient, n */
        const float *y,   /* forward output, n */
        float *dx,        /* input gradient, n (may be dy) */
        int64_t n,
        float cap);

/* y = 1 / (1 + exp(-x)), computed without overflow */
cf_status cf_sigmoid_fwd(
        const float *x,   /* input, n */
        float *y,         /* output, n (may be x) */
        int64_t n);

/* dx = dy * y * (1 - y) */
cf_status cf_sigmoid_bwd(
        const float *dy,  /* output gradient, n */
        const float *y,   /* forward output, n */
        float *dx,        /* input gradient, n (may be dy) */
        int64_t n);

/* y = tanh(x) */
cf_status cf_tanh_fwd(
        const float *x,   /* input, n */
        float *y,         /* output, n (may be x) */
        int64_t n);

/* dx = dy * (1 - y * y) */
cf_status cf_tanh_bwd(
        const float *dy,  /* output gradient, n */
        const float *y,   /* forward output, n */
        float *dx,        /* input gradient, n (may be dy) */
        int64_t n);

/* Softmax along the middle axis of a C-contiguous (outer, len, inner) array:
 * y[o, :, i] = exp(x[o, :, i] - max) / sum. Any axis of an N-d array maps to this view. */
cf_status cf_softmax_fwd(
        const float *x,   /* input, outer * len * inner */
        float *y,         /* output, same shape (may be x) */
        int64_t outer,    /* product of the dimensions before the axis */
        int64_t len,      /* length of the softmax axis, >= 1 unless the array is empty */
        int64_t inner);   /* product of the dimensions after the axis */

/* dx = y * (dy - sum(dy * y)) along the same axis */
cf_status cf_softmax_bwd(
        const float *dy,  /* output gradient, outer * len * inner */
        const float *y,   /* forward output, same shape */
        float *dx,        /* input gradient, same shape (may be dy) */
        int64_t outer,    /* as in cf_softmax_fwd */
        int64_t len,
        int64_t inner);

/* y[r, :] = x[r, :] + bias */
cf_status cf_bias_add(
        const float *x,     /* input, (rows, c) */
        const float *bias,  /* (c) */
        float *y,           /* output, (rows, c) (may be x) */
        int64_t rows,       /* product of all dimensions but the last */
        int64_t c);         /* channels (the last dimension) */

/* db = sum over rows of dy (deterministic, see above) */
cf_status cf_bias_add_bwd(
        const float *dy,  /* output gradient, (rows, c) */
        float *db,        /* bias gradient, (c), overwritten (zeros when rows == 0) */
        int64_t rows,
        int64_t c);

/* Fused softmax + cross-entropy over (n, c) logits, numerically stable (log-sum-exp).
 * Exactly one of labels / targets is given:
 *   labels:  class indices in [0, c); loss_i = logsumexp(z_i) - z_i[label_i]
 *   targets: rows of probabilities t_i; loss_i = -sum_j t_ij log softmax(z_i)_j
 * *loss = sum_i w_i loss_i / n (w_i = 1 without weights; Keras' "sum over batch size");
 * dlogits = d(*loss)/d(logits) = w_i (softmax(z_i) sum_j t_ij - t_i) / n.
 * Returns CF_ERR_ARGUMENT if a label is out of range. */
cf_status cf_softmax_xent(
        const float *logits,    /* (n, c) */
        const int32_t *labels,  /* (n) class indices, or NULL */
        const float *targets,   /* (n, c) target probabilities, or NULL */
        const float *weights,   /* (n) sample weights, or NULL */
        float *dlogits,         /* (n, c) gradient of the mean loss, or NULL */
        float *probs,           /* (n, c) softmax probabilities, or NULL */
        double *loss,           /* the mean loss (0 when n == 0) */
        int64_t n, int64_t c);  /* rows and classes (c >= 1 when n > 0) */

/* Inverted dropout: y = keep ? x / (1 - rate) : 0, keep with probability 1 - rate. The decision
 * for element i is a pure function of (seed, step, i): Philox4x32-10 keyed by seed, counter
 * (block, step) (see cf_philox.h for the exact element -> block mapping). Calling it again with
 * the same (seed, step) on dy gives the backward pass. */
cf_status cf_dropout(
        const float *x,   /* input, n */
        float *y,         /* output, n (may be x) */
        int64_t n,
        double rate,      /* drop probability in [0, 1) */
        uint64_t seed,    /* Philox key */
        uint64_t step);   /* training step: a fresh mask per step */

/* Batch normalisation forward over the rows of (rows, c), per channel (Keras formulas):
 *   training: mean, var = batch mean and biased variance of each channel;
 *             moving_mean = moving_mean * momentum + mean * (1 - momentum), same for moving_var;
 *   inference: mean, var = moving_mean, moving_var (left unchanged);
 *   inv_std = 1 / sqrt(var + epsilon); y = x * (gamma * inv_std) + (beta - mean * gamma * inv_std). */
cf_status cf_batchnorm_fwd(
        const float *x,        /* input, (rows, c) */
        float *y,              /* output, (rows, c) (may be x) */
        int64_t rows, int64_t c,
        const float *gamma,    /* (c) scale, or NULL for 1 */
        const float *beta,     /* (c) offset, or NULL for 0 */
        float *moving_mean,    /* (c), updated in place when training */
        float *moving_var,     /* (c), updated in place when training */
        float *mean,           /* (c) out: the mean used */
        float *inv_std,        /* (c) out: 1 / sqrt(var + epsilon) used */
        double momentum,       /* moving-average momentum (Keras default 0.99) */
        double epsilon,        /* variance epsilon (Keras default 1e-3), >= 0 */
        int training);         /* 1: batch statistics; 0: moving statistics */

/* Batch normalisation backward. With xhat = (x - mean) * inv_std:
 *   dbeta = sum dy, dgamma = sum dy * xhat (over rows);
 *   training: dx = gamma * inv_std * (dy - dbeta / rows - xhat * dgamma / rows);
 *   inference (statistics are constants): dx = gamma * inv_std * dy. */
cf_status cf_batchnorm_bwd(
        const float *dy,       /* output gradient, (rows, c) */
        const float *x,        /* forward input, (rows, c) */
        const float *gamma,    /* (c), or NULL for 1 */
        const float *mean,     /* (c) from cf_batchnorm_fwd */
        const float *inv_std,  /* (c) from cf_batchnorm_fwd */
        float *dx,             /* input gradient, (rows, c) (may be dy) */
        float *dgamma,         /* (c) out */
        float *dbeta,          /* (c) out */
        int64_t rows, int64_t c,
        int training);         /* as in the forward call */

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_ELTWISE_H */
