/* cf_sgemv__avx512.c — the few-rows GEMV (cf_sgemv.inc) with 16-float AVX-512 vectors. */
#include "gemm/cf_sgemm_internal.h"

#define VL 16
typedef float vf __attribute__((vector_size(64)));
#define CF_SGEMV_NAME cf_sgemv_rows__avx512
#include "cf_sgemv.inc"
