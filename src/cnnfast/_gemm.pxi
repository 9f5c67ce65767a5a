# GEMM (csrc/gemm): C = relu?(alpha * op(A) @ op(B) + beta * C + bias), and the FMA peak probe.

cdef extern from "cnnfast.h" nogil:
    cf_status cf_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc, const float *bias, int relu)
    void cf_sgemm_blocking(int64_t *mr, int64_t *nr, int64_t *mc, int64_t *kc, int64_t *nc)
    cf_status cf_fma_peak(int64_t iterations, double *flops, double *seconds)


def sgemm(bint trans_a, bint trans_b, float alpha, const float[:, ::1] a, const float[:, ::1] b,
          float beta, float[:, ::1] c, const float[::1] bias, bint relu):
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
