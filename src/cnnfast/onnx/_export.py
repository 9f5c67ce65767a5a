"""cnnfast model -> ONNX graph.

The graph takes NHWC input, as the model does, with a dynamic batch axis. ONNX's image operators
(Conv, pools, Resize, Pad, BatchNormalization) are NCHW, so every 4-D tensor is held in one of two
layouts while the graph is written: ``nhwc`` (the model's own) or ``nchw``. A tensor is converted
(one Transpose, cached) only when the next operator needs the other layout, so a chain of
convolutions, pools and activations runs NCHW from the first convolution to the Flatten without a
transpose in between. Element-wise layers keep their input's layout; Flatten, Dense on images and
Reshape go back to NHWC, so element order is the model's.

Padding is written explicitly from the static spatial sizes (Keras's 'same' puts the odd row at the
bottom, which ONNX calls SAME_UPPER; that is used when the size is unknown).
"""
from __future__ import annotations

import os

import numpy as np

from . import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, require_onnx
from ._export_activations import ACTIVATION_FORMS
from ._names import unique

__all__ = ["export_model"]

_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}   # NHWC axis -> NCHW axis


class ExportError(ValueError):
    """A layer or setting that cannot be written as ONNX (the message names it)."""


class _Writer:
    """The nodes and initializers of the graph being written, and each tensor's ONNX names."""

    def __init__(self, onnx, opset):
        self.onnx, self.helper, self.opset = onnx, onnx.helper, opset
        self.nodes, self.inits, self._names = [], [], set()
        self.values = {}   # id(KerasTensor) -> {"layout": name}, plus "shape"

    def name(self, base):
        base = "".join(ch if ch.isalnum() or ch in "_." else "_" for ch in base) or "t"
        return unique(base, self._names, first=1)

    def const(self, array, base, dtype=np.float32):
        arr = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        name = self.name(base)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def node(self, op, inputs, base, **attrs):
        out = self.name(base)
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=self.name(f"{base}_{op}"),
                                                **attrs))
        return out

    # -- values -----------------------------------------------------------------------------
    def set(self, tensor, name, layout, shape):
        self.values[id(tensor)] = {"shape": tuple(shape), layout: name, "native": layout}

    def shape(self, tensor):
        return self.values[id(tensor)]["shape"]

    def layout(self, tensor):
        return self.values[id(tensor)]["native"]

    def get(self, tensor, layout):
        """The ONNX name of ``tensor`` in ``layout`` ('nhwc' or 'nchw'), transposing once if needed."""
        v = self.values[id(tensor)]
        if len(v["shape"]) != 4:
            layout = "nhwc"
        if layout not in v:
            src = "nchw" if layout == "nhwc" else "nhwc"
            v[layout] = self.node("Transpose", [v[src]], f"{v[src]}_{layout}",
                                  perm=_TO_NHWC if layout == "nhwc" else _TO_NCHW)
        return v[layout]


def export_model(model, filepath, opset=DEFAULT_OPSET, verbose=False):
    onnx = require_onnx("cnnfast.onnx.export")
    from ..models import Model
    if not isinstance(model, Model):
        raise TypeError(f"cnnfast.onnx.export: expected a cnnfast Model or Sequential, got "
                        f"{type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or \
            not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ValueError(f"cnnfast.onnx.export: opset must be an int in [{MIN_OPSET}, {MAX_OPSET}], "
                         f"got {opset!r}")
    if not model.built or not getattr(model, "_plan", None):
        raise ValueError(f"cnnfast.onnx.export: model '{model.name}' is not built; give it an input "
                         "shape (Input(...) or input_shape=) or call it on data first")
    filepath = os.fspath(filepath)
    w = _Writer(onnx, int(opset))
    graph_inputs = []
    for t, layer in zip(model._inputs, model._input_layers):
        shape = tuple(t.shape)
        if any(s is None for s in shape[1:]) and len(shape) != 4:
            raise ExportError(f"cnnfast.onnx.export: input '{layer.name}' has unknown non-batch "
                              f"dimensions {shape}")
        name = w.name(layer.name)
        w.set(t, name, "nhwc", shape)
        dims = ["batch"] + [s if s is not None else f"{name}_dim{i + 1}" for i, s in enumerate(shape[1:])]
        graph_inputs.append(onnx.helper.make_tensor_value_info(name, _input_type(onnx, t, layer), dims))
    _write_graph(w, model)
    graph_outputs, seen = [], set()
    for t in model._outputs:
        name = w.get(t, "nhwc")
        producer_is_node = any(name in n.output for n in w.nodes)
        if not producer_is_node or name in seen:   # an input or a repeated output
            name = w.node("Identity", [name], f"{t._keras_history[0].name}_out")
        seen.add(name)
        dims = ["batch"] + [s if s is not None else f"{name}_dim{i + 1}" for i, s in enumerate(w.shape(t)[1:])]
        graph_outputs.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))
    graph = onnx.helper.make_graph(w.nodes, model.name, graph_inputs, graph_outputs, w.inits)
    from .. import __version__
    proto = onnx.helper.make_model(graph, producer_name="cnnfast", producer_version=__version__,
                                   opset_imports=[onnx.helper.make_opsetid("", w.opset)])
    proto.ir_version = min(proto.ir_version, _max_ir_version(onnx, w.opset))
    onnx.checker.check_model(proto, full_check=True)
    tmp = f"{filepath}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(proto.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if verbose:
        print(f"Saved ONNX model (opset {w.opset}, {len(w.nodes)} nodes) to {filepath}")
    return filepath


def _max_ir_version(onnx, opset):
    """The IR version that goes with ``opset`` (runtimes refuse a newer IR than they know)."""
    try:
        table = onnx.helper.VERSION_TABLE
        return min(ir for _, ir, op, *_ in table if op >= opset)
    except Exception:
        return onnx.IR_VERSION


def _input_type(onnx, tensor, layer):
    """The ONNX element type of a model input: float32, or the integer ids an Embedding takes."""
    dtype = str(getattr(tensor, "dtype", "float32"))
    types = {"float32": onnx.TensorProto.FLOAT, "int32": onnx.TensorProto.INT32,
             "int64": onnx.TensorProto.INT64}
    if dtype not in types:
        raise ExportError(f"cnnfast.onnx.export: input '{layer.name}' holds {dtype} values; ONNX graphs "
                          f"here take float32 or integer inputs (export the model after a "
                          f"TextVectorization, on its integer output)")
    return types[dtype]


# Layers that have no ONNX form, and why (the export names the layer and says this).
NOT_EXPORTABLE = {
    "TextVectorization": "tokenising strings has no ONNX operator; export the model that takes its "
                        "integer output and vectorise the text before the ONNX runtime",
}


def _write_graph(w, model):
    for (layer, ins, out, multi), node in zip(model._plan, model._nodes):
        inputs = node.inputs
        _write_layer(w, layer, inputs if multi else inputs[0], node.outputs[0])


def _write_layer(w, layer, inputs, out):
    cls = type(layer).__name__
    handler = _HANDLERS.get(cls)
    if handler is None:
        from ..models import Model
        if isinstance(layer, Model):
            return _write_nested(w, layer, inputs, out)
        reason = f": {NOT_EXPORTABLE[cls]}" if cls in NOT_EXPORTABLE else ""
        raise ExportError(f"cnnfast.onnx.export: layer '{layer.name}' ({cls}) cannot be exported to "
                          f"ONNX{reason}")
    handler(w, layer, inputs, out)


def _write_nested(w, model, inputs, out):
    xs = inputs if isinstance(inputs, list) else [inputs]
    for inner, x in zip(model._inputs, xs):
        w.values[id(inner)] = w.values[id(x)]
    _write_graph(w, model)
    if len(model._outputs) != 1:
        raise ExportError(f"cnnfast.onnx.export: nested model '{model.name}' has several outputs")
    w.values[id(out)] = w.values[id(model._outputs[0])]


# -- activations -------------------------------------------------------------------------------
def _activation(w, name, x, act, axis_len4=False, base="act"):
    """Apply the Keras activation ``act`` to ONNX tensor ``x``; ``axis_len4`` says x is NCHW."""
    if act in (None, "linear"):
        return x
    if act == "relu":
        return w.node("Relu", [x], base)
    if act == "sigmoid":
        return w.node("Sigmoid", [x], base)
    if act == "tanh":
        return w.node("Tanh", [x], base)
    if act == "softmax":
        return w.node("Softmax", [x], base, axis=1 if axis_len4 else -1)
    if act == "leaky_relu":
        return w.node("LeakyRelu", [x], base, alpha=0.2)
    if act == "elu":
        return w.node("Elu", [x], base, alpha=1.0)
    if act == "selu":
        return w.node("Selu", [x], base, alpha=1.6732632423543772, gamma=1.0507009873554805)
    if act == "softplus":
        return w.node("Softplus", [x], base)
    if act == "softsign":
        return w.node("Softsign", [x], base)
    if act in ("silu", "swish"):
        return w.node("Mul", [x, w.node("Sigmoid", [x], base + "_sigmoid")], base)
    if act == "exponential":
        return w.node("Exp", [x], base)
    if act == "relu6":
        return w.node("Clip", [x, w.const(0.0, "zero"), w.const(6.0, "six")], base)
    if act == "hard_sigmoid":
        return w.node("HardSigmoid", [x], base, alpha=1.0 / 6.0, beta=0.5)
    if act == "hard_silu":   # x * hard_sigmoid(x): any opset (HardSwish needs 14)
        return w.node("Mul", [x, w.node("HardSigmoid", [x], base + "_gate", alpha=1.0 / 6.0, beta=0.5)], base)
    if act in ACTIVATION_FORMS:   # the rarer Keras 3 activations, with Keras's default arguments
        return ACTIVATION_FORMS[act](w, x, base, {}, 1 if axis_len4 else -1)
    raise ExportError(f"cnnfast.onnx.export: layer '{name}': activation '{act}' has no ONNX form here")


# -- layers ----------------------------------------------------------------------------------------
def _spatial_pads(layer, in_shape, kernel, strides, dilation, padding):
    """ONNX ``pads`` [top, left, bottom, right] (or an auto_pad string) for a conv/pool layer."""
    h, wd = in_shape[1], in_shape[2]
    if not isinstance(padding, str):          # explicit ((top, bottom), (left, right))
        (t, b), (l, r) = padding
        return dict(pads=[int(t), int(l), int(b), int(r)])
    if padding == "valid":
        return dict(pads=[0, 0, 0, 0])
    if h is None or wd is None:
        return dict(auto_pad="SAME_UPPER")
    pads = []
    for n, k, s, d in ((h, kernel[0], strides[0], dilation[0]), (wd, kernel[1], strides[1], dilation[1])):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return dict(pads=[pads[0][0], pads[1][0], pads[0][1], pads[1][1]])


def _conv(w, layer, x, out):
    shape = w.shape(x)
    xin = w.get(x, "nchw")
    kernel = layer._kernel_value()
    weight = w.const(np.transpose(kernel, (3, 2, 0, 1)), f"{layer.name}.weight")
    ins = [xin, weight]
    if layer.bias is not None:
        ins.append(w.const(layer.bias.value, f"{layer.name}.bias"))
    groups = shape[-1] if type(layer).__name__ == "DepthwiseConv2D" else layer.groups
    y = w.node("Conv", ins, layer.name, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
               dilations=list(layer.dilation_rate), group=int(groups),
               **_spatial_pads(layer, shape, layer.kernel_size, layer.strides, layer.dilation_rate,
                               layer.padding))
    y = _activation(w, layer.name, y, layer._act_name, True, f"{layer.name}_{layer._act_name}")
    w.set(out, y, "nchw", out.shape)


def _separable_conv(w, layer, x, out):
    shape = w.shape(x)
    pads = _spatial_pads(layer, shape, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding)
    dw = w.const(np.transpose(layer._depthwise_view(), (3, 2, 0, 1)), f"{layer.name}.depthwise_kernel")
    mid = w.node("Conv", [w.get(x, "nchw"), dw], f"{layer.name}_depthwise",
                 kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), group=int(shape[-1]), **pads)
    ins = [mid, w.const(np.transpose(layer.pointwise_kernel.value, (3, 2, 0, 1)), f"{layer.name}.pointwise_kernel")]
    if layer.bias is not None:
        ins.append(w.const(layer.bias.value, f"{layer.name}.bias"))
    y = w.node("Conv", ins, layer.name, kernel_shape=[1, 1])
    y = _activation(w, layer.name, y, layer._act_name, True, f"{layer.name}_{layer._act_name}")
    w.set(out, y, "nchw", out.shape)


def _conv_transpose(w, layer, x, out):
    from ..ops._conv import _transpose_geometry
    shape = w.shape(x)
    if shape[1] is None or shape[2] is None:
        raise ExportError(f"cnnfast.onnx.export: layer '{layer.name}' (Conv2DTranspose) needs known "
                          f"input height and width, got {shape}")
    kh, kw = layer.kernel_size
    ht, wt, pt, pl = _transpose_geometry(shape[1], shape[2], kh, kw, layer.strides, layer.padding,
                                         layer.output_padding, layer.dilation_rate, layer.name)
    pads_end, out_pad = [], []
    for n, k, s, d, o, p in ((shape[1], kh, layer.strides[0], layer.dilation_rate[0], ht, pt),
                             (shape[2], kw, layer.strides[1], layer.dilation_rate[1], wt, pl)):
        full = (n - 1) * s + (k - 1) * d + 1
        end = max(full - p - o, 0)
        pads_end.append(end)
        out_pad.append(o - (full - p - end))
    ins = [w.get(x, "nchw"), w.const(np.transpose(layer.kernel.value, (3, 2, 0, 1)), f"{layer.name}.weight")]
    if layer.bias is not None:
        ins.append(w.const(layer.bias.value, f"{layer.name}.bias"))
    attrs = dict(kernel_shape=[kh, kw], strides=list(layer.strides), dilations=list(layer.dilation_rate),
                 pads=[pt, pl, pads_end[0], pads_end[1]])
    if any(out_pad):
        attrs["output_padding"] = out_pad
    y = w.node("ConvTranspose", ins, layer.name, **attrs)
    y = _activation(w, layer.name, y, layer._act_name, True, f"{layer.name}_{layer._act_name}")
    w.set(out, y, "nchw", out.shape)


def _pool(op):
    def write(w, layer, x, out):
        shape = w.shape(x)
        attrs = dict(kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                     **_spatial_pads(layer, shape, layer.pool_size, layer.strides, (1, 1), layer.padding))
        if op == "AveragePool":
            attrs["count_include_pad"] = 0   # 'same' averages over the real cells only, as Keras
        y = w.node(op, [w.get(x, "nchw")], layer.name, **attrs)
        w.set(out, y, "nchw", out.shape)
    return write


def _global_pool(op):
    def write(w, layer, x, out):
        y = w.node(op, [w.get(x, "nchw")], layer.name)
        if layer.keepdims:
            w.set(out, y, "nchw", out.shape)
        else:
            w.set(out, w.node("Flatten", [y], f"{layer.name}_flat", axis=1), "nhwc", out.shape)
    return write


def _dense(w, layer, x, out):
    shape = w.shape(x)
    xin = w.get(x, "nhwc")
    kernel = w.const(layer.kernel.value, f"{layer.name}.kernel")
    if len(shape) == 2:
        ins = [xin, kernel] + ([w.const(layer.bias.value, f"{layer.name}.bias")] if layer.bias is not None else [])
        y = w.node("Gemm", ins, layer.name)
    else:
        y = w.node("MatMul", [xin, kernel], layer.name)
        if layer.bias is not None:
            y = w.node("Add", [y, w.const(layer.bias.value, f"{layer.name}.bias")], f"{layer.name}_bias")
    y = _activation(w, layer.name, y, layer._act_name, False, f"{layer.name}_{layer._act_name}")
    w.set(out, y, "nhwc", out.shape)


def _elementwise(fn):
    """A layer that maps each element (any layout works): ``fn(w, layer, name, is_nchw) -> name``."""
    def write(w, layer, x, out):
        layout = w.layout(x)
        y = fn(w, layer, w.get(x, layout), layout == "nchw" and len(w.shape(x)) == 4)
        w.set(out, y, layout, out.shape)
    return write


def _activation_layer(w, layer, x, nchw):
    return _activation(w, layer.name, x, layer._act_name, nchw, layer.name)


def _softmax_layer(w, layer, x, nchw):
    axis = layer.axis
    if nchw:
        axis = _NCHW_AXIS[axis % 4]
    return w.node("Softmax", [x], layer.name, axis=int(axis))


def _relu_layer(w, layer, x, nchw):
    slope, thr, cap = layer.negative_slope, layer.threshold, layer.max_value
    if slope == 0.0 and thr == 0.0:
        if cap is None:
            return w.node("Relu", [x], layer.name)
        return w.node("Clip", [x, w.const(0.0, "zero"), w.const(cap, f"{layer.name}.max")], layer.name)
    if thr == 0.0 and cap is None:
        return w.node("LeakyRelu", [x], layer.name, alpha=float(slope))
    t = w.const(thr, f"{layer.name}.threshold")
    below = w.node("Mul", [w.node("Sub", [x, t], f"{layer.name}_shift"), w.const(slope, f"{layer.name}.slope")],
                   f"{layer.name}_below")
    y = w.node("Where", [w.node("GreaterOrEqual", [x, t], f"{layer.name}_mask"), x, below], layer.name)
    if cap is not None:
        y = w.node("Min", [y, w.const(cap, f"{layer.name}.max")], f"{layer.name}_cap")
    return y


def _leaky_relu_layer(w, layer, x, nchw):
    return w.node("LeakyRelu", [x], layer.name, alpha=float(layer.negative_slope))


def _identity_layer(w, layer, x, nchw):
    return w.node("Identity", [x], layer.name)


def _rescaling_layer(w, layer, x, nchw):
    y = w.node("Mul", [x, w.const(layer.scale, f"{layer.name}.scale")], layer.name)
    if layer.offset != 0.0:
        y = w.node("Add", [y, w.const(layer.offset, f"{layer.name}.offset")], f"{layer.name}_offset")
    return y


def _channels_last_affine(w, name, x, out, scale, shift):
    """``x * scale + shift`` with constants that broadcast against the NHWC value."""
    y = w.node("Mul", [w.get(x, "nhwc"), w.const(scale, f"{name}.scale")], name)
    y = w.node("Add", [y, w.const(shift, f"{name}.shift")], f"{name}_shift")
    w.set(out, y, "nhwc", out.shape)


def _rescaling(w, layer, x, out):
    if np.ndim(layer.scale) == 0 and np.ndim(layer.offset) == 0:   # any layout works
        return _elementwise(_rescaling_layer)(w, layer, x, out)
    _channels_last_affine(w, layer.name, x, out, layer._scale, layer._offset)   # per-channel


def _normalization(w, layer, x, out):
    mean, variance = (np.asarray(v, np.float64) for v in layer._statistics())
    denom = np.maximum(np.sqrt(variance), 1e-7)
    scale, shift = (denom, mean) if layer.invert else (1.0 / denom, -mean / denom)
    _channels_last_affine(w, layer.name, x, out, scale, shift)


def _batch_norm(w, layer, x, out):
    shape = w.shape(x)
    c = shape[-1]
    gamma = layer.gamma.value if layer.gamma is not None else np.ones(c, np.float32)
    beta = layer.beta.value if layer.beta is not None else np.zeros(c, np.float32)
    if len(shape) in (2, 4):
        ins = [w.get(x, "nchw"), w.const(gamma, f"{layer.name}.gamma"), w.const(beta, f"{layer.name}.beta"),
               w.const(layer.moving_mean.value, f"{layer.name}.moving_mean"),
               w.const(layer.moving_variance.value, f"{layer.name}.moving_variance")]
        y = w.node("BatchNormalization", ins, layer.name, epsilon=float(layer.epsilon))
        w.set(out, y, "nchw" if len(shape) == 4 else "nhwc", out.shape)
        return
    # other ranks, channels last: x * a + b with the statistics folded (float64, then float32)
    inv = gamma.astype(np.float64) / np.sqrt(layer.moving_variance.value.astype(np.float64) + layer.epsilon)
    shift = beta - layer.moving_mean.value.astype(np.float64) * inv
    y = w.node("Mul", [w.get(x, "nhwc"), w.const(inv, f"{layer.name}.scale")], layer.name)
    y = w.node("Add", [y, w.const(shift, f"{layer.name}.shift")], f"{layer.name}_shift")
    w.set(out, y, "nhwc", out.shape)


def _flatten(w, layer, x, out):
    y = w.node("Flatten", [w.get(x, "nhwc")], layer.name, axis=1)
    w.set(out, y, "nhwc", out.shape)


def _reshape(w, layer, x, out):
    target = np.array([0] + [int(s) for s in layer.target_shape], np.int64)
    y = w.node("Reshape", [w.get(x, "nhwc"), w.const(target, f"{layer.name}.shape", np.int64)], layer.name)
    w.set(out, y, "nhwc", out.shape)


def _permute(w, layer, x, out):
    y = w.node("Transpose", [w.get(x, "nhwc")], layer.name, perm=[0] + [int(d) for d in layer.dims])
    w.set(out, y, "nhwc", out.shape)


def _upsampling(w, layer, x, out):
    sh, sw = layer.size
    scales = w.const(np.array([1, 1, sh, sw], np.float32), f"{layer.name}.scales")
    if layer.interpolation == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        attrs = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    y = w.node("Resize", [w.get(x, "nchw"), "", scales], layer.name, **attrs)
    w.set(out, y, "nchw", out.shape)


def _zero_padding(w, layer, x, out):
    (t, b), (l, r) = layer.padding
    pads = w.const(np.array([0, 0, t, l, 0, 0, b, r], np.int64), f"{layer.name}.pads", np.int64)
    y = w.node("Pad", [w.get(x, "nchw"), pads], layer.name, mode="constant")
    w.set(out, y, "nchw", out.shape)


def _cropping(w, layer, x, out):
    (t, b), (l, r) = layer.cropping
    shape = w.shape(x)
    ends = [(shape[1] - b) if shape[1] is not None else (-b if b else np.iinfo(np.int64).max),
            (shape[2] - r) if shape[2] is not None else (-r if r else np.iinfo(np.int64).max)]
    ins = [w.get(x, "nchw"), w.const(np.array([t, l], np.int64), f"{layer.name}.starts", np.int64),
           w.const(np.array(ends, np.int64), f"{layer.name}.ends", np.int64),
           w.const(np.array([2, 3], np.int64), f"{layer.name}.axes", np.int64)]
    w.set(out, w.node("Slice", ins, layer.name), "nchw", out.shape)


def _merge(op):
    def write(w, layer, xs, out):
        rank = len(w.shape(xs[0]))
        layout = w.layout(xs[0]) if rank == 4 else "nhwc"
        names = [w.get(t, layout) for t in xs]
        if op == "Concat":
            axis = layer.axis % rank
            if layout == "nchw":
                axis = _NCHW_AXIS[axis]
            y = w.node("Concat", names, layer.name, axis=int(axis))
        elif op in ("Sub", "Mul") or len(names) == 1:
            y = names[0] if len(names) > 1 else w.node("Identity", names, layer.name)
            for k, n in enumerate(names[1:]):
                y = w.node(op, [y, n], layer.name if k == len(names) - 2 else f"{layer.name}_{k}")
        else:
            y = w.node(op, names, layer.name)
        w.set(out, y, layout, out.shape)
    return write


def _elu_layer(w, layer, x, nchw):
    return w.node("Elu", [x], layer.name, alpha=float(layer.alpha))


def _prelu(w, layer, x, out):
    # alpha has the NHWC input's shape without the batch axis (1 on shared axes): PRelu broadcasts it
    y = w.node("PRelu", [w.get(x, "nhwc"), w.const(layer.alpha.value, f"{layer.name}.alpha")], layer.name)
    w.set(out, y, "nhwc", out.shape)


def _layer_norm(w, layer, x, out):
    ndim = len(w.shape(x))
    axes = list(layer._axes)
    if w.opset < 17 or layer.rms_scaling or axes != list(range(axes[0], ndim)):
        raise ExportError(f"cnnfast.onnx.export: LayerNormalization '{layer.name}' exports as ONNX's "
                          "LayerNormalization (opset >= 17, axes running to the last axis, no rms_scaling); "
                          f"got opset {w.opset}, axis={layer.axis}, rms_scaling={layer.rms_scaling}")
    shape = tuple(w.shape(x)[a] for a in axes)
    gamma = layer.gamma.value if layer.gamma is not None else np.ones(shape, np.float32)
    beta = layer.beta.value if layer.beta is not None else np.zeros(shape, np.float32)
    y = w.node("LayerNormalization", [w.get(x, "nhwc"), w.const(gamma, f"{layer.name}.gamma"),
                                      w.const(beta, f"{layer.name}.beta")], layer.name,
               axis=int(axes[0]), epsilon=float(layer.epsilon))
    w.set(out, y, "nhwc", out.shape)


def _group_norm(w, layer, x, out):
    # channels first, (N, groups, rest) and InstanceNormalization: one mean/variance per (n, group)
    ndim = len(w.shape(x))
    if layer._channel_axis != ndim - 1:
        raise ExportError(f"cnnfast.onnx.export: GroupNormalization '{layer.name}' exports only with the "
                          f"channel axis last, got axis={layer.axis}")
    layout = "nchw" if ndim == 4 else "nhwc"
    if ndim not in (2, 4):
        raise ExportError(f"cnnfast.onnx.export: GroupNormalization '{layer.name}' exports 2-D and 4-D "
                          f"inputs, got {ndim}-D")
    xin = w.get(x, layout)
    g = layer.groups
    grouped = w.node("Reshape", [xin, w.const(np.array([0, g, -1]), f"{layer.name}.groups", np.int64)],
                     f"{layer.name}_grouped")
    normed = w.node("InstanceNormalization", [grouped, w.const(np.ones(g), f"{layer.name}.ones"),
                                              w.const(np.zeros(g), f"{layer.name}.zeros")],
                    f"{layer.name}_normed", epsilon=float(layer.epsilon))
    y = w.node("Reshape", [normed, w.node("Shape", [xin], f"{layer.name}_shape")], f"{layer.name}_back")
    c = w.shape(x)[-1]
    per_channel = (c, 1, 1) if ndim == 4 else (c,)
    if layer.gamma is not None:
        y = w.node("Mul", [y, w.const(layer.gamma.value.reshape(per_channel), f"{layer.name}.gamma")],
                   f"{layer.name}_scaled")
    if layer.beta is not None:
        y = w.node("Add", [y, w.const(layer.beta.value.reshape(per_channel), f"{layer.name}.beta")],
                   layer.name)
    w.set(out, y, layout, out.shape)


def _unit_norm(w, layer, x, out):
    if len(layer._axes) != 1:
        raise ExportError(f"cnnfast.onnx.export: UnitNormalization '{layer.name}' exports one axis "
                          f"(ONNX's LpNormalization), got axis={layer.axis}")
    y = w.node("LpNormalization", [w.get(x, "nhwc")], layer.name, axis=int(layer._axes[0]), p=2)
    w.set(out, y, "nhwc", out.shape)


def _input_layer(w, layer, x, out):   # only reached for nested InputLayers (never in a plan)
    w.values[id(out)] = w.values[id(x)]


_HANDLERS = {
    "InputLayer": _input_layer,
    "Conv2D": _conv, "DepthwiseConv2D": _conv, "Conv2DTranspose": _conv_transpose,
    "SeparableConv2D": _separable_conv,
    "MaxPooling2D": _pool("MaxPool"), "AveragePooling2D": _pool("AveragePool"),
    "GlobalAveragePooling2D": _global_pool("GlobalAveragePool"),
    "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "Dense": _dense, "BatchNormalization": _batch_norm,
    "Activation": _elementwise(_activation_layer), "Softmax": _elementwise(_softmax_layer),
    "ReLU": _elementwise(_relu_layer), "LeakyReLU": _elementwise(_leaky_relu_layer),
    "Dropout": _elementwise(_identity_layer), "Rescaling": _rescaling,
    "Normalization": _normalization,
    "Flatten": _flatten, "Reshape": _reshape, "Permute": _permute, "UpSampling2D": _upsampling,
    "ZeroPadding2D": _zero_padding, "Cropping2D": _cropping,
    "Add": _merge("Sum"), "Subtract": _merge("Sub"), "Multiply": _merge("Mul"),
    "Average": _merge("Mean"), "Concatenate": _merge("Concat"),
    "ELU": _elementwise(_elu_layer), "PReLU": _prelu, "LayerNormalization": _layer_norm,
    "GroupNormalization": _group_norm, "UnitNormalization": _unit_norm,
}
# identities at inference
_HANDLERS.update({name: _elementwise(_identity_layer) for name in (
    "Identity", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization")})

# the 1-D layers (their module reads this one's helpers, hence imported last)
from ._export_1d import HANDLERS_1D  # noqa: E402
_HANDLERS.update(HANDLERS_1D)

# Maximum, Minimum, Dot, RepeatVector, Lambda (also reads this module's helpers)
from ._export_merge_more import HANDLERS_MERGE_MORE  # noqa: E402
_HANDLERS.update(HANDLERS_MERGE_MORE)

# the 3-D layers (also read this module's helpers)
from ._export_3d import HANDLERS_3D  # noqa: E402
_HANDLERS.update(HANDLERS_3D)

# image preprocessing: random augmentations (identities at inference), Resizing, CenterCrop, RandomCrop
from ._export_image import HANDLERS_IMAGE  # noqa: E402
_HANDLERS.update(HANDLERS_IMAGE)

def _embedding(w, layer, x, out):
    ids = w.get(x, "nhwc")
    if str(getattr(x, "dtype", "float32")) == "float32":   # float ids are truncated, as the layer does
        ids = w.node("Cast", [ids], f"{layer.name}_ids", to=w.onnx.TensorProto.INT64)
    table = w.const(layer.embeddings.value, f"{layer.name}.embeddings")
    w.set(out, w.node("Gather", [table, ids], layer.name, axis=0), "nhwc", out.shape)


_HANDLERS["Embedding"] = _embedding

# every layer cnnfast can rebuild from a file is covered (checked by the tests)
EXPORTABLE = frozenset(_HANDLERS) - {"InputLayer"}
