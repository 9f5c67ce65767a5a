/*
 * cf_internal.h — helpers shared by the kernels, not part of the public interface.
 *
 * Threading pattern used by every kernel:
 *
 *     int nt = cf_threads_for(work_items);
 *     #pragma omp parallel num_threads(nt)
 *     {
 *         CF_FTZ_BEGIN;
 *         int t = cf_thread_id(), nthr = cf_thread_count();
 *         cf_range r = cf_split(work_items, t, nthr);   // static, contiguous, deterministic
 *         ...
 *         CF_FTZ_END;
 *     }
 *
 * CF_FTZ_BEGIN / CF_FTZ_END set flush-to-zero and denormals-are-zero in MXCSR for the kernel's
 * duration on each worker (MXCSR is per thread) and restore the caller's value afterwards, so
 * denormals cannot slow a kernel down and the user's own NumPy code is left unchanged.
 */
#ifndef CF_INTERNAL_H
#define CF_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "cnnfast/runtime.h"

#ifdef CNNFAST_HAVE_OPENMP
#include <omp.h>
static inline int cf_thread_id(void) { return omp_get_thread_num(); }
static inline int cf_thread_count(void) { return omp_get_num_threads(); }
#else
static inline int cf_thread_id(void) { return 0; }
static inline int cf_thread_count(void) { return 1; }
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define CF_FTZ_BEGIN const unsigned int cf_saved_mxcsr_ = _mm_getcsr(); _mm_setcsr(cf_saved_mxcsr_ | 0x8040u)
#define CF_FTZ_END _mm_setcsr(cf_saved_mxcsr_)
#else
#define CF_FTZ_BEGIN do {} while (0)
#define CF_FTZ_END do {} while (0)
#endif

/* A half-open range [begin, end). */
typedef struct { int64_t begin, end; } cf_range;

/* Static contiguous split of n items over nthr threads: the first n % nthr threads get one more. */
static inline cf_range cf_split(int64_t n, int t, int nthr) {
    int64_t base = n / nthr, rem = n % nthr;
    cf_range r;
    r.begin = t * base + (t < rem ? t : rem);
    r.end = r.begin + base + (t < rem ? 1 : 0);
    return r;
}

/* Threads to use for `items` independent work items: never more threads than items. */
static inline int cf_threads_for(int64_t items) {
    int nt = cf_get_num_threads();
    if (items < nt) nt = items < 1 ? 1 : (int)items;
    return nt;
}

#define CF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CF_MAX(a, b) ((a) > (b) ? (a) : (b))
#define CF_ROUND_UP(x, m) ((((x) + (m) - 1) / (m)) * (m))

#endif /* CF_INTERNAL_H */
