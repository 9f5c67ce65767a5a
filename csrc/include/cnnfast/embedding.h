/*
 * cnnfast/embedding.h — embedding lookup (a row gather) and its gradient (a row scatter-add).
 *
 * A table is (vocab, dim) float32, row-major. `idx` holds n indices (int32 or int64); output
 * row i is table row idx[i]. The gradient of the table is dense (vocab, dim): row v is the sum of
 * the output-gradient rows i with idx[i] == v, added in increasing i.
 *
 * Threads: the gather splits the n output rows; the scatter-add splits the table's rows, each
 * thread zeroing its own row range and adding the dy rows whose id falls in it, in increasing
 * position order, so no two threads write one element and every sum runs in the same order: the
 * result is bit-identical for any thread count.
 *
 * Range: an index outside [0, vocab) makes the call return CF_ERR_ARGUMENT with *bad set to the
 * position of the first such index (*bad is -1 on success); the backward pass checks before it
 * writes anything.
 */
#ifndef CNNFAST_EMBEDDING_H
#define CNNFAST_EMBEDDING_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[i, :] = table[idx[i], :] for i < n; table (vocab, dim), out (n, dim). */
cf_status cf_embedding_fwd_i32(const int32_t *idx, int64_t n, const float *table, int64_t vocab,
                               int64_t dim, float *out, int64_t *bad);
cf_status cf_embedding_fwd_i64(const int64_t *idx, int64_t n, const float *table, int64_t vocab,
                               int64_t dim, float *out, int64_t *bad);

/* dtable (vocab, dim) = scatter-add of dy (n, dim) into rows idx; accumulate != 0 adds to the
 * current dtable instead of overwriting it. */
cf_status cf_embedding_bwd_i32(const int32_t *idx, int64_t n, const float *dy, int64_t vocab,
                               int64_t dim, float *dtable, int accumulate, int64_t *bad);
cf_status cf_embedding_bwd_i64(const int64_t *idx, int64_t n, const float *dy, int64_t vocab,
                               int64_t dim, float *dtable, int accumulate, int64_t *bad);

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_EMBEDDING_H */
