/*
 * cf_alloc.c — aligned allocation and the per-thread scratch workspace.
 *
 * Kernels ask for scratch space (packed panels, private gradient accumulators) once per call per
 * thread with cf_workspace(); the buffer is thread-local and only grows, so steady-state training
 * steps allocate nothing. 64-byte alignment matches a cache line and a ZMM register.
 */
#include "cnnfast/runtime.h"
#include <stdlib.h>

void *cf_aligned_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

void cf_aligned_free(void *p) { free(p); }

static _Thread_local void *workspace_ptr[CF_WORKSPACE_SLOTS];
static _Thread_local size_t workspace_bytes[CF_WORKSPACE_SLOTS];

void *cf_workspace(int slot, size_t bytes) {
    if (slot < 0 || slot >= CF_WORKSPACE_SLOTS) return NULL;
    if (bytes == 0) bytes = 64;
    if (workspace_bytes[slot] < bytes) {
        size_t grown = bytes + bytes / 4;  /* headroom avoids reallocating for slightly larger calls */
        void *p = cf_aligned_alloc(grown);
        if (p == NULL) return NULL;
        cf_aligned_free(workspace_ptr[slot]);
        workspace_ptr[slot] = p;
        workspace_bytes[slot] = grown;
    }
    return workspace_ptr[slot];
}
