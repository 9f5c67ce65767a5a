"""ONNX export of the 3-D layers (Conv3D, Conv3DTranspose, 3-D pooling, UpSampling3D,
ZeroPadding3D, Cropping3D).

Volumes are ``(batch, depth, height, width, channels)`` in the model; ONNX's Conv, ConvTranspose,
pools and Resize take ``(batch, channels, depth, height, width)``. As for the 1-D layers, each
such layer reads the channels-first form of its input (one Transpose, kept with the value so a
chain of 3-D layers transposes once) and leaves its output in both forms. Padding is explicit,
from the static sizes (Keras's "same" puts the odd cell at the end).
"""
from __future__ import annotations

import numpy as np

from ._export import ExportError, _activation

_NCDHW = "ncdhw"   # the key of a value's channels-first name in the writer's table
_TO_NCDHW, _TO_NDHWC = [0, 4, 1, 2, 3], [0, 2, 3, 4, 1]


def _channels_first(w, x):
    v = w.values[id(x)]
    if _NCDHW not in v:
        v[_NCDHW] = w.node("Transpose", [w.get(x, "nhwc")], f"{w.get(x, 'nhwc')}_ncdhw", perm=_TO_NCDHW)
    return v[_NCDHW]


def _set_channels_first(w, out, y):
    w.set(out, w.node("Transpose", [y], f"{y}_ndhwc", perm=_TO_NDHWC), "nhwc", out.shape)
    w.values[id(out)][_NCDHW] = y


def _spatial(w, layer, x):
    shape = w.shape(x)[1:4]
    if any(n is None for n in shape):
        raise ExportError(f"cnnfast.onnx.export: layer '{layer.name}' ({type(layer).__name__}) needs "
                          f"known depth, height and width, got {w.shape(x)}")
    return shape


def _same_pads(sizes, kernel, strides, dilation, padding):
    """ONNX ``pads`` [begins..., ends...] of Keras's "valid" / "same" over three axes."""
    begins, ends = [], []
    for n, k, s, d in zip(sizes, kernel, strides, dilation):
        total = 0 if padding == "valid" else max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def _finish(w, layer, y, out):
    y = _activation(w, layer.name, y, layer._act_name, True, f"{layer.name}_{layer._act_name}")
    _set_channels_first(w, out, y)


def _conv3d(w, layer, x, out):
    sizes = _spatial(w, layer, x)
    ins = [_channels_first(w, x), w.const(layer.kernel.value.transpose(4, 3, 0, 1, 2), f"{layer.name}.weight")]
    if layer.bias is not None:
        ins.append(w.const(layer.bias.value, f"{layer.name}.bias"))
    y = w.node("Conv", ins, layer.name, group=int(layer.groups), kernel_shape=list(layer.kernel_size),
               strides=list(layer.strides), dilations=list(layer.dilation_rate),
               pads=_same_pads(sizes, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding))
    _finish(w, layer, y, out)


def _conv3d_transpose(w, layer, x, out):
    from ..ops._conv import _transpose_dim
    sizes = _spatial(w, layer, x)
    begins, ends, out_pad = [], [], []
    for i, n in enumerate(sizes):
        k, s, d = layer.kernel_size[i], layer.strides[i], layer.dilation_rate[i]
        size, begin = _transpose_dim(n, k, s, d, layer.padding,
                                     None if layer.output_padding is None else layer.output_padding[i])
        full = (n - 1) * s + (k - 1) * d + 1
        end = max(full - begin - size, 0)
        begins.append(begin)
        ends.append(end)
        out_pad.append(size - (full - begin - end))
    ins = [_channels_first(w, x), w.const(layer.kernel.value.transpose(4, 3, 0, 1, 2), f"{layer.name}.weight")]
    if layer.bias is not None:
        ins.append(w.const(layer.bias.value, f"{layer.name}.bias"))
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), pads=begins + ends)
    if any(out_pad):
        attrs["output_padding"] = out_pad
    _finish(w, layer, w.node("ConvTranspose", ins, layer.name, **attrs), out)


def _pool3d(op):
    def write(w, layer, x, out):
        sizes = _spatial(w, layer, x)
        attrs = dict(kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                     pads=_same_pads(sizes, layer.pool_size, layer.strides, (1, 1, 1), layer.padding))
        if op == "AveragePool":
            attrs["count_include_pad"] = 0   # 'same' averages over the real cells only, as Keras
        _set_channels_first(w, out, w.node(op, [_channels_first(w, x)], layer.name, **attrs))
    return write


def _global_pool3d(op):
    def write(w, layer, x, out):
        y = w.node(op, [_channels_first(w, x)], layer.name)   # (batch, channels, 1, 1, 1)
        if layer.keepdims:
            _set_channels_first(w, out, y)
        else:
            w.set(out, w.node("Flatten", [y], f"{layer.name}_flat", axis=1), "nhwc", out.shape)
    return write


def _upsampling3d(w, layer, x, out):
    scales = w.const(np.array([1, 1, *layer.size], np.float32), f"{layer.name}.scales")
    y = w.node("Resize", [_channels_first(w, x), "", scales], layer.name, mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    _set_channels_first(w, out, y)


def _zero_padding3d(w, layer, x, out):
    (d0, d1), (h0, h1), (w0, w1) = layer.padding
    pads = w.const(np.array([0, d0, h0, w0, 0, 0, d1, h1, w1, 0], np.int64), f"{layer.name}.pads", np.int64)
    w.set(out, w.node("Pad", [w.get(x, "nhwc"), pads], layer.name, mode="constant"), "nhwc", out.shape)


def _cropping3d(w, layer, x, out):
    sizes = _spatial(w, layer, x)
    starts = [b for b, _ in layer.cropping]
    ends = [n - a for n, (_, a) in zip(sizes, layer.cropping)]
    ins = [w.get(x, "nhwc"), w.const(np.array(starts, np.int64), f"{layer.name}.starts", np.int64),
           w.const(np.array(ends, np.int64), f"{layer.name}.ends", np.int64),
           w.const(np.array([1, 2, 3], np.int64), f"{layer.name}.axes", np.int64)]
    w.set(out, w.node("Slice", ins, layer.name), "nhwc", out.shape)


HANDLERS_3D = {
    "Conv3D": _conv3d, "Conv3DTranspose": _conv3d_transpose,
    "MaxPooling3D": _pool3d("MaxPool"), "AveragePooling3D": _pool3d("AveragePool"),
    "GlobalMaxPooling3D": _global_pool3d("GlobalMaxPool"),
    "GlobalAveragePooling3D": _global_pool3d("GlobalAveragePool"),
    "UpSampling3D": _upsampling3d, "ZeroPadding3D": _zero_padding3d, "Cropping3D": _cropping3d,
}
