/* cf_sgemv_generic.c — the few-rows GEMV (cf_sgemv.inc) with 4-float vectors (SSE2 on x86-64). */
#include "gemm/cf_sgemm_internal.h"

#define VL 4
typedef float vf __attribute__((vector_size(16)));
#define CF_SGEMV_NAME cf_sgemv_rows__generic
#include "cf_sgemv.inc"
