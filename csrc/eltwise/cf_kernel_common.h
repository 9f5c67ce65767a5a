/*
 * cf_kernel_common.h — what the pooling, element-wise and optimiser templates share: the SIMD
 * vocabulary (cf_simd.h), the threading helpers (runtime/cf_internal.h), per-ISA naming and the
 * size below which a kernel stays on one thread.
 *
 * A template (*.inc) is compiled once per ISA by a tiny translation unit:
 *
 *     #define CF_SIMD_AVX2          // or CF_SIMD_AVX512, or nothing for portable C
 *     #include "pool/cf_pool2d.inc" // defines CFK(kernel) = kernel__avx2, ...
 *
 * Only the per-ISA kernel tables are visible outside a translation unit; everything else is
 * static, so no wider-ISA code can leak into baseline code through the linker.
 */
#ifndef CF_KERNEL_COMMON_H
#define CF_KERNEL_COMMON_H

#include "eltwise/cf_simd.h"
#include "runtime/cf_internal.h"

#define CF_ISA_NAME2_(name, isa) name##__##isa
#define CF_ISA_NAME1_(name, isa) CF_ISA_NAME2_(name, isa)
/* The per-ISA name of a symbol defined by a template: CFK(cf_pool_kernels) -> cf_pool_kernels__avx2 */
#define CFK(name) CF_ISA_NAME1_(name, CFV_ISA_SUFFIX)

#if defined(__GNUC__)
#define CF_INLINE static inline __attribute__((always_inline))
#else
#define CF_INLINE static inline
#endif

/* The workspace slot these kernels use for scratch (reciprocal tables, block partial sums). The
 * last slot, so a kernel of another family that holds a low slot (GEMM packing buffers) can
 * call these without its buffer being reallocated underneath it. */
#define CF_WS_SLOT (CF_WORKSPACE_SLOTS - 1)

/* Threads for `items` independent work items touching `bytes` bytes in total. */
static inline int cf_threads_for_bytes(int64_t items, int64_t bytes) {
    return bytes < cf_get_parallel_min_bytes() ? 1 : cf_threads_for(items);
}

/* Contiguous static split of n elements over nthr threads in whole chunks of `chunk` elements
 * (16 floats = one cache line, so threads never write the same line). */
static inline cf_range cf_split_chunked(int64_t n, int64_t chunk, int t, int nthr) {
    cf_range r = cf_split((n + chunk - 1) / chunk, t, nthr);
    r.begin = CF_MIN(r.begin * chunk, n);
    r.end = CF_MIN(r.end * chunk, n);
    return r;
}

#endif /* CF_KERNEL_COMMON_H */
