"""float64 NumPy references for the GEMM engine (cnnfast.ops.matmul, cf_sgemm, the packer)."""
from __future__ import annotations

import numpy as np


def matmul_ref(a, b, *, trans_a=False, trans_b=False, bias=None, activation=None, c=None,
               alpha=1.0, beta=0.0):
    """relu?(alpha * op(a) @ op(b) + beta * c + bias) in float64, by einsum."""
    A = np.asarray(a, dtype=np.float64)
    B = np.asarray(b, dtype=np.float64)
    A = A.T if trans_a else A
    B = B.T if trans_b else B
    y = alpha * np.einsum("ik,kj->ij", A, B)
    if c is not None and beta != 0.0:
        y = y + beta * np.asarray(c, dtype=np.float64)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)[None, :]
    if activation == "relu":
        y = np.maximum(y, 0.0)  # keeps NaN, like the kernels
    return y


def matmul_error_bound(a, b, *, trans_a=False, trans_b=False, bias=None, c=None, alpha=1.0,
                       beta=0.0):
    """Elementwise bound on the float32 rounding error of matmul_ref's result: summing K products
    in float32 errs by at most about K * 2^-24 * sum_k |a_ik b_kj| (Higham, Thm 3.5); the epilogue
    adds a few roundings of |beta c| and |bias|. A factor 2 of slack; never looser."""
    A = np.abs(np.asarray(a, dtype=np.float64))
    B = np.abs(np.asarray(b, dtype=np.float64))
    A = A.T if trans_a else A
    B = B.T if trans_b else B
    K = A.shape[1]
    u = 2.0 ** -24
    products = abs(alpha) * (A @ B)
    extra = 0.0
    if c is not None and beta != 0.0:
        extra = extra + abs(beta) * np.abs(np.asarray(c, dtype=np.float64))
    if bias is not None:
        extra = extra + np.abs(np.asarray(bias, dtype=np.float64))[None, :]
    return 2.0 * ((K + 2) * u * products + 4 * u * (extra + products)) + 1e-30


def pack_ref(data, stride_x, stride_k, x0, k0, nx, nk, r):
    """The panel layout of cf_sgemm_pack_fn, by plain loops: panel p, step k, lane q holds
    P(x0 + p*r + q, k0 + k) with P(x, k) = data[x*stride_x + k*stride_k], zero past nx."""
    panels = -(-nx // r)
    out = np.zeros(panels * r * nk, dtype=np.float32)
    for p in range(panels):
        for k in range(nk):
            for q in range(r):
                x = p * r + q
                if x < nx:
                    out[p * r * nk + k * r + q] = data[(x0 + x) * stride_x + (k0 + k) * stride_k]
    return out
