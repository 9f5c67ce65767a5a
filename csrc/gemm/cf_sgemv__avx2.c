/* cf_sgemv__avx2.c — the few-rows GEMV (cf_sgemv.inc) with 8-float AVX2/FMA vectors. */
#include "gemm/cf_sgemm_internal.h"

#define VL 8
typedef float vf __attribute__((vector_size(32)));
#define CF_SGEMV_NAME cf_sgemv_rows__avx2
#include "cf_sgemv.inc"
