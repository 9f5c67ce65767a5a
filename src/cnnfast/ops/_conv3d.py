"""3-D convolutions over NDHWC volumes, as 2-D convolutions over depth slices.

Conv3D folds the kernel's depth into its channels: output slice ``d`` reads input slices
``d * stride + t * dilation - pad`` for the ``kd`` taps ``t``, so stacking those ``kd`` slices
along the channel axis (zeros where a tap falls in the padding) gives one image of
``kd * cin`` channels per output slice, and the 3-D convolution is a single 2-D convolution of
the batch of ``N * Do`` stacked images with the kernel viewed as ``(kh, kw, kd * cin, filters)``.
The 2-D kernels' blocking, SIMD and threads then serve volumes unchanged, with a reduction
``kd`` times deeper (a first layer with one channel gets 27 instead of 9 products per output)
and no accumulation passes over the output. The cost above the 2-D work is the gather of the
stacked input (``kd`` copies of the input's cells); its gradient is scattered back the same way.
With groups, the stacked channels are ordered (group, tap, channel), keeping each group's
channels contiguous as the grouped 2-D kernel expects.

Conv3DTranspose runs each depth tap as one batched 2-D transposed convolution and adds it into
every ``stride``-th output slice (the input gradient of the convolution it transposes).

Kernel layouts are Keras's: ``Conv3D`` ``(kd, kh, kw, cin // groups, filters)``,
``Conv3DTranspose`` ``(kd, kh, kw, filters, cin)``. Padding is ``"valid"``, ``"same"`` (Keras's
split: the extra cell after) or explicit ``((front, back), (top, bottom), (left, right))``.
"""
from __future__ import annotations

import numpy as np

from ._checks import as_float32, as_int, check_choice, empty
from ._conv import (_conv_dim, _padding_pairs, _transpose_dim, conv2d, conv2d_backward,
                    conv2d_output_shape, conv2d_transpose, conv2d_transpose_backward,
                    conv2d_transpose_output_shape)

__all__ = ["conv3d", "conv3d_backward", "conv3d_transpose", "conv3d_transpose_backward",
           "conv3d_output_shape", "conv3d_transpose_output_shape"]


def _triple(value, op, name, minimum):
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise ValueError(f"{op}: {name} must be an int or 3 ints, got {value!r}")
        return tuple(as_int(v, op, name, minimum) for v in value)
    v = as_int(value, op, name, minimum)
    return (v, v, v)


def _split_padding(padding, op):
    """-> (depth mode, depth (before, after), the 2-D padding argument)."""
    if isinstance(padding, str):
        mode = check_choice(padding, ("valid", "same"), op, "padding")
        return mode, (0, 0), mode
    if not isinstance(padding, (list, tuple)) or len(padding) != 3:
        raise ValueError(f"{op}: padding must be 'valid', 'same' or ((front, back), (top, bottom), "
                         f"(left, right)), got {padding!r}")
    depth = _padding_pairs((padding[0], 0), op)[0]
    return "explicit", depth, _padding_pairs(tuple(padding[1:]), op)


def _tap_range(t, out_len, in_len, stride, dilation, pad):
    """Output positions ``[lo, hi)`` whose input ``o * stride + t * dilation - pad`` exists, and
    the first such input position."""
    offset = t * dilation - pad
    lo = max(0, -(offset // stride)) if offset < 0 else 0
    hi = min(out_len, (in_len - 1 - offset) // stride + 1) if in_len - 1 - offset >= 0 else 0
    return lo, hi, lo * stride + offset


def _slab(x, start, count, stride):
    """``x[:, start::stride][:count]`` as a contiguous batch of 2-D images ``(N * count, H, W, C)``."""
    part = x[:, start:start + (count - 1) * stride + 1:stride]
    return np.ascontiguousarray(part).reshape((-1,) + x.shape[2:])


def _setup(op, x, w, strides, padding, dilation, groups):
    x = as_float32(x, op, "x", ndim=5)
    w = as_float32(w, op, "w", ndim=5)
    strides = _triple(strides, op, "strides", 1)
    dilation = _triple(dilation, op, "dilation", 1)
    groups = as_int(groups, op, "groups", 1)
    kd, kh, kw, cig, cout = w.shape
    if kd == 0:
        raise ValueError(f"{op}: the kernel depth must be >= 1, got w of shape {w.shape}")
    if x.shape[4] != cig * groups:
        raise ValueError(f"{op}: channel mismatch: x has {x.shape[4]} channels but w expects "
                         f"{cig} per group x {groups} groups (w is (kd, kh, kw, cin // groups, filters))")
    mode, depth_pads, hw_padding = _split_padding(padding, op)
    do, (pd, _) = _conv_dim(x.shape[1], kd, strides[0], dilation[0], mode, depth_pads, "depth", op)
    _, ho, wo, _ = conv2d_output_shape((x.shape[0], x.shape[2], x.shape[3], x.shape[4]),
                                       (kh, kw, cig, cout), strides[1:], hw_padding, dilation[1:])
    hw = dict(strides=strides[1:], padding=hw_padding, dilation=dilation[1:], groups=groups)
    return x, w, (x.shape[0], do, ho, wo, cout), pd, strides, dilation, hw


def conv3d_output_shape(input_shape, kernel_shape, strides=(1, 1, 1), padding="valid",
                        dilation=(1, 1, 1)):
    """``(N, Do, Ho, Wo, filters)`` of :func:`conv3d` (``N``/sizes may be ``None``)."""
    op = "conv3d_output_shape"
    if len(input_shape) != 5 or len(kernel_shape) != 5:
        raise ValueError(f"{op}: input_shape must be (N, D, H, W, C) and kernel_shape "
                         f"(kd, kh, kw, C // groups, filters), got {input_shape!r}, {kernel_shape!r}")
    strides = _triple(strides, op, "strides", 1)
    dilation = _triple(dilation, op, "dilation", 1)
    mode, depth_pads, hw_padding = _split_padding(padding, op)
    n, d, h, w, c = input_shape
    do, _ = _conv_dim(d, kernel_shape[0], strides[0], dilation[0], mode, depth_pads, "depth", op)
    _, ho, wo, cout = conv2d_output_shape((n, h, w, c), tuple(kernel_shape[1:]), strides[1:], hw_padding,
                                          dilation[1:])
    return (n, do, ho, wo, cout)


def _bias_and_activation(out, bias, activation, op):
    if bias is not None:
        b = as_float32(bias, op, "bias", ndim=1)
        if b.shape != (out.shape[-1],):
            raise ValueError(f"{op}: bias must have shape ({out.shape[-1]},), got {b.shape}")
        out += b
    if activation in (None, "linear"):
        return out
    if activation == "relu":
        return np.maximum(out, 0, out=out)
    if activation == "relu6":
        return np.clip(out, 0, 6, out=out)
    raise ValueError(f"{op}: activation must be None, 'linear', 'relu' or 'relu6', got {activation!r}")


def _stacked(x, kd, do, stride, dilation, pad, groups):
    """The ``kd`` input slices each output slice reads, stacked along channels:
    ``(N * Do, H, W, groups * kd * cin_per_group)``, zeros where a tap reads padding."""
    n, d, h, w, c = x.shape
    cig = c // groups
    stacked = np.zeros((n, do, h, w, groups, kd, cig), np.float32)
    grouped = x.reshape(n, d, h, w, groups, cig)
    for t in range(kd):
        lo, hi, first = _tap_range(t, do, d, stride, dilation, pad)
        if lo < hi:
            stacked[:, lo:hi, :, :, :, t] = grouped[:, first:first + (hi - lo - 1) * stride + 1:stride]
    return stacked.reshape(n * do, h, w, groups * kd * cig)


def _unstack_into(dx, dstacked, kd, do, stride, dilation, pad, groups):
    """Adds the gradient of :func:`_stacked`'s result back into ``dx`` (N, D, H, W, C)."""
    n, d, h, w, c = dx.shape
    cig = c // groups
    dstacked = dstacked.reshape(n, do, h, w, groups, kd, cig)
    grouped = dx.reshape(n, d, h, w, groups, cig)
    for t in range(kd):
        lo, hi, first = _tap_range(t, do, d, stride, dilation, pad)
        if lo < hi:
            grouped[:, first:first + (hi - lo - 1) * stride + 1:stride] += dstacked[:, lo:hi, :, :, :, t]


def _stacked_kernel(w):
    """(kd, kh, kw, cig, f) -> (kh, kw, kd * cig, f): the 2-D kernel of the stacked images."""
    kd, kh, kw, cig, f = w.shape
    return np.ascontiguousarray(w.transpose(1, 2, 0, 3, 4)).reshape(kh, kw, kd * cig, f)


def conv3d(x, w, bias=None, strides=(1, 1, 1), padding="valid", dilation=(1, 1, 1), groups=1,
           activation=None):
    """3-D convolution (cross-correlation) of NDHWC ``x`` with the Keras ``Conv3D`` kernel ``w``.

    Returns ``(N, Do, Ho, Wo, filters)`` float32; sizes as Keras's ``Conv3D``.
    """
    op = "conv3d"
    x, w, shape, pd, strides, dilation, hw = _setup(op, x, w, strides, padding, dilation, groups)
    if 0 in shape or 0 in x.shape:
        out = empty(shape, op)
        out.fill(0.0)
        return _bias_and_activation(out, bias, activation, op)
    if bias is not None:
        bias = as_float32(bias, op, "bias", ndim=1)
        if bias.shape != (shape[-1],):
            raise ValueError(f"{op}: bias must have shape ({shape[-1]},), got {bias.shape}")
    if activation not in (None, "linear", "relu", "relu6"):
        raise ValueError(f"{op}: activation must be None, 'linear', 'relu' or 'relu6', got {activation!r}")
    images = _stacked(x, w.shape[0], shape[1], strides[0], dilation[0], pd, hw["groups"])
    z = conv2d(images, _stacked_kernel(w), bias, activation=activation, **hw)
    return z.reshape(shape)


def conv3d_backward(dy, x, w, strides=(1, 1, 1), padding="valid", dilation=(1, 1, 1), groups=1,
                    need_input_grad=True, need_bias_grad=True):
    """Gradients of :func:`conv3d` (without its activation): ``(dx or None, dw, db or None)``."""
    op = "conv3d_backward"
    x, w, shape, pd, strides, dilation, hw = _setup(op, x, w, strides, padding, dilation, groups)
    dy = as_float32(dy, op, "dy", ndim=5)
    if dy.shape != shape:
        raise ValueError(f"{op}: dy must have the conv3d output shape {shape}, got {dy.shape}")
    kd, kh, kw, cig, f = w.shape
    if 0 in shape or 0 in x.shape:
        return (np.zeros(x.shape, np.float32) if need_input_grad else None, np.zeros(w.shape, np.float32),
                np.zeros(f, np.float32) if need_bias_grad else None)
    images = _stacked(x, kd, shape[1], strides[0], dilation[0], pd, hw["groups"])
    dimages, dw2, db = conv2d_backward(dy.reshape((-1,) + shape[2:]), images, _stacked_kernel(w),
                                       need_input_grad=need_input_grad, need_bias_grad=need_bias_grad, **hw)
    dw = np.ascontiguousarray(dw2.reshape(kh, kw, kd, cig, f).transpose(2, 0, 1, 3, 4))
    dx = None
    if need_input_grad:
        dx = np.zeros(x.shape, np.float32)
        _unstack_into(dx, dimages, kd, shape[1], strides[0], dilation[0], pd, hw["groups"])
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# Conv3DTranspose: the forward convolution it transposes reads output position
# ``j * stride + t * dilation - pad`` for input position ``j``; each tap scatters there.


def _transpose_setup(op, x, w, strides, padding, output_padding, dilation):
    x = as_float32(x, op, "x", ndim=5)
    w = as_float32(w, op, "w", ndim=5)
    strides = _triple(strides, op, "strides", 1)
    dilation = _triple(dilation, op, "dilation", 1)
    mode = check_choice(padding, ("valid", "same"), op, "padding")
    kd, kh, kw, filters, cin = w.shape
    if kd == 0:
        raise ValueError(f"{op}: the kernel depth must be >= 1, got w of shape {w.shape}")
    if x.shape[4] != cin:
        raise ValueError(f"{op}: channel mismatch: x has {x.shape[4]} channels but w expects {cin} "
                         f"(w.shape[4]; Conv3DTranspose kernels are (kd, kh, kw, filters, in_channels))")
    out_pad = None if output_padding is None else _triple(output_padding, op, "output_padding", 0)
    if out_pad is not None and out_pad[0] >= strides[0]:
        raise ValueError(f"{op}: output_padding (depth) must be smaller than the stride "
                         f"({strides[0]}), got {out_pad[0]}")
    dt, pd = _transpose_dim(x.shape[1], kd, strides[0], dilation[0], mode, None if out_pad is None else out_pad[0])
    if dt < 0:
        raise ValueError(f"{op}: the output depth would be negative ({dt})")
    hw = dict(strides=strides[1:], padding=mode, dilation=dilation[1:],
              output_padding=None if out_pad is None else out_pad[1:])
    _, ht, wt, _ = conv2d_transpose_output_shape((x.shape[0], x.shape[2], x.shape[3], cin),
                                                 (kh, kw, filters, cin), **hw)
    return x, w, (x.shape[0], dt, ht, wt, filters), pd, strides, dilation, hw


def conv3d_transpose_output_shape(input_shape, kernel_shape, strides=(1, 1, 1), padding="valid",
                                  output_padding=None, dilation=(1, 1, 1)):
    """``(N, Dt, Ht, Wt, filters)`` of :func:`conv3d_transpose` (Keras's ``Conv3DTranspose`` sizes)."""
    op = "conv3d_transpose_output_shape"
    strides = _triple(strides, op, "strides", 1)
    dilation = _triple(dilation, op, "dilation", 1)
    mode = check_choice(padding, ("valid", "same"), op, "padding")
    out_pad = None if output_padding is None else _triple(output_padding, op, "output_padding", 0)
    n, d, h, w, c = input_shape
    dt, _ = _transpose_dim(d, kernel_shape[0], strides[0], dilation[0], mode,
                           None if out_pad is None else out_pad[0])
    _, ht, wt, filters = conv2d_transpose_output_shape(
        (n, h, w, c), tuple(kernel_shape[1:]), strides[1:], mode,
        None if out_pad is None else out_pad[1:], dilation[1:])
    return (n, dt, ht, wt, filters)


def conv3d_transpose(x, w, bias=None, strides=(1, 1, 1), padding="valid", output_padding=None,
                     dilation=(1, 1, 1), activation=None):
    """Transposed 3-D convolution (Keras ``Conv3DTranspose``; kernel ``(kd, kh, kw, filters, cin)``)."""
    op = "conv3d_transpose"
    x, w, shape, pd, strides, dilation, hw = _transpose_setup(op, x, w, strides, padding,
                                                              output_padding, dilation)
    out = empty(shape, op)
    out.fill(0.0)
    n, dt, s = shape[0], shape[1], strides[0]
    for t in range(w.shape[0]):
        # input positions j in [lo, hi) land on output j * s + t * dilation - pd inside [0, dt)
        lo, hi, first = _tap_range(t, x.shape[1], dt, s, dilation[0], pd)
        if lo >= hi or out.size == 0:
            continue
        count = hi - lo
        xs = np.ascontiguousarray(x[:, lo:hi]).reshape((-1,) + x.shape[2:])
        z = conv2d_transpose(xs, w[t], **hw)
        out[:, first:first + (count - 1) * s + 1:s] += z.reshape((n, count) + z.shape[1:])
    return _bias_and_activation(out, bias, activation, op)


def conv3d_transpose_backward(dy, x, w, strides=(1, 1, 1), padding="valid", output_padding=None,
                              dilation=(1, 1, 1), need_input_grad=True, need_bias_grad=True):
    """Gradients of :func:`conv3d_transpose` (without its activation): ``(dx or None, dw, db or None)``."""
    op = "conv3d_transpose_backward"
    x, w, shape, pd, strides, dilation, hw = _transpose_setup(op, x, w, strides, padding,
                                                              output_padding, dilation)
    dy = as_float32(dy, op, "dy", ndim=5)
    if dy.shape != shape:
        raise ValueError(f"{op}: dy must have the conv3d_transpose output shape {shape}, got {dy.shape}")
    dt, s = shape[1], strides[0]
    dx = np.zeros(x.shape, np.float32) if need_input_grad else None
    dw = np.zeros(w.shape, np.float32)
    for t in range(w.shape[0]):
        lo, hi, first = _tap_range(t, x.shape[1], dt, s, dilation[0], pd)
        if lo >= hi or dy.size == 0:
            continue
        count = hi - lo
        xs = np.ascontiguousarray(x[:, lo:hi]).reshape((-1,) + x.shape[2:])
        dxs, dw[t], _ = conv2d_transpose_backward(_slab(dy, first, count, s), xs, w[t],
                                                  need_input_grad=need_input_grad, need_bias_grad=False,
                                                  **hw)
        if need_input_grad:
            dx[:, lo:hi] += dxs.reshape((x.shape[0], count) + x.shape[2:])
    db = dy.sum(axis=(0, 1, 2, 3), dtype=np.float64).astype(np.float32) if need_bias_grad else None
    return dx, dw, db
