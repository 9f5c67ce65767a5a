/* cf_eltwise__avx512.c — the element-wise, softmax and batch-norm kernels compiled for AVX-512. */
#define CF_SIMD_AVX512 1
#include "eltwise/cf_eltwise.inc"
