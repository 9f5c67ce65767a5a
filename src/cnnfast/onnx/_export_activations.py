"""ONNX forms of the rarer Keras 3 activations (gelu, mish, celu, log_softmax, the shrink and sparse
families, squareplus, sparsemax, threshold), written with operators of opset 13.

Each form is ``form(w, x, base, args, axis) -> name``: ``args`` are the activation's keyword
arguments (empty for a layer's ``activation="..."``, Keras's defaults then apply; a Lambda of the
function passes its ``arguments``), ``axis`` the axis of the axis-wise ones (log_softmax,
sparsemax) in the tensor's current layout, -1 or a non-negative index.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["ACTIVATION_FORMS"]


def _c(w, value, base):
    return w.const(np.float32(value), base)


def _gelu(w, x, base, args, axis):
    half = _c(w, 0.5, f"{base}.half")
    one = _c(w, 1.0, f"{base}.one")
    if args.get("approximate", False):
        cube = w.node("Mul", [w.node("Mul", [x, x], f"{base}_sq"), x], f"{base}_cube")
        inner = w.node("Add", [x, w.node("Mul", [cube, _c(w, 0.044715, f"{base}.k")], f"{base}_kc")],
                       f"{base}_inner")
        gate = w.node("Tanh", [w.node("Mul", [inner, _c(w, math.sqrt(2 / math.pi), f"{base}.s")],
                                      f"{base}_scaled")], f"{base}_tanh")
    else:
        gate = w.node("Erf", [w.node("Mul", [x, _c(w, 1 / math.sqrt(2), f"{base}.r")], f"{base}_scaled")],
                      f"{base}_erf")
    return w.node("Mul", [w.node("Mul", [x, w.node("Add", [gate, one], f"{base}_1p")], f"{base}_x"), half], base)


def _mish(w, x, base, args, axis):
    return w.node("Mul", [x, w.node("Tanh", [w.node("Softplus", [x], f"{base}_sp")], f"{base}_tanh")], base)


def _celu(w, x, base, args, axis):
    return w.node("Celu", [x], base, alpha=float(args.get("alpha", 1.0)))


def _log_softmax(w, x, base, args, axis):
    return w.node("LogSoftmax", [x], base, axis=int(axis))


def _log_sigmoid(w, x, base, args, axis):
    # -softplus(-x)
    return w.node("Neg", [w.node("Softplus", [w.node("Neg", [x], f"{base}_neg")], f"{base}_sp")], base)


def _hard_tanh(w, x, base, args, axis):
    return w.node("Clip", [x, _c(w, -1.0, f"{base}.lo"), _c(w, 1.0, f"{base}.hi")], base)


def _tanh_shrink(w, x, base, args, axis):
    return w.node("Sub", [x, w.node("Tanh", [x], f"{base}_tanh")], base)


def _soft_shrink(w, x, base, args, axis):
    t = float(args.get("threshold", 0.5))
    return w.node("Shrink", [x], base, bias=t, lambd=t)


def _hard_shrink(w, x, base, args, axis):
    return w.node("Shrink", [x], base, bias=0.0, lambd=float(args.get("threshold", 0.5)))


def _clipped_plus_one(w, x, base):
    clipped = w.node("Clip", [x, _c(w, -1.0, f"{base}.lo"), _c(w, 1.0, f"{base}.hi")], f"{base}_clip")
    return w.node("Add", [clipped, _c(w, 1.0, f"{base}.one")], f"{base}_1p")


def _sparse_plus(w, x, base, args, axis):
    # (clip(x, -1, 1) + 1)^2 / 4 + relu(x - 1): 0, the parabola, then x
    c = _clipped_plus_one(w, x, base)
    quad = w.node("Mul", [w.node("Mul", [c, c], f"{base}_sq"), _c(w, 0.25, f"{base}.q")], f"{base}_quad")
    above = w.node("Relu", [w.node("Sub", [x, _c(w, 1.0, f"{base}.one_")], f"{base}_m1")], f"{base}_above")
    return w.node("Add", [quad, above], base)


def _sparse_sigmoid(w, x, base, args, axis):
    return w.node("Mul", [_clipped_plus_one(w, x, base), _c(w, 0.5, f"{base}.half")], base)


def _squareplus(w, x, base, args, axis):
    root = w.node("Sqrt", [w.node("Add", [w.node("Mul", [x, x], f"{base}_sq"),
                                          _c(w, float(args.get("b", 4)), f"{base}.b")], f"{base}_sum")],
                  f"{base}_root")
    return w.node("Mul", [w.node("Add", [x, root], f"{base}_add"), _c(w, 0.5, f"{base}.half")], base)


def _threshold(w, x, base, args, axis):
    t = _c(w, float(args["threshold"]), f"{base}.threshold")
    v = _c(w, float(args["default_value"]), f"{base}.value")
    return w.node("Where", [w.node("Greater", [x, t], f"{base}_above"), x, v], base)


def _sparsemax(w, x, base, args, axis):
    """Sort-free: entry i is in the support when ``1 + c_i * x_i > s_i``, with ``c_i`` the number
    of entries >= x_i and ``s_i`` their sum (the sorted test of Martins & Astudillo at i's rank;
    tied entries pass or fail together); tau = (sum over the support - 1) / its size. Works on
    the last axis; ``axis=1`` of an NCHW tensor (a convolution's channels) is moved there."""
    moved = axis not in (-1,)
    if moved:
        if axis != 1:
            raise ValueError(f"sparsemax ONNX form: axis {axis} (only the last axis, or 1 of NCHW)")
        x = w.node("Transpose", [x], f"{base}_last", perm=[0, 2, 3, 1])
    last = w.const(np.array([-1], np.int64), f"{base}.last", np.int64)
    xi = w.node("Unsqueeze", [x, last], f"{base}_xi")                                   # (..., n, 1)
    xj = w.node("Unsqueeze", [x, w.const(np.array([-2], np.int64), f"{base}.pen", np.int64)], f"{base}_xj")
    ge = w.node("Cast", [w.node("GreaterOrEqual", [xj, xi], f"{base}_ge")], f"{base}_gef", to=1)
    count = w.node("ReduceSum", [ge, last], f"{base}_count", keepdims=0)
    total = w.node("ReduceSum", [w.node("Mul", [ge, xj], f"{base}_gex"), last], f"{base}_total", keepdims=0)
    lhs = w.node("Add", [w.node("Mul", [count, x], f"{base}_cx"), _c(w, 1.0, f"{base}.one")], f"{base}_lhs")
    support = w.node("Cast", [w.node("Greater", [lhs, total], f"{base}_in")], f"{base}_inf", to=1)
    size = w.node("ReduceSum", [support, last], f"{base}_size", keepdims=1)
    kept = w.node("ReduceSum", [w.node("Mul", [support, x], f"{base}_sx"), last], f"{base}_kept", keepdims=1)
    tau = w.node("Div", [w.node("Sub", [kept, _c(w, 1.0, f"{base}.one_")], f"{base}_km1"), size], f"{base}_tau")
    y = w.node("Relu", [w.node("Sub", [x, tau], f"{base}_shift")], base if not moved else f"{base}_nhwc")
    return w.node("Transpose", [y], base, perm=[0, 3, 1, 2]) if moved else y


ACTIVATION_FORMS = {
    "gelu": _gelu, "mish": _mish, "celu": _celu, "log_softmax": _log_softmax, "log_sigmoid": _log_sigmoid,
    "hard_tanh": _hard_tanh, "tanh_shrink": _tanh_shrink, "soft_shrink": _soft_shrink,
    "hard_shrink": _hard_shrink, "sparse_plus": _sparse_plus, "sparse_sigmoid": _sparse_sigmoid,
    "squareplus": _squareplus, "sparsemax": _sparsemax, "threshold": _threshold,
}
