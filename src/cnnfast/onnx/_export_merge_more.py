"""ONNX export of Maximum, Minimum (ONNX's variadic Max / Min), Dot (Transpose + Reshape + batched
MatMul, with the L2 normalisation written out), RepeatVector (Unsqueeze + Expand) and Lambda layers
whose function is a ``cnnfast.activations`` function (any other Python function has no ONNX
form: the export then names the layer).

Dot and RepeatVector work on the model's own (channels-last) layout and need the sizes after the
batch axis to be known.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import activations as _activations
from ._export import ExportError, _activation, _merge, _relu_layer
from ._export_activations import ACTIVATION_FORMS

__all__ = ["HANDLERS_MERGE_MORE"]


def _static(layer, shape, what):
    if any(d is None for d in shape[1:]):
        raise ExportError(f"cnnfast.onnx.export: {type(layer).__name__} '{layer.name}' needs known sizes "
                          f"after the batch axis, got {what} shape {tuple(shape)}")
    return shape


def _ints(w, values, base):
    return w.const(np.array(values, np.int64), base, np.int64)


def _l2_normalized(w, x, axis, base):
    """``x * min(1 / ||x||, 1e7)`` along ``axis`` (Keras's normalize, finite on zero vectors)."""
    squares = w.node("ReduceSum", [w.node("Mul", [x, x], f"{base}_sq"), _ints(w, [axis], f"{base}.axis")],
                     f"{base}_sumsq", keepdims=1)
    inv = w.node("Reciprocal", [w.node("Sqrt", [squares], f"{base}_norm")], f"{base}_inv")
    inv = w.node("Min", [inv, w.const(np.float32(1e7), f"{base}.cap")], f"{base}_capped")
    return w.node("Mul", [x, inv], f"{base}_unit")


def _dot(w, layer, xs, out):
    shape_x = _static(layer, w.shape(xs[0]), "input")
    shape_y = _static(layer, w.shape(xs[1]), "input")
    _static(layer, out.shape, "output")
    a0, a1 = layer._resolved_axes([shape_x, shape_y])
    x, y = w.get(xs[0], "nhwc"), w.get(xs[1], "nhwc")
    base = layer.name
    if layer.normalize:
        x = _l2_normalized(w, x, a0, f"{base}_x")
        y = _l2_normalized(w, y, a1, f"{base}_y")
    k = int(shape_x[a0])
    perm_x = [i for i in range(len(shape_x)) if i != a0] + [a0]
    perm_y = [0, a1] + [i for i in range(1, len(shape_y)) if i != a1]
    if perm_x != list(range(len(shape_x))):
        x = w.node("Transpose", [x], f"{base}_xt", perm=perm_x)
    if perm_y != list(range(len(shape_y))):
        y = w.node("Transpose", [y], f"{base}_yt", perm=perm_y)
    x3 = w.node("Reshape", [x, _ints(w, [0, -1, k], f"{base}.x3")], f"{base}_x3")
    y3 = w.node("Reshape", [y, _ints(w, [0, k, -1], f"{base}.y3")], f"{base}_y3")
    product = w.node("MatMul", [x3, y3], f"{base}_matmul")
    result = w.node("Reshape", [product, _ints(w, [0] + list(out.shape[1:]), f"{base}.out")], base)
    w.set(out, result, "nhwc", out.shape)


def _repeat_vector(w, layer, x, out):
    grown = w.node("Unsqueeze", [w.get(x, "nhwc"), _ints(w, [1], f"{layer.name}.axis")], f"{layer.name}_1")
    y = w.node("Expand", [grown, _ints(w, [1, layer.n, 1], f"{layer.name}.shape")], layer.name)
    w.set(out, y, "nhwc", out.shape)


def _activation_name(fn):
    try:
        return _activations.serialize(fn)
    except (TypeError, ValueError):
        return None


def _lambda(w, layer, x, out):
    name = _activation_name(layer.function)
    if layer._multi_input or name is None:
        raise ExportError(f"cnnfast.onnx.export: Lambda '{layer.name}' wraps a Python function, which has "
                          "no ONNX form; only a Lambda of one cnnfast.activations function exports")
    args = dict(layer.arguments)
    ndim = len(w.shape(x))
    xin = w.get(x, "nhwc")
    axis = args.get("axis", -1)
    axis = axis if axis == -1 else axis % ndim
    if axis == ndim - 1:
        axis = -1
    if name in ACTIVATION_FORMS:
        if name == "sparsemax" and axis != -1:
            raise ExportError(f"cnnfast.onnx.export: Lambda '{layer.name}': sparsemax exports along the "
                              f"last axis only, got axis={args['axis']}")
        y = ACTIVATION_FORMS[name](w, xin, layer.name, args, axis)
    elif name == "relu" and args:
        y = _relu_layer(w, SimpleNamespace(name=layer.name, negative_slope=args.get("negative_slope", 0.0),
                                           threshold=args.get("threshold", 0.0),
                                           max_value=args.get("max_value")), xin, False)
    elif name == "leaky_relu":
        y = w.node("LeakyRelu", [xin], layer.name, alpha=float(args.get("negative_slope", 0.2)))
    elif name == "elu":
        y = w.node("Elu", [xin], layer.name, alpha=float(args.get("alpha", 1.0)))
    elif name == "softmax":
        y = w.node("Softmax", [xin], layer.name, axis=int(axis))
    elif not args:
        y = _activation(w, layer.name, xin, name, False, layer.name)
    else:
        raise ExportError(f"cnnfast.onnx.export: Lambda '{layer.name}': activation '{name}' with arguments "
                          f"{args} has no ONNX form here")
    w.set(out, y, "nhwc", out.shape)


HANDLERS_MERGE_MORE = {
    "Maximum": _merge("Max"), "Minimum": _merge("Min"), "Dot": _dot, "RepeatVector": _repeat_vector,
    "Lambda": _lambda,
}
