/* cf_optim__avx512.c — the optimiser updates (cf_optim.inc) compiled for AVX-512. */
#define CF_SIMD_AVX512 1
#include "optim/cf_optim.inc"
