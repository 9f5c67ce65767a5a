/* cf_pool2d__avx512.c — the pooling kernels (cf_pool2d.inc) compiled for AVX-512. */
#define CF_SIMD_AVX512 1
#include "pool/cf_pool2d.inc"
