/* cf_eltwise_generic.c — the element-wise, softmax and batch-norm kernels in portable C. */
#include "eltwise/cf_eltwise.inc"
