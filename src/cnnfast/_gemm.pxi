# GEMM (csrc/gemm): C = relu?(alpha * op(A) @ op(B) + beta * C + bias), and the FMA peak probe.

cdef extern from "cnnfast.h" nogil:
    cf_status cf_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc, const float *bias, int relu)
    void cf_sgemm_blocking(int64_t *mr, int64_t *nr, int64_t *mc, int64_t *kc, int64_t *nc)
    ctypedef struct cf_sgemm_strided:
        const float *data
        int64_t stride_x
        int64_t stride_k
    ctypedef void (*cf_sgemm_pack_fn)(const void *ctx, int64_t x0, int64_t k0, int64_t nx,
                                      int64_t nk, int64_t r, float *dst)
    void cf_sgemm_pack_strided(const void *ctx, int64_t x0, int64_t k0, int64_t nx, int64_t nk,
                               int64_t r, float *dst)
    cf_status cf_sgemm_ex(int64_t M, int64_t N, int64_t K, float alpha,
                          cf_sgemm_pack_fn pack_a, const void *ctx_a,
                          cf_sgemm_pack_fn pack_b, const void *ctx_b,
                          float beta, float *C, int64_t ldc, const float *bias, int relu)
    cf_status cf_fma_peak(int64_t iterations, double *flops, double *seconds)


def sgemm(bint trans_a, bint trans_b, float alpha, const float[:, ::1] a, const float[:, ::1] b,
          float beta, float[:, ::1] c, const float[::1] bias, int relu):
    """c := relu?(alpha * op(a) @ op(b) + beta * c + bias); shapes checked by cnnfast.ops."""
    cdef int64_t M = c.shape[0], N = c.shape[1]
    cdef int64_t K = a.shape[0] if trans_a else a.shape[1]
    cdef const float *pa = &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL
    cdef const float *pb = &b[0, 0] if b.shape[0] > 0 and b.shape[1] > 0 else NULL
    cdef float *pc = &c[0, 0] if M > 0 and N > 0 else NULL
    cdef const float *pbias = NULL
    if bias is not None and bias.shape[0] > 0:
        pbias = &bias[0]
    cdef cf_status status
    with nogil:
        status = cf_sgemm(trans_a, trans_b, M, N, K, alpha, pa, a.shape[1], pb, b.shape[1],
                          beta, pc, N, pbias, relu)
    check_status(status, "matmul")


def sgemm_blocking():
    """The current ISA path's GEMM block sizes: dict with mr, nr, mc, kc, nc."""
    cdef int64_t mr, nr, mc, kc, nc
    cf_sgemm_blocking(&mr, &nr, &mc, &kc, &nc)
    return {"mr": mr, "nr": nr, "mc": mc, "kc": kc, "nc": nc}


def fma_peak(int64_t iterations):
    """Run the FMA throughput probe on the kernel threads: returns (flops, seconds)."""
    cdef double flops = 0.0, seconds = 0.0
    cdef cf_status status
    with nogil:
        status = cf_fma_peak(iterations, &flops, &seconds)
    check_status(status, "fma_peak")
    return flops, seconds


cdef int _check_strided(const float[::1] data, int64_t rows, int64_t k, int64_t sx, int64_t sk,
                        str name) except -1:
    if sx < 0 or sk < 0:
        raise ValueError(f"{name}: strides must be >= 0, got ({sx}, {sk})")
    if rows > 0 and k > 0 and (rows - 1) * sx + (k - 1) * sk >= data.shape[0]:
        raise ValueError(f"{name}: a {rows} x {k} view with strides ({sx}, {sk}) overruns "
                         f"{data.shape[0]} elements")
    return 0


def pack_strided(const float[::1] data, int64_t stride_x, int64_t stride_k, int64_t x0, int64_t k0,
                 int64_t nx, int64_t nk, int64_t r):
    """The built-in packer on P(x, k) = data[x*stride_x + k*stride_k]: returns the packed block
    (ceil(nx / r) * r * nk floats) exactly as a micro-kernel reads it."""
    _check_strided(data, x0 + nx, k0 + nk, stride_x, stride_k, "pack_strided")
    if x0 < 0 or k0 < 0 or nx <= 0 or nk <= 0 or r <= 0:
        raise ValueError("pack_strided: need x0, k0 >= 0 and nx, nk, r > 0")
    import numpy as np
    cdef float[::1] dst = np.full(((nx + r - 1) // r) * r * nk, np.nan, dtype=np.float32)
    cdef cf_sgemm_strided ctx
    ctx.data = &data[0]
    ctx.stride_x = stride_x
    ctx.stride_k = stride_k
    with nogil:
        cf_sgemm_pack_strided(&ctx, x0, k0, nx, nk, r, &dst[0])
    return np.asarray(dst)


def sgemm_ex_strided(const float[::1] a, int64_t a_sx, int64_t a_sk, const float[::1] b,
                     int64_t b_sx, int64_t b_sk, int64_t K, float alpha, float beta,
                     float[:, ::1] c, const float[::1] bias, int relu):
    """c := relu?(alpha * P_A @ P_B^T + beta * c + bias) through cf_sgemm_ex and the built-in
    packer, P_A(i, k) = a[i*a_sx + k*a_sk], P_B(j, k) = b[j*b_sx + k*b_sk]: the always-packed path
    that convolution's custom packers use."""
    cdef int64_t M = c.shape[0], N = c.shape[1]
    _check_strided(a, M, K, a_sx, a_sk, "sgemm_ex_strided(a)")
    _check_strided(b, N, K, b_sx, b_sk, "sgemm_ex_strided(b)")
    if bias is not None and bias.shape[0] != N:
        raise ValueError(f"sgemm_ex_strided: bias must have {N} values")
    cdef cf_sgemm_strided sa, sb
    sa.data = &a[0] if a.shape[0] > 0 else NULL
    sa.stride_x = a_sx
    sa.stride_k = a_sk
    sb.data = &b[0] if b.shape[0] > 0 else NULL
    sb.stride_x = b_sx
    sb.stride_k = b_sk
    cdef float *pc = &c[0, 0] if M > 0 and N > 0 else NULL
    cdef const float *pbias = &bias[0] if bias is not None and N > 0 else NULL
    cdef cf_status status
    with nogil:
        status = cf_sgemm_ex(M, N, K, alpha, cf_sgemm_pack_strided, &sa, cf_sgemm_pack_strided,
                             &sb, beta, pc, N, pbias, relu)
    check_status(status, "sgemm_ex")
