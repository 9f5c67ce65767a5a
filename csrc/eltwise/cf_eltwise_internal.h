/*
 * cf_eltwise_internal.h — the per-ISA element-wise kernel table. cf_eltwise.c validates and
 * calls through the table of the active ISA; cf_eltwise.inc defines one table per ISA.
 */
#ifndef CF_ELTWISE_INTERNAL_H
#define CF_ELTWISE_INTERNAL_H

#include "cnnfast/eltwise.h"

/* Element-wise maps: unary ops y = f(x), binary ops dx = g(dy, saved). */
typedef enum {
    CF_EW_RELU, CF_EW_LEAKY_RELU, CF_EW_SIGMOID, CF_EW_TANH, CF_EW_CAPPED_RELU,     /* forward */
    CF_EW_RELU_BWD, CF_EW_LEAKY_RELU_BWD, CF_EW_SIGMOID_BWD, CF_EW_TANH_BWD,
    CF_EW_CAPPED_RELU_BWD,                                                             /* backward */
    CF_EW_OP_COUNT
} cf_ew_op;

typedef struct {
    void (*map)(cf_ew_op op, const float *a, const float *b, float *y, int64_t n, float param);
    void (*bias_add)(const float *x, const float *bias, float *y, int64_t rows, int64_t c);
    cf_status (*bias_add_bwd)(const float *dy, float *db, int64_t rows, int64_t c);
    void (*dropout)(const float *x, float *y, int64_t n, double rate, uint64_t seed, uint64_t step);
    void (*softmax_fwd)(const float *x, float *y, int64_t outer, int64_t len, int64_t inner);
    void (*softmax_bwd)(const float *dy, const float *y, float *dx, int64_t outer, int64_t len, int64_t inner);
    cf_status (*softmax_xent)(const float *logits, const int32_t *labels, const float *targets,
                              const float *weights, float *dlogits, float *probs, double *loss,
                              int64_t n, int64_t c);
    cf_status (*batchnorm_fwd)(const float *x, float *y, int64_t rows, int64_t c, const float *gamma,
                               const float *beta, float *moving_mean, float *moving_var, float *mean,
                               float *inv_std, double momentum, double epsilon, int training);
    cf_status (*batchnorm_bwd)(const float *dy, const float *x, const float *gamma, const float *mean,
                               const float *inv_std, float *dx, float *dgamma, float *dbeta,
                               int64_t rows, int64_t c, int training);
} cf_eltwise_kernels;

extern const cf_eltwise_kernels cf_eltwise_kernels__generic;
extern const cf_eltwise_kernels cf_eltwise_kernels__avx2;
extern const cf_eltwise_kernels cf_eltwise_kernels__avx512;
#if !defined(__x86_64__)  /* portable build: no AVX files; cf_get_isa() is always generic */
#define cf_eltwise_kernels__avx2 cf_eltwise_kernels__generic
#define cf_eltwise_kernels__avx512 cf_eltwise_kernels__generic
#endif

#endif /* CF_ELTWISE_INTERNAL_H */
