/*
 * cnnfast/runtime.h — status codes, CPU feature detection, ISA dispatch, threads, workspace.
 */
#ifndef CNNFAST_RUNTIME_H
#define CNNFAST_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int cf_status;
#define CF_OK 0
#define CF_ERR_ARGUMENT (-1)     /* an argument is out of range (caller bug) */
#define CF_ERR_NOMEM (-2)        /* a workspace allocation failed */
#define CF_ERR_UNSUPPORTED (-3)  /* the request needs an ISA or feature this CPU lacks */

/* Instruction-set paths, ordered: a higher value implies every lower one. */
typedef enum {
    CF_ISA_GENERIC = 0,  /* portable C, baseline x86-64 (SSE2) */
    CF_ISA_AVX2 = 1,     /* AVX2 + FMA (x86-64-v3) */
    CF_ISA_AVX512 = 2,   /* AVX-512 F/BW/DQ/VL */
    CF_ISA_COUNT = 3
} cf_isa;

/* The best ISA this CPU and OS support (CPUID + XGETBV: the OS must save the vector state). */
cf_isa cf_cpu_best_isa(void);

/* The ISA the kernels dispatch on now. Starts as cf_cpu_best_isa(). */
cf_isa cf_get_isa(void);

/* Force an ISA path. Returns CF_ERR_UNSUPPORTED, changing nothing, if `isa` is higher than
 * cf_cpu_best_isa() or not a valid cf_isa. */
cf_status cf_set_isa(int isa);

/* Cache sizes in bytes: one core's L1 data cache and L2, and the L3 as a whole (shared), from
 * CPUID. Where CPUID does not say (some virtual machines, non-x86 targets) a typical value
 * stands in: 32 KiB, 512 KiB, 8 MiB. The GEMM block sizes are derived from these. */
typedef struct {
    int64_t l1d, l2, l3;
} cf_cache_sizes;
cf_cache_sizes cf_cpu_cache_sizes(void);

/* Lower-case name of an ISA ("generic", "avx2", "avx512"); "unknown" for a bad value. */
const char *cf_isa_name(int isa);

/* Threads used by every kernel: min(the value set here, omp_get_max_threads() of the calling
 * thread), so threadpoolctl and OMP_NUM_THREADS limits are honoured too. n < 1 is an error.
 * In a child process after fork() the count is 1 (libgomp's pool does not survive fork). */
cf_status cf_set_num_threads(int n);
int cf_get_num_threads(void);

/* Memory-bound kernels (element-wise ops, pooling, optimisers) run on the calling thread while
 * a call touches fewer bytes than this, whatever the thread count: waking a sleeping worker
 * costs tens to hundreds of microseconds on virtual machines, more than such a kernel saves, and
 * one core already streams most of the memory bandwidth. Default 16 MiB; tests lower it to run
 * the parallel splits on small arrays. Negative values are refused. */
#define CF_DEFAULT_PARALLEL_MIN_BYTES ((int64_t)16 << 20)
cf_status cf_set_parallel_min_bytes(int64_t bytes);
int64_t cf_get_parallel_min_bytes(void);

/* Build information for show_config(). */
const char *cf_compiler_info(void);   /* e.g. "GNU 12.2.0" */
int cf_openmp_version(void);          /* _OPENMP date (e.g. 201511), or 0 without OpenMP */

/* 64-byte aligned allocation; NULL on failure or size 0. Free with cf_aligned_free. */
void *cf_aligned_alloc(size_t bytes);
void cf_aligned_free(void *p);

/* A per-thread, 64-byte aligned scratch buffer of at least `bytes`, kept and reused between
 * calls (it only grows). `slot` (0..CF_WORKSPACE_SLOTS-1) lets one kernel hold several buffers
 * at once. Returns NULL if the allocation fails. Valid until the same thread asks again for the
 * same slot. Call it outside hot loops: once per kernel call per thread. The buffers are freed
 * when the thread exits. */
#define CF_WORKSPACE_SLOTS 4
void *cf_workspace(int slot, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_RUNTIME_H */
