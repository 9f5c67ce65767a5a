/*
 * cf_alloc.c — aligned allocation and the per-thread scratch workspace.
 *
 * Kernels ask for scratch space (packed panels, private gradient accumulators) once per call per
 * thread with cf_workspace(); the buffer belongs to the calling thread and only grows, so
 * steady-state training steps allocate nothing. 64-byte alignment matches a cache line and a ZMM
 * register.
 *
 * Lifetime: each thread's buffers live in one heap block reached through a _Thread_local pointer
 * (the fast path: no lock, no call) and registered under a pthread key whose destructor frees
 * them when the thread exits. Python threads that call a kernel and end, and the OpenMP worker
 * teams that the runtime creates for them, therefore give their scratch space back instead of
 * leaking it.
 */
#include "cnnfast/runtime.h"
#include <pthread.h>
#include <stdlib.h>

void *cf_aligned_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void cf_aligned_free(void *p) { free(p); }

typedef struct {
    void *ptr[CF_WORKSPACE_SLOTS];
    size_t bytes[CF_WORKSPACE_SLOTS];
} cf_thread_workspace;

static pthread_key_t workspace_key;
static pthread_once_t workspace_key_once = PTHREAD_ONCE_INIT;
static int workspace_key_ok = 0;
static _Thread_local cf_thread_workspace *workspace_tls = NULL;

/* pthread destructor: runs at thread exit with the value registered for that thread. */
static void workspace_release(void *arg) {
    cf_thread_workspace *ws = (cf_thread_workspace *)arg;
    if (ws == NULL) return;
    for (int s = 0; s < CF_WORKSPACE_SLOTS; s++) cf_aligned_free(ws->ptr[s]);
    free(ws);
    workspace_tls = NULL;  /* a later call in this thread's remaining destructors starts afresh */
}

static void workspace_key_create(void) { workspace_key_ok = pthread_key_create(&workspace_key, workspace_release) == 0; }

/* The calling thread's workspace record, created and registered on first use; NULL on failure. */
static cf_thread_workspace *thread_workspace(void) {
    if (workspace_tls != NULL) return workspace_tls;
    pthread_once(&workspace_key_once, workspace_key_create);
    if (!workspace_key_ok) return NULL;
    cf_thread_workspace *ws = (cf_thread_workspace *)calloc(1, sizeof *ws);
    if (ws == NULL) return NULL;
    if (pthread_setspecific(workspace_key, ws) != 0) {
        free(ws);
        return NULL;
    }
    workspace_tls = ws;
    return ws;
}

void *cf_workspace(int slot, size_t bytes) {
    if (slot < 0 || slot >= CF_WORKSPACE_SLOTS) return NULL;
    cf_thread_workspace *ws = thread_workspace();
    if (ws == NULL) return NULL;
    if (bytes == 0) bytes = 64;
    if (ws->bytes[slot] < bytes) {
        size_t grown = bytes + bytes / 4;  /* headroom avoids reallocating for slightly larger calls */
        if (grown < bytes) grown = bytes;  /* overflow of the headroom: ask for the exact size */
        void *p = cf_aligned_alloc(grown);
        if (p == NULL) return NULL;
        cf_aligned_free(ws->ptr[slot]);
        ws->ptr[slot] = p;
        ws->bytes[slot] = grown;
    }
    return ws->ptr[slot];
}
