/* cf_eltwise__avx2.c — the element-wise, softmax and batch-norm kernels compiled for AVX2 + FMA. */
#define CF_SIMD_AVX2 1
#include "eltwise/cf_eltwise.inc"
