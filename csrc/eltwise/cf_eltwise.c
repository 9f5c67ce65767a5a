/*
 * cf_eltwise.c — public entry points of the element-wise family: argument checks, empty-size
 * shortcuts, then a call through the kernel table of the active ISA (cf_eltwise.inc compiled
 * three times). No arithmetic happens here.
 */
#include "eltwise/cf_eltwise_internal.h"
#include <stddef.h>

static const cf_eltwise_kernels *ew_table(void) {
    switch (cf_get_isa()) {
        case CF_ISA_AVX512: return &cf_eltwise_kernels__avx512;
        case CF_ISA_AVX2: return &cf_eltwise_kernels__avx2;
        default: return &cf_eltwise_kernels__generic;
    }
}

static cf_status ew_map_checked(cf_ew_op op, const float *a, const float *b, float *y, int64_t n, float param, int binary) {
    if (n < 0) return CF_ERR_ARGUMENT;
    if (n == 0) return CF_OK;
    if (a == NULL || y == NULL || (binary && b == NULL)) return CF_ERR_ARGUMENT;
    ew_table()->map(op, a, binary ? b : NULL, y, n, param);
    return CF_OK;
}

cf_status cf_relu_fwd(const float *x, float *y, int64_t n) { return ew_map_checked(CF_EW_RELU, x, NULL, y, n, 0.0f, 0); }
cf_status cf_relu_bwd(const float *dy, const float *y, float *dx, int64_t n) { return ew_map_checked(CF_EW_RELU_BWD, dy, y, dx, n, 0.0f, 1); }
cf_status cf_leaky_relu_fwd(const float *x, float *y, int64_t n, float s) { return ew_map_checked(CF_EW_LEAKY_RELU, x, NULL, y, n, s, 0); }
cf_status cf_leaky_relu_bwd(const float *dy, const float *x, float *dx, int64_t n, float s) { return ew_map_checked(CF_EW_LEAKY_RELU_BWD, dy, x, dx, n, s, 1); }
static int cap_ok(float cap) { return cap >= 0.0f; }  /* false for NaN too */
cf_status cf_capped_relu_fwd(const float *x, float *y, int64_t n, float cap) {
    return cap_ok(cap) ? ew_map_checked(CF_EW_CAPPED_RELU, x, NULL, y, n, cap, 0) : CF_ERR_ARGUMENT;
}
cf_status cf_capped_relu_bwd(const float *dy, const float *y, float *dx, int64_t n, float cap) {
    return cap_ok(cap) ? ew_map_checked(CF_EW_CAPPED_RELU_BWD, dy, y, dx, n, cap, 1) : CF_ERR_ARGUMENT;
}
cf_status cf_sigmoid_fwd(const float *x, float *y, int64_t n) { return ew_map_checked(CF_EW_SIGMOID, x, NULL, y, n, 0.0f, 0); }
cf_status cf_sigmoid_bwd(const float *dy, const float *y, float *dx, int64_t n) { return ew_map_checked(CF_EW_SIGMOID_BWD, dy, y, dx, n, 0.0f, 1); }
cf_status cf_tanh_fwd(const float *x, float *y, int64_t n) { return ew_map_checked(CF_EW_TANH, x, NULL, y, n, 0.0f, 0); }
cf_status cf_tanh_bwd(const float *dy, const float *y, float *dx, int64_t n) { return ew_map_checked(CF_EW_TANH_BWD, dy, y, dx, n, 0.0f, 1); }

static int softmax_shape_ok(int64_t outer, int64_t len, int64_t inner) {
    return outer >= 0 && len >= 0 && inner >= 0;
}

cf_status cf_softmax_fwd(const float *x, float *y, int64_t outer, int64_t len, int64_t inner) {
    if (!softmax_shape_ok(outer, len, inner)) return CF_ERR_ARGUMENT;
    if (outer == 0 || len == 0 || inner == 0) return CF_OK;
    if (x == NULL || y == NULL) return CF_ERR_ARGUMENT;
    ew_table()->softmax_fwd(x, y, outer, len, inner);
    return CF_OK;
}

cf_status cf_softmax_bwd(const float *dy, const float *y, float *dx, int64_t outer, int64_t len, int64_t inner) {
    if (!softmax_shape_ok(outer, len, inner)) return CF_ERR_ARGUMENT;
    if (outer == 0 || len == 0 || inner == 0) return CF_OK;
    if (dy == NULL || y == NULL || dx == NULL) return CF_ERR_ARGUMENT;
    ew_table()->softmax_bwd(dy, y, dx, outer, len, inner);
    return CF_OK;
}

cf_status cf_bias_add(const float *x, const float *bias, float *y, int64_t rows, int64_t c) {
    if (rows < 0 || c < 0) return CF_ERR_ARGUMENT;
    if (rows == 0 || c == 0) return CF_OK;
    if (x == NULL || bias == NULL || y == NULL) return CF_ERR_ARGUMENT;
    ew_table()->bias_add(x, bias, y, rows, c);
    return CF_OK;
}

cf_status cf_bias_add_bwd(const float *dy, float *db, int64_t rows, int64_t c) {
    if (rows < 0 || c < 0) return CF_ERR_ARGUMENT;
    if (c == 0) return CF_OK;
    if (db == NULL || (rows > 0 && dy == NULL)) return CF_ERR_ARGUMENT;
    if (rows == 0) {
        for (int64_t i = 0; i < c; i++) db[i] = 0.0f;
        return CF_OK;
    }
    return ew_table()->bias_add_bwd(dy, db, rows, c);
}

cf_status cf_softmax_xent(const float *logits, const int32_t *labels, const float *targets, const float *weights,
                          float *dlogits, float *probs, double *loss, int64_t n, int64_t c) {
    if (n < 0 || c < 0 || loss == NULL) return CF_ERR_ARGUMENT;
    *loss = 0.0;
    if (n == 0) return CF_OK;
    if (c == 0 || logits == NULL || (labels == NULL) == (targets == NULL)) return CF_ERR_ARGUMENT;
    return ew_table()->softmax_xent(logits, labels, targets, weights, dlogits, probs, loss, n, c);
}

cf_status cf_dropout(const float *x, float *y, int64_t n, double rate, uint64_t seed, uint64_t step) {
    if (n < 0 || !(rate >= 0.0 && rate < 1.0)) return CF_ERR_ARGUMENT;
    if (n == 0) return CF_OK;
    if (x == NULL || y == NULL) return CF_ERR_ARGUMENT;
    ew_table()->dropout(x, y, n, rate, seed, step);
    return CF_OK;
}

cf_status cf_batchnorm_fwd(const float *x, float *y, int64_t rows, int64_t c, const float *gamma, const float *beta,
                           float *moving_mean, float *moving_var, float *mean, float *inv_std, double momentum,
                           double epsilon, int training) {
    if (rows < 0 || c < 0 || !(epsilon >= 0.0) || (training && rows == 0 && c > 0)) return CF_ERR_ARGUMENT;
    if (c == 0) return CF_OK;
    if (moving_mean == NULL || moving_var == NULL || mean == NULL || inv_std == NULL || (rows > 0 && (x == NULL || y == NULL)))
        return CF_ERR_ARGUMENT;
    return ew_table()->batchnorm_fwd(x, y, rows, c, gamma, beta, moving_mean, moving_var, mean, inv_std,
                                     momentum, epsilon, training);
}

cf_status cf_batchnorm_bwd(const float *dy, const float *x, const float *gamma, const float *mean, const float *inv_std,
                           float *dx, float *dgamma, float *dbeta, int64_t rows, int64_t c, int training) {
    if (rows < 0 || c < 0) return CF_ERR_ARGUMENT;
    if (c == 0) return CF_OK;
    if (mean == NULL || inv_std == NULL || dgamma == NULL || dbeta == NULL ||
        (rows > 0 && (dy == NULL || x == NULL || dx == NULL)))
        return CF_ERR_ARGUMENT;
    return ew_table()->batchnorm_bwd(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta, rows, c, training);
}
