/*
 * cf_threads.c — the thread count every kernel uses.
 *
 * One process-wide count, set by cnnfast.set_num_threads (the Python layer computes the default
 * from CNNFAST_NUM_THREADS, OMP_NUM_THREADS, CPU affinity and the cgroup quota). Kernels use
 * min(count, omp_get_max_threads()) so a limit set through the OpenMP runtime itself (threadpoolctl,
 * omp_set_num_threads) is honoured too.
 *
 * fork(): libgomp's thread pool does not survive fork(); a child that enters a parallel region
 * the parent had started can hang. A pthread_atfork child handler drops the child to one thread,
 * which never touches the pool.
 */
#include "cnnfast/runtime.h"
#include <pthread.h>

#ifdef CNNFAST_HAVE_OPENMP
#include <omp.h>
#endif

static volatile int requested_threads = 1;
static volatile int in_forked_child = 0;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void) { in_forked_child = 1; requested_threads = 1; }
static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

cf_status cf_set_num_threads(int n) {
    pthread_once(&atfork_once, register_atfork);
    if (n < 1) return CF_ERR_ARGUMENT;
    requested_threads = in_forked_child ? 1 : n;
    return CF_OK;
}

int cf_get_num_threads(void) {
    int n = requested_threads;
#ifdef CNNFAST_HAVE_OPENMP
    int omp_max = omp_get_max_threads();
    if (omp_max < n) n = omp_max;
#else
    n = 1;
#endif
    return n < 1 ? 1 : n;
}

static volatile int64_t parallel_min_bytes = CF_DEFAULT_PARALLEL_MIN_BYTES;

cf_status cf_set_parallel_min_bytes(int64_t bytes) {
    if (bytes < 0) return CF_ERR_ARGUMENT;
    parallel_min_bytes = bytes;
    return CF_OK;
}

int64_t cf_get_parallel_min_bytes(void) { return parallel_min_bytes; }

int cf_openmp_version(void) {
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}
