/*
 * cf_optim_internal.h — the per-ISA optimiser kernel table (cf_optim.inc compiled per ISA),
 * called by the public entry points in cf_optim.c. Scalar coefficients arrive precomputed in
 * float32, exactly as the element loops use them.
 */
#ifndef CF_OPTIM_INTERNAL_H
#define CF_OPTIM_INTERNAL_H

#include "cnnfast/optim.h"

typedef struct {
    float lr;          /* learning rate */
    float wd_lr;       /* weight_decay * lr (0: no decay) */
    float momentum;    /* SGD / RMSprop momentum */
    float beta_1, one_minus_beta_1, one_minus_beta_2;  /* Adam */
    float alpha;       /* Adam step size with bias correction */
    float rho, one_minus_rho;                           /* RMSprop */
    float epsilon;
    int nesterov;
} cf_optim_coef;

typedef struct {
    /* g == NULL: weight decay only; vel == NULL: no momentum */
    void (*sgd)(float *w, const float *g, float *vel, int64_t n, const cf_optim_coef *k);
    void (*adam)(float *w, const float *g, float *m, float *v, float *v_hat, int64_t n, const cf_optim_coef *k);
    void (*rmsprop)(float *w, const float *g, float *vel, float *avg, float *mom, int64_t n, const cf_optim_coef *k);
    cf_status (*sum_squares)(const float *x, int64_t n, double *out);
} cf_optim_kernels;

extern const cf_optim_kernels cf_optim_kernels__generic;
extern const cf_optim_kernels cf_optim_kernels__avx2;
extern const cf_optim_kernels cf_optim_kernels__avx512;
#if !defined(__x86_64__)  /* portable build: no AVX files; cf_get_isa() is always generic */
#define cf_optim_kernels__avx2 cf_optim_kernels__generic
#define cf_optim_kernels__avx512 cf_optim_kernels__generic
#endif

#endif /* CF_OPTIM_INTERNAL_H */
