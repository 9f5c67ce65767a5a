"""Bilinear resizing of NHWC images (half-pixel centres, as Keras 3 and PyTorch's
``align_corners=False``), forward and backward, in C (csrc/include/cnnfast/resize.h)."""
from __future__ import annotations

import numpy as np

from .. import _kernels
from ._checks import as_float32, as_pair, check_size, empty

__all__ = ["resize_bilinear", "resize_bilinear_backward"]


def _size(op, x_shape, size):
    ho, wo = as_pair(size, op, "size", minimum=0)
    n, h, w, c = x_shape
    if (h == 0 or w == 0) and ho * wo * n * c:
        raise ValueError(f"{op}: cannot resize an empty image ({h}x{w}) to {ho}x{wo}")
    check_size((n, ho, wo, c), op)
    return ho, wo


def resize_bilinear(x, size):
    """``(N, H, W, C)`` images resized to ``size = (Ho, Wo)`` by bilinear interpolation: output
    pixel ``o`` reads the input at ``(o + 0.5) * H / Ho - 0.5`` (clamped to the image), the
    geometry of Keras's ``UpSampling2D(interpolation="bilinear")``, ``keras.ops.image.resize``
    (without antialiasing) and ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False)``."""
    op = "resize_bilinear"
    x = as_float32(x, op, "x", ndim=4)
    ho, wo = _size(op, x.shape, size)
    y = empty((x.shape[0], ho, wo, x.shape[3]), op)
    _kernels.resize_bilinear_fwd(x.reshape(-1), tuple(x.shape), y.reshape(-1), ho, wo)
    return y


def resize_bilinear_backward(dy, input_shape):
    """Gradient of :func:`resize_bilinear` with respect to its input of ``input_shape``
    ``(N, H, W, C)``, for the output gradient ``dy`` ``(N, Ho, Wo, C)``."""
    op = "resize_bilinear_backward"
    dy = as_float32(dy, op, "dy", ndim=4)
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 4:
        raise ValueError(f"{op}: input_shape must be (N, H, W, C), got {input_shape!r}")
    shape = tuple(int(s) for s in input_shape)
    if any(s < 0 for s in shape) or shape[0] != dy.shape[0] or shape[3] != dy.shape[3]:
        raise ValueError(f"{op}: input_shape {shape} does not match dy of shape {dy.shape} "
                         "(batch and channels must agree)")
    check_size(shape, op)
    dx = empty(shape, op)
    if (shape[1] == 0 or shape[2] == 0) and dy.size:
        raise ValueError(f"{op}: an empty image ({shape[1]}x{shape[2]}) has no gradient for dy {dy.shape}")
    _kernels.resize_bilinear_bwd(dy.reshape(-1), shape, dx.reshape(-1), dy.shape[1], dy.shape[2])
    return dx
