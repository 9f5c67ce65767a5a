/* cf_optim__avx2.c — the optimiser updates (cf_optim.inc) compiled for AVX2 + FMA. */
#define CF_SIMD_AVX2 1
#include "optim/cf_optim.inc"
