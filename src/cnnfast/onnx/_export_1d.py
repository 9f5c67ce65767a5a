"""ONNX export of the 1-D layers (Conv1D, SeparableConv1D, 1-D pooling, UpSampling1D,
ZeroPadding1D, Cropping1D).

The model's sequences are ``(batch, steps, channels)``; ONNX's Conv, pools and Resize take
``(batch, channels, steps)``. Each such layer reads the channels-first form of its input (one
Transpose, kept with the value so a chain of 1-D layers transposes once) and leaves its output in
both forms: the channels-last one every other layer reads (a Transpose that nothing may read,
which runtimes drop), and the channels-first one the next 1-D layer takes. ZeroPadding1D and
Cropping1D work on the channels-last tensor directly. Padding is explicit from the static length
("same" with an unknown length is ONNX's SAME_UPPER, Keras's odd cell at the end; "causal" is
``dilation * (k - 1)`` at the start).
"""
from __future__ import annotations

import numpy as np

from ._export import _activation

_NCL = "ncl"   # the key of a value's channels-first name in the writer's table


def _channels_first(w, x):
    v = w.values[id(x)]
    if _NCL not in v:
        v[_NCL] = w.node("Transpose", [w.get(x, "nhwc")], f"{w.get(x, 'nhwc')}_ncl", perm=[0, 2, 1])
    return v[_NCL]


def _set_channels_first(w, out, y):
    w.set(out, w.node("Transpose", [y], f"{y}_nlc", perm=[0, 2, 1]), "nhwc", out.shape)
    w.values[id(out)][_NCL] = y


def _pads(steps, k, s, d, padding):
    """ONNX ``pads`` [begin, end] (or the auto_pad string) of Keras's 1-D padding."""
    dk = d * (k - 1) + 1
    if padding == "valid":
        return dict(pads=[0, 0])
    if padding == "causal":
        return dict(pads=[dk - 1, 0])
    if steps is None:
        return dict(auto_pad="SAME_UPPER")
    total = max((-(-steps // s) - 1) * s + dk - steps, 0)
    return dict(pads=[total // 2, total - total // 2])


def _conv_attrs(w, layer, x):
    k, s, d = layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
    return dict(kernel_shape=[k], strides=[s], dilations=[d], **_pads(w.shape(x)[1], k, s, d, layer.padding))


def _finish(w, layer, y, out):
    y = _activation(w, layer.name, y, layer._act_name, True, f"{layer.name}_{layer._act_name}")
    _set_channels_first(w, out, y)


def _conv1d(w, layer, x, out):
    ins = [_channels_first(w, x), w.const(layer.kernel.value.transpose(2, 1, 0), f"{layer.name}.weight")]
    if layer.bias is not None:
        ins.append(w.const(layer.bias.value, f"{layer.name}.bias"))
    _finish(w, layer, w.node("Conv", ins, layer.name, group=int(layer.groups), **_conv_attrs(w, layer, x)), out)


def _separable_conv1d(w, layer, x, out):
    k, cin, dm = layer.depthwise_kernel.shape
    # (k, cin, dm) -> (cin * dm, 1, k): output channel ci * dm + m, as the layer computes it
    depthwise = layer.depthwise_kernel.value.reshape(k, cin * dm).T[:, None, :]
    mid = w.node("Conv", [_channels_first(w, x), w.const(depthwise, f"{layer.name}.depthwise_kernel")],
                 f"{layer.name}_depthwise", group=int(cin), **_conv_attrs(w, layer, x))
    ins = [mid, w.const(layer.pointwise_kernel.value[0].T[:, :, None], f"{layer.name}.pointwise_kernel")]
    if layer.bias is not None:
        ins.append(w.const(layer.bias.value, f"{layer.name}.bias"))
    _finish(w, layer, w.node("Conv", ins, layer.name, kernel_shape=[1]), out)


def _pool1d(op):
    def write(w, layer, x, out):
        p, s = layer.pool_size[0], layer.strides[0]
        attrs = dict(kernel_shape=[p], strides=[s], **_pads(w.shape(x)[1], p, s, 1, layer.padding))
        if op == "AveragePool":
            attrs["count_include_pad"] = 0   # 'same' averages over the real cells only, as Keras
        _set_channels_first(w, out, w.node(op, [_channels_first(w, x)], layer.name, **attrs))
    return write


def _global_pool1d(op):
    def write(w, layer, x, out):
        y = w.node(op, [_channels_first(w, x)], layer.name)   # (batch, channels, 1)
        if layer.keepdims:
            _set_channels_first(w, out, y)
        else:
            w.set(out, w.node("Flatten", [y], f"{layer.name}_flat", axis=1), "nhwc", out.shape)
    return write


def _upsampling1d(w, layer, x, out):
    scales = w.const(np.array([1, 1, layer.size], np.float32), f"{layer.name}.scales")
    y = w.node("Resize", [_channels_first(w, x), "", scales], layer.name, mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    _set_channels_first(w, out, y)


def _zero_padding1d(w, layer, x, out):
    left, right = layer.padding
    pads = w.const(np.array([0, left, 0, 0, right, 0], np.int64), f"{layer.name}.pads", np.int64)
    w.set(out, w.node("Pad", [w.get(x, "nhwc"), pads], layer.name, mode="constant"), "nhwc", out.shape)


def _cropping1d(w, layer, x, out):
    left, right = layer.cropping
    steps = w.shape(x)[1]
    end = steps - right if steps is not None else (-right if right else np.iinfo(np.int64).max)
    ins = [w.get(x, "nhwc"), w.const(np.array([left], np.int64), f"{layer.name}.starts", np.int64),
           w.const(np.array([end], np.int64), f"{layer.name}.ends", np.int64),
           w.const(np.array([1], np.int64), f"{layer.name}.axes", np.int64)]
    w.set(out, w.node("Slice", ins, layer.name), "nhwc", out.shape)


HANDLERS_1D = {
    "Conv1D": _conv1d, "SeparableConv1D": _separable_conv1d,
    "MaxPooling1D": _pool1d("MaxPool"), "AveragePooling1D": _pool1d("AveragePool"),
    "GlobalMaxPooling1D": _global_pool1d("GlobalMaxPool"),
    "GlobalAveragePooling1D": _global_pool1d("GlobalAveragePool"),
    "UpSampling1D": _upsampling1d, "ZeroPadding1D": _zero_padding1d, "Cropping1D": _cropping1d,
}
