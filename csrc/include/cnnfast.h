/*
 * cnnfast.h — the public C interface of cnnfast's kernels.
 *
 * Conventions shared by every function declared below:
 *   - float32 only. Images are NHWC, convolution weights HWIO (kh, kw, cin, cout), dense weights
 *     (in, out). Sizes are int64_t, strides are in elements.
 *   - Functions return a cf_status: CF_OK (0) or a negative error code. They never abort, never
 *     print and never allocate inside their hot loops.
 *   - The caller (cnnfast.ops, in Python) validates every argument: shapes, C-contiguity,
 *     non-overlap of outputs and inputs. The kernels trust their caller and assert only in
 *     debug builds.
 *   - Threads: every kernel runs on at most cf_get_num_threads() OpenMP threads, in one
 *     parallel region with a static split, so results are identical run to run for a given
 *     thread count. Each worker sets flush-to-zero / denormals-are-zero for the duration of the
 *     kernel and restores the caller's MXCSR afterwards.
 *
 * Each kernel family has its own header under cnnfast/; this file includes them all.
 */
#ifndef CNNFAST_H
#define CNNFAST_H

#include "cnnfast/runtime.h"
#include "cnnfast/gemm.h"
#include "cnnfast/conv.h"
#include "cnnfast/pool.h"
#include "cnnfast/eltwise.h"
#include "cnnfast/optim.h"
#include "cnnfast/resize.h"

#endif /* CNNFAST_H */
