/*
 * cnnfast/gemm.h — single-precision matrix multiplication with a fused epilogue.
 *
 *     C = relu?( alpha * op(A) @ op(B) + beta * C + bias )        C is M x N, row-major
 *
 * op(X) is X or X^T. bias (length N, one value per column) and ReLU are applied while the
 * output tile is still in registers, so a dense layer's forward pass is one call:
 *
 *     // y[64, 128] = relu(x[64, 1600] @ W[1600, 128] + b[128])
 *     cf_sgemm(0, 0, 64, 128, 1600, 1.0f, x, 1600, W, 128, 0.0f, y, 128, b, 1);
 *
 * and its backward pass two more:
 *
 *     cf_sgemm(1, 0, 1600, 128, 64, 1.0f, x, 1600, dy, 128, 0.0f, dW, 128, NULL, 0);  // x^T dy
 *     cf_sgemm(0, 1, 64, 1600, 128, 1.0f, dy, 128, W, 128, 0.0f, dx, 1600, NULL, 0);  // dy W^T
 *
 * The engine (csrc/gemm) is a Goto/BLIS loop nest around a register-blocked FMA micro-kernel per
 * ISA (AVX-512 14x32, AVX2 6x16, portable C 4x16). Large operands are copied ("packed") into
 * cache-sized panels first; small or skinny ones are read in place (see cf_sgemm.c).
 *
 * Pluggable packing. cf_sgemm_ex takes, instead of A and B, two callbacks that produce packed
 * panels of op(A) and op(B) on demand. Convolution uses it to gather the A panel straight from
 * an NHWC image (implicit im2col, no M x K buffer); plain strided matrices use the built-in
 * packer cf_sgemm_pack_strided.
 *
 * Scratch memory: the engine packs into cf_workspace slots 0 and 1 of each thread it runs on.
 * Code that calls cf_sgemm / cf_sgemm_ex while holding its own cf_workspace buffer must keep it
 * in slot 2 or 3, or the call may reallocate it. Called from inside an OpenMP parallel region,
 * the engine runs on the calling thread only (nested regions are not opened).
 *
 * Numerics: each output element is accumulated in float32 in increasing k order, in blocks of
 * the ISA's KC; the result depends on the ISA path but not on the thread count, and is the same
 * bit for bit from run to run. beta == 0 means C is write-only (NaN or Inf in C are ignored).
 */
#ifndef CNNFAST_GEMM_H
#define CNNFAST_GEMM_H

#include "cnnfast/runtime.h"

/* The activation applied by the GEMM epilogue (the `relu` argument), last, NaN kept. */
#define CF_SGEMM_RELU 1    /* max(C, 0) */
#define CF_SGEMM_RELU6 2   /* min(max(C, 0), 6): MobileNet's activation, fused like ReLU */

#ifdef __cplusplus
extern "C" {
#endif

/* C = relu?(alpha * op(A) @ op(B) + beta * C + bias), row-major matrices.
 * Returns CF_ERR_ARGUMENT for negative sizes or leading dimensions too small for their rows,
 * CF_ERR_NOMEM if a packing workspace cannot be allocated. M == 0 or N == 0 does nothing;
 * K == 0 gives relu?(beta * C + bias). */
cf_status cf_sgemm(
        int           trans_a,  // nonzero: op(A) = A^T, A is stored K x M; else A is M x K
        int           trans_b,  // nonzero: op(B) = B^T, B is stored N x K; else B is K x N
        int64_t       M,        // rows of op(A) and of C
        int64_t       N,        // columns of op(B) and of C
        int64_t       K,        // columns of op(A) = rows of op(B)
        float         alpha,    // scale of the product
        const float * A,        // first operand, row-major
        int64_t       lda,      // elements between rows of A as stored (>= K, or >= M if trans_a)
        const float * B,        // second operand, row-major
        int64_t       ldb,      // elements between rows of B as stored (>= N, or >= K if trans_b)
        float         beta,     // scale of the old C; 0: C is not read
        float *       C,        // M x N output, row-major; must not overlap A, B or bias
        int64_t       ldc,      // elements between rows of C (>= N)
        const float * bias,     // N values added to every row after scaling, or NULL
        int           relu);    // 0; CF_SGEMM_RELU: C = max(C, 0); CF_SGEMM_RELU6: min(max(C, 0), 6)

/* A packer fills `dst` with a block of one GEMM operand in the micro-kernel's panel layout.
 *
 * An operand is viewed as an X x K matrix P: for A, P(x, k) = op(A)[x, k] (x runs over M); for B,
 * P(x, k) = op(B)[k, x] (x runs over N). The block is rows x0 .. x0+nx-1, columns k0 .. k0+nk-1.
 * It is stored as ceil(nx / r) panels of r rows; panel p starts at dst + p * r * nk and holds, for
 * each k in 0 .. nk-1, the r values P(x0 + p*r + q, k0 + k), q = 0 .. r-1, contiguously:
 *
 *     dst[p * r * nk + k * r + q] = P(x0 + p*r + q, k0 + k),  or 0 where x0 + p*r + q >= x0 + nx
 *
 * The padding zeros are required: micro-kernels always read full panels. `dst` is 64-byte
 * aligned and has room for ceil(nx / r) * r * nk floats. Packers are called concurrently from
 * several threads (with different dst) and must not write anything else. */
typedef void (*cf_sgemm_pack_fn)(
        const void *  ctx,      // the packer's own description of the operand
        int64_t       x0,       // first row of P to pack
        int64_t       k0,       // first column of P to pack
        int64_t       nx,       // rows of P to pack (> 0)
        int64_t       nk,       // columns of P to pack (> 0)
        int64_t       r,        // panel width: the micro-kernel's MR (for A) or NR (for B)
        float *       dst);     // output, ceil(nx / r) * r * nk floats

/* The context of the built-in packer: P(x, k) = data[x * stride_x + k * stride_k].
 * A:   not transposed {A, lda, 1}   transposed {A, 1, lda}
 * B:   not transposed {B, 1, ldb}   transposed {B, ldb, 1} */
typedef struct {
    const float * data;       // P(0, 0)
    int64_t       stride_x;   // elements between P(x, k) and P(x + 1, k)
    int64_t       stride_k;   // elements between P(x, k) and P(x, k + 1)
} cf_sgemm_strided;

/* The built-in packer for a strided matrix; ctx is a const cf_sgemm_strided *. */
void cf_sgemm_pack_strided(const void *ctx, int64_t x0, int64_t k0, int64_t nx, int64_t nk,
                           int64_t r, float *dst);

/* C = relu?(alpha * P_A @ P_B^T + beta * C + bias), with both operands produced by packers.
 * Same epilogue, threading and error codes as cf_sgemm; the operands are always packed, and
 * each thread packs the blocks it needs (so a packer may run several times for one block). */
cf_status cf_sgemm_ex(
        int64_t          M,       // rows of P_A and of C
        int64_t          N,       // rows of P_B = columns of C
        int64_t          K,       // columns of P_A and of P_B
        float            alpha,   // scale of the product
        cf_sgemm_pack_fn pack_a,  // packer of A (M x K)
        const void *     ctx_a,   // its context
        cf_sgemm_pack_fn pack_b,  // packer of B (N x K, i.e. op(B)^T)
        const void *     ctx_b,   // its context
        float            beta,    // scale of the old C; 0: C is not read
        float *          C,       // M x N output, row-major
        int64_t          ldc,     // elements between rows of C (>= N)
        const float *    bias,    // N values added to every row, or NULL
        int              relu);   // 0, CF_SGEMM_RELU or CF_SGEMM_RELU6, as cf_sgemm

/* Block sizes of the current ISA path: micro-tile MR x NR and cache blocks MC, KC, NC.
 * Any pointer may be NULL. */
void cf_sgemm_blocking(int64_t *mr, int64_t *nr, int64_t *mc, int64_t *kc, int64_t *nc);

/* FP32 FMA throughput probe: every thread (cf_get_num_threads()) runs `iterations` rounds of
 * independent fused multiply-adds on the widest vectors of the current ISA path (AVX-512: 24 zmm
 * accumulators, AVX2: 12 ymm; generic: a scalar-loop estimate). *flops receives the floating-point
 * operations done by all threads (2 per lane per FMA) and *seconds the wall time, so
 * flops / seconds is the machine's practical FP32 peak for that thread count. */
cf_status cf_fma_peak(
        int64_t  iterations,   // rounds per thread (> 0); one round = 24 (AVX-512) / 12 FMAs
        double * flops,        // out: floating-point operations done
        double * seconds);     // out: elapsed wall time

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_GEMM_H */
