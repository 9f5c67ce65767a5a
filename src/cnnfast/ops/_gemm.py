"""Matrix multiplication with a fused bias + ReLU epilogue (the GEMM engine in csrc/gemm).

``matmul`` is the op the dense layer is built on:

    y  = matmul(x, W, bias=b, activation="relu")   # forward, y = relu(x @ W + b)
    dW = matmul(x, dy, trans_a=True)               # x^T @ dy
    dx = matmul(dy, W, trans_b=True)               # dy @ W^T

Transposition is a flag, not a copy: the kernels read A^T and B^T in place. A transposed *view*
(an F-contiguous array such as ``x.T``) is recognised and handled the same way, without copying.
"""
from __future__ import annotations

import numpy as np

from . import _checks
from .. import _kernels

__all__ = ["matmul"]

_OP = "matmul"
_ACTIVATIONS = ("linear", "relu", "relu6")
_ACTIVATION_CODES = {"linear": 0, "relu": 1, "relu6": 2}   # CF_SGEMM_RELU, CF_SGEMM_RELU6


def _as_flag(value, name: str) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{_OP}: {name} must be True or False, got {value!r}")


def _operand(x, name: str, trans: bool) -> tuple[np.ndarray, bool]:
    """``x`` as C-contiguous float32 plus its transpose flag; F-ordered input flips the flag."""
    if type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2 and x.flags.c_contiguous:
        return x, trans  # the common case, checked cheaply: a dense layer calls this per batch
    arr = np.asarray(x)
    if arr.ndim == 2 and not arr.flags.c_contiguous and arr.flags.f_contiguous:
        return _checks.as_float32(arr.T, _OP, name, ndim=2), not trans
    return _checks.as_float32(arr, _OP, name, ndim=2), trans


def matmul(a, b, *, trans_a=False, trans_b=False, bias=None, activation=None, out=None,
           accumulate=False) -> np.ndarray:
    """Matrix product with optional transposes, bias and ReLU: ``act(op(a) @ op(b) + bias)``.

    Args:
        a: 2-D array, ``(M, K)``, or ``(K, M)`` when ``trans_a``. Any real dtype; converted to
            float32.
        b: 2-D array, ``(K, N)``, or ``(N, K)`` when ``trans_b``.
        trans_a: use ``a.T`` instead of ``a`` (read in place, no copy).
        trans_b: use ``b.T`` instead of ``b``.
        bias: optional ``(N,)`` vector added to every row.
        activation: ``None`` or ``"linear"`` (identity), ``"relu"`` or ``"relu6"``, applied last.
        out: optional float32, C-contiguous, writeable ``(M, N)`` array that receives the result;
            it must not overlap ``a``, ``b`` or ``bias``.
        accumulate: add the product (and bias) into ``out`` instead of overwriting it:
            ``out = act(out + op(a) @ op(b) + bias)``. Requires ``out``.

    Returns:
        The float32 ``(M, N)`` result (``out`` itself when given).

    Each element is accumulated in float32 in k order; results are identical from run to run
    and for any thread count (they differ slightly between ISA paths). ``K == 0`` gives
    ``act(bias)`` (zeros without bias); ``M == 0`` or ``N == 0`` gives an empty array.

    Example:
        >>> x = np.ones((64, 1600), np.float32); w = np.ones((1600, 128), np.float32)
        >>> matmul(x, w, bias=np.zeros(128, np.float32), activation="relu").shape
        (64, 128)
    """
    trans_a = _as_flag(trans_a, "trans_a")
    trans_b = _as_flag(trans_b, "trans_b")
    accumulate = _as_flag(accumulate, "accumulate")
    act = "linear" if activation is None else _checks.check_choice(activation, _ACTIVATIONS, _OP, "activation")
    user_ta, user_tb = trans_a, trans_b
    a, trans_a = _operand(a, "a", trans_a)
    b, trans_b = _operand(b, "b", trans_b)
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if K != Kb:
        # describe the arrays as the caller passed them (before a transposed view was flipped)
        shape_a = a.shape if trans_a == user_ta else a.shape[::-1]
        shape_b = b.shape if trans_b == user_tb else b.shape[::-1]
        sa = f"a.T with a {shape_a}" if user_ta else f"a {shape_a}"
        sb = f"b.T with b {shape_b}" if user_tb else f"b {shape_b}"
        raise ValueError(f"{_OP}: inner dimensions differ: {sa} @ {sb} needs {K} == {Kb}")
    if bias is not None:
        bias = _checks.as_float32(bias, _OP, "bias", ndim=1)
        if bias.shape != (N,):
            raise ValueError(f"{_OP}: bias must have shape ({N},) (one value per output column), "
                             f"got {bias.shape}")
    if accumulate and out is None:
        raise ValueError(f"{_OP}: accumulate=True adds into out, so out is required")
    if out is None:
        out = np.empty((M, N), dtype=np.float32)  # sizes come from existing arrays: no overflow
    else:
        out = _checks.check_out(out, (M, N), _OP, inputs=(a, b, bias))
    if out.size == 0:
        return out
    _kernels.sgemm(trans_a, trans_b, 1.0, a, b, 1.0 if accumulate else 0.0, out, bias, _ACTIVATION_CODES[act])
    return out
