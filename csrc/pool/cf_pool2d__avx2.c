/* cf_pool2d__avx2.c — the pooling kernels (cf_pool2d.inc) compiled for AVX2 + FMA. */
#define CF_SIMD_AVX2 1
#include "pool/cf_pool2d.inc"
