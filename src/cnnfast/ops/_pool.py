"""Pooling ops: max / average / global pooling of NHWC float32 images, forward and backward.

Geometry follows Keras ``MaxPooling2D`` / ``AveragePooling2D`` (channels_last):

* ``strides=None`` means ``strides = pool_size``;
* ``padding="valid"``: ``out = floor((n - pool) / stride) + 1`` (an error if that is < 1);
* ``padding="same"``: ``out = ceil(n / stride)``, padded TensorFlow-style (the odd cell goes at
  the bottom / right). Padded cells never count: max pooling ignores them and average pooling
  divides by the number of real cells in each window, as Keras does (PyTorch's
  ``count_include_pad=False``).
* ``padding=((top, bottom), (left, right))`` (a cnnfast extension, used by the ONNX importer for
  PyTorch's and ONNX's explicit pads): ``out = floor((n + before + after - pool) / stride) + 1``;
  padded cells never count, as with ``"same"`` (PyTorch's ``max_pool2d(padding=...)`` and
  ``avg_pool2d(..., count_include_pad=False)``). Each pad must be smaller than the pool, so that
  every window holds a real cell.

Max pooling can return the position of each maximum inside its window, ``kh * pool_w + kw``, for
the backward pass. It is ``uint8`` when the window has at most 256 cells (every usual pool size)
and ``int32`` for larger windows (up to 2**31 cells; larger windows are refused when an argmax is
asked for). Ties keep the first cell in row-major order; a NaN in a window
wins, so NaNs propagate as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from .. import _kernels
from ._checks import as_float32, as_int, as_pair, check_choice, check_int32_range, check_size

__all__ = [
    "pool2d_output_shape", "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward", "global_max_pool2d", "global_max_pool2d_backward",
]

_U8_MAX_CELLS = 256  # window cells addressable by a uint8 argmax (indices 0..255)
_I32_MAX_CELLS = 2**31  # window cells addressable by an int32 argmax (indices 0..2**31 - 1)


def _check_argmax_cells(op: str, ph: int, pw: int) -> None:
    """Refuse windows whose cell numbers ``kh * pool_w + kw`` an int32 argmax cannot hold."""
    if ph * pw > _I32_MAX_CELLS:
        raise ValueError(f"{op}: pool_size ({ph}, {pw}) has {ph * pw} window cells, more than the 2**31 an "
                         f"int32 argmax can index; use a smaller pool_size (a pool larger than the padded "
                         f"input gives the same maximum)")


def check_pool_padding(padding, op: str):
    """``"valid"``, ``"same"`` or explicit ``((top, bottom), (left, right))`` (ints >= 0, as a
    tuple of tuples: hashable, so geometry caches take it)."""
    if isinstance(padding, str) or not isinstance(padding, (list, tuple)):
        return check_choice(padding, ("valid", "same"), op, "padding")
    if len(padding) != 2 or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in padding):
        raise ValueError(f"{op}: padding must be one of ['valid', 'same'] or ((top, bottom), (left, right)), "
                         f"got {padding!r}")
    return tuple((as_int(p[0], op, "padding", minimum=0), as_int(p[1], op, "padding", minimum=0))
                 for p in padding)


def _pool_axis(op: str, size, pool: int, stride: int, padding, axis: str):
    """(output size, padding before) along one spatial axis; size may be None (unknown).
    ``padding`` is "valid", "same" or this axis's explicit (before, after) pair."""
    if not isinstance(padding, str):
        before, after = padding
        if before >= pool or after >= pool:
            raise ValueError(f"{op}: explicit padding {padding} along the {axis} must be smaller than "
                             f"pool_size {pool} (a window would hold padding only)")
        if size is None:
            return None, before
        out = (size + before + after - pool) // stride + 1
        if out <= 0:
            raise ValueError(f"{op}: pool_size {pool} does not fit the input {axis} {size} with padding "
                             f"{padding} (computed output size would be {out})")
        return out, before
    if size is None:
        return None, 0
    if padding == "valid":
        out = (size - pool) // stride + 1
        if out <= 0:
            raise ValueError(f"{op}: pool_size {pool} does not fit the input {axis} {size} with padding='valid' "
                             f"(computed output size would be {out}); use padding='same' or a smaller pool_size")
        return out, 0
    out = -(-size // stride)
    pad_total = max((out - 1) * stride + pool - size, 0)
    return out, pad_total // 2


def _pool_params(op: str, pool_size, strides, padding):
    ph, pw = as_pair(pool_size, op, "pool_size", minimum=1)
    sh, sw = (ph, pw) if strides is None else as_pair(strides, op, "strides", minimum=1)
    return ph, pw, sh, sw, check_pool_padding(padding, op)


def _input_shape(op: str, input_shape, allow_none: bool = False) -> tuple:
    """A 4-tuple (N, H, W, C) of non-negative ints (None allowed where `allow_none`)."""
    try:
        dims = tuple(input_shape)
    except TypeError:
        raise TypeError(f"{op}: input_shape must be a tuple (N, H, W, C), got {input_shape!r}") from None
    if len(dims) != 4:
        raise ValueError(f"{op}: input_shape must have 4 entries (N, H, W, C), got {dims!r}")
    return tuple(None if (d is None and allow_none) else as_int(d, op, "input_shape", minimum=0) for d in dims)


def _geometry(op: str, input_shape: tuple, pool_size, strides, padding) -> tuple:
    """The kernel geometry tuple (n, h, w, c, ho, wo, ph, pw, sh, sw, pad_top, pad_left)."""
    n, h, w, c = input_shape
    ph, pw, sh, sw, padding = _pool_params(op, pool_size, strides, padding)
    pad_h, pad_w = (padding, padding) if isinstance(padding, str) else padding
    ho, pad_top = _pool_axis(op, h, ph, sh, pad_h, "height")
    wo, pad_left = _pool_axis(op, w, pw, sw, pad_w, "width")
    return (n, h, w, c, ho, wo, ph, pw, sh, sw, pad_top, pad_left)


def _shrink_covering_pool(size, pool: int, stride: int, padding: str) -> int:
    """An equivalent, small pool for averaging when every window covers the whole axis.

    With padding='same' a pool far larger than the input makes every window span all real cells
    (averaging ignores the padding), so any pool that still does gives the same result; the
    kernels then never size tables by an absurd pool. Python ints throughout.
    """
    if padding != "same" or not size:
        return pool
    out, before = _pool_axis("", size, pool, stride, padding, "")
    if (out - 1) * stride - before > 0 or pool - before < size:
        return pool  # some window misses a cell: the pool size matters
    return min(pool, 2 * ((out - 1) * stride + size) + 1)


def _avg_geometry(op: str, input_shape: tuple, pool_size, strides, padding) -> tuple:
    """:func:`_geometry` for averaging, with covering pools shrunk to an equivalent size."""
    n, h, w, c = input_shape
    ph, pw, sh, sw, padding = _pool_params(op, pool_size, strides, padding)
    ph = _shrink_covering_pool(h, ph, sh, padding)
    pw = _shrink_covering_pool(w, pw, sw, padding)
    return _geometry(op, input_shape, (ph, pw), (sh, sw), padding)


def pool2d_output_shape(input_shape, pool_size=(2, 2), strides=None, padding="valid") -> tuple:
    """Output shape ``(N, Ho, Wo, C)`` of 2-D pooling of an NHWC input (Keras rules).

    Args:
        input_shape: ``(N, H, W, C)``; any entry may be ``None`` (unknown), and stays ``None``.
        pool_size: int or pair of ints, the window size.
        strides: int, pair of ints or ``None`` (= ``pool_size``).
        padding: ``"valid"``, ``"same"`` or ``((top, bottom), (left, right))`` (see the module doc).
    """
    op = "pool2d_output_shape"
    n, h, w, c = _input_shape(op, input_shape, allow_none=True)
    g = _geometry(op, (n, h, w, c), pool_size, strides, padding)
    return (n, g[4], g[5], c)


def _index_bytes(argmax: np.ndarray) -> int:
    return 1 if argmax.dtype == np.uint8 else 4


def _raw(argmax: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous index array, as the flat uint8 view the kernels take."""
    return argmax.reshape(-1).view(np.uint8)


def max_pool2d(x, pool_size=(2, 2), strides=None, padding="valid", return_argmax=False):
    """2-D max pooling of an NHWC batch (Keras ``MaxPooling2D``).

    Args:
        x: ``(N, H, W, C)`` array (converted to float32).
        pool_size, strides, padding: as in Keras; see :func:`pool2d_output_shape`.
        return_argmax: also return the winning cell of each window, for
            :func:`max_pool2d_backward`.

    Returns:
        ``y`` of shape ``(N, Ho, Wo, C)``, or ``(y, argmax)`` where ``argmax`` has the same shape,
        holds ``kh * pool_w + kw`` and is uint8 for windows of at most 256 cells, else int32.
    """
    op = "max_pool2d"
    x = as_float32(x, op, "x", ndim=4)
    g = _geometry(op, x.shape, pool_size, strides, padding)
    out_shape = check_size((g[0], g[4], g[5], g[3]), op)
    y = np.empty(out_shape, dtype=np.float32)
    argmax = None
    if return_argmax:
        _check_argmax_cells(op, g[6], g[7])
        argmax = np.empty(out_shape, dtype=np.uint8 if g[6] * g[7] <= _U8_MAX_CELLS else np.int32)
    if y.size:
        _kernels.maxpool2d_fwd(g, x.reshape(-1), y.reshape(-1), None if argmax is None else _raw(argmax),
                               4 if argmax is None else _index_bytes(argmax))
    return (y, argmax) if return_argmax else y


def _check_grad(op: str, dy, shape: tuple, name: str = "dy") -> np.ndarray:
    dy = as_float32(dy, op, name, ndim=len(shape))
    if dy.shape != shape:
        raise ValueError(f"{op}: {name} must have shape {shape} (the forward output), got {dy.shape}")
    return dy


def _check_argmax(op: str, argmax, shape: tuple, cells: int) -> np.ndarray:
    if not isinstance(argmax, np.ndarray) or argmax.dtype.kind not in "iu":
        raise TypeError(f"{op}: argmax must be the integer array returned by the forward op, "
                        f"got {type(argmax).__name__}" + (f" of dtype {argmax.dtype}" if isinstance(argmax, np.ndarray) else ""))
    if argmax.shape != shape:
        raise ValueError(f"{op}: argmax must have shape {shape}, got {argmax.shape}")
    if argmax.dtype == np.uint8:
        if cells > _U8_MAX_CELLS:
            raise ValueError(f"{op}: a uint8 argmax cannot index a window of {cells} cells; pass int32 indices")
        return np.ascontiguousarray(argmax)
    check_int32_range(argmax, op, "argmax")
    return np.ascontiguousarray(argmax, dtype=np.int32)


def max_pool2d_backward(dy, argmax, input_shape, pool_size=(2, 2), strides=None, padding="valid"):
    """Gradient of :func:`max_pool2d`: each ``dy`` goes to the cell recorded in ``argmax``.

    Overlapping windows (strides smaller than the pool) add up their contributions in a fixed
    order, so the result is deterministic. Index values outside the window are ignored.

    Args:
        dy: ``(N, Ho, Wo, C)`` gradient of the pooled output.
        argmax: the index array returned by ``max_pool2d(..., return_argmax=True)``.
        input_shape: ``(N, H, W, C)`` of the forward input.
        pool_size, strides, padding: the forward call's arguments.

    Returns:
        ``dx`` of shape ``input_shape``.
    """
    op = "max_pool2d_backward"
    shape = _input_shape(op, input_shape)
    g = _geometry(op, shape, pool_size, strides, padding)
    out_shape = (g[0], g[4], g[5], g[3])
    _check_argmax_cells(op, g[6], g[7])
    dy = _check_grad(op, dy, out_shape)
    argmax = _check_argmax(op, argmax, out_shape, g[6] * g[7])
    dx = np.empty(check_size(shape, op), dtype=np.float32)
    if dx.size:
        _kernels.maxpool2d_bwd(g, dy.reshape(-1), _raw(argmax), _index_bytes(argmax), dx.reshape(-1))
    return dx


def avg_pool2d(x, pool_size=(2, 2), strides=None, padding="valid"):
    """2-D average pooling of an NHWC batch (Keras ``AveragePooling2D``).

    With ``padding="same"`` each window is averaged over its real cells only, as in Keras.

    Returns:
        ``y`` of shape ``(N, Ho, Wo, C)``.
    """
    op = "avg_pool2d"
    x = as_float32(x, op, "x", ndim=4)
    g = _avg_geometry(op, x.shape, pool_size, strides, padding)
    y = np.empty(check_size((g[0], g[4], g[5], g[3]), op), dtype=np.float32)
    if y.size:
        _kernels.avgpool2d_fwd(g, x.reshape(-1), y.reshape(-1))
    return y


def avg_pool2d_backward(dy, input_shape, pool_size=(2, 2), strides=None, padding="valid"):
    """Gradient of :func:`avg_pool2d`: each ``dy`` spread evenly over the real cells of its window.

    Returns:
        ``dx`` of shape ``input_shape``.
    """
    op = "avg_pool2d_backward"
    shape = _input_shape(op, input_shape)
    g = _avg_geometry(op, shape, pool_size, strides, padding)
    dy = _check_grad(op, dy, (g[0], g[4], g[5], g[3]))
    dx = np.empty(check_size(shape, op), dtype=np.float32)
    if dx.size:
        _kernels.avgpool2d_bwd(g, dy.reshape(-1), dx.reshape(-1))
    return dx


def _global_input(op: str, x) -> tuple:
    x = as_float32(x, op, "x", ndim=4)
    n, h, w, c = x.shape
    if h * w == 0 and n * c > 0:
        raise ValueError(f"{op}: cannot pool over an empty image (H, W) = ({h}, {w}) of input shape {x.shape}")
    return x, n, h * w, c


def _global_grad(op: str, dy, name: str, n: int, c: int) -> np.ndarray:
    """dy (or argmax) of shape (N, C) or (N, 1, 1, C), as a C-contiguous array."""
    shapes = ((n, c), (n, 1, 1, c))
    if name == "argmax":
        if not isinstance(dy, np.ndarray) or dy.dtype.kind not in "iu":
            raise TypeError(f"{op}: argmax must be the integer array returned by global_max_pool2d")
        arr = dy
    else:
        arr = as_float32(dy, op, name, ndim=(2, 4))
    if arr.shape not in shapes:
        raise ValueError(f"{op}: {name} must have shape {shapes[0]} or {shapes[1]}, got {arr.shape}")
    if name != "argmax":
        return arr
    check_int32_range(arr, op, name)
    return np.ascontiguousarray(arr, dtype=np.int32)


def global_avg_pool2d(x, keepdims=False):
    """Mean over the spatial axes of an NHWC batch (Keras ``GlobalAveragePooling2D``).

    Returns:
        ``(N, C)``, or ``(N, 1, 1, C)`` with ``keepdims=True``.
    """
    op = "global_avg_pool2d"
    x, n, hw, c = _global_input(op, x)
    y = np.empty((n, 1, 1, c) if keepdims else (n, c), dtype=np.float32)
    if y.size:
        _kernels.global_avgpool2d_fwd(x.reshape(-1), y.reshape(-1), n, hw, c)
    return y


def global_avg_pool2d_backward(dy, input_shape):
    """Gradient of :func:`global_avg_pool2d`: ``dx[i, h, w, c] = dy[i, c] / (H * W)``.

    Args:
        dy: ``(N, C)`` or ``(N, 1, 1, C)``.
        input_shape: ``(N, H, W, C)`` of the forward input.
    """
    op = "global_avg_pool2d_backward"
    n, h, w, c = _input_shape(op, input_shape)
    dy = _global_grad(op, dy, "dy", n, c)
    dx = np.empty(check_size((n, h, w, c), op), dtype=np.float32)
    if dx.size:
        _kernels.global_avgpool2d_bwd(dy.reshape(-1), dx.reshape(-1), n, h * w, c)
    return dx


def global_max_pool2d(x, keepdims=False, return_argmax=False):
    """Max over the spatial axes of an NHWC batch (Keras ``GlobalMaxPooling2D``).

    Returns:
        ``y`` of shape ``(N, C)`` (``(N, 1, 1, C)`` with ``keepdims=True``), or ``(y, argmax)``
        where ``argmax`` (int32, same shape) is the flat pixel index ``h * W + w`` of each maximum.
    """
    op = "global_max_pool2d"
    x, n, hw, c = _global_input(op, x)
    shape = (n, 1, 1, c) if keepdims else (n, c)
    y = np.empty(shape, dtype=np.float32)
    argmax = np.empty(shape, dtype=np.int32) if return_argmax else None
    if y.size:
        _kernels.global_maxpool2d_fwd(x.reshape(-1), y.reshape(-1),
                                      None if argmax is None else argmax.reshape(-1), n, hw, c)
    return (y, argmax) if return_argmax else y


def global_max_pool2d_backward(dy, argmax, input_shape):
    """Gradient of :func:`global_max_pool2d`: ``dy[i, c]`` goes to pixel ``argmax[i, c]``, zero elsewhere."""
    op = "global_max_pool2d_backward"
    n, h, w, c = _input_shape(op, input_shape)
    dy = _global_grad(op, dy, "dy", n, c)
    argmax = _global_grad(op, argmax, "argmax", n, c)
    if argmax.size and (argmax.min() < 0 or argmax.max() >= h * w):
        raise ValueError(f"{op}: argmax values must lie in [0, {h * w}) (H*W of input_shape), "
                         f"got range [{argmax.min()}, {argmax.max()}]")
    dx = np.empty(check_size((n, h, w, c), op), dtype=np.float32)
    if dx.size:
        _kernels.global_maxpool2d_bwd(dy.reshape(-1), argmax.reshape(-1), dx.reshape(-1), n, h * w, c)
    return dx
