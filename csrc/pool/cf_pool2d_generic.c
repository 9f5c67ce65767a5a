/* cf_pool2d_generic.c — the pooling kernels (cf_pool2d.inc) in portable C, for any x86-64 CPU. */
#include "pool/cf_pool2d.inc"
