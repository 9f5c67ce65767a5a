"""Convolution ops: ``conv2d`` and its backward pass, the transposed convolution, output-shape
helpers for layers, and the textbook single-image ``correlate2d`` / ``convolve2d``.

Layout is Keras's: images NHWC ``(batch, height, width, channels)``, float32; ``conv2d`` weights
HWIO ``(kh, kw, in_channels // groups, filters)``; ``conv2d_transpose`` weights
``(kh, kw, filters, in_channels)`` like Keras ``Conv2DTranspose``. Convolution is
cross-correlation (no kernel flip), as in Keras and PyTorch.

Padding (``conv2d``, ``conv2d_backward``, ``conv2d_output_shape``):
  * ``'valid'``: none; ``Ho = floor((H - dk) / s) + 1`` with the dilated kernel ``dk = d*(k-1)+1``.
  * ``'same'``: TensorFlow/Keras rule, also for strides > 1: ``Ho = ceil(H / s)``, total padding
    ``max((Ho-1)*s + dk - H, 0)``, the odd extra pixel at the bottom/right.
  * ``'full'``: ``dk - 1`` on every side.
  * an int ``p`` (``p`` on every side), a pair ``(ph, pw)``, or explicit
    ``((top, bottom), (left, right))``.

The C kernels get only the top/left padding and the output size (see csrc/include/cnnfast/conv.h).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .. import _kernels
from ._checks import as_float32, as_int, as_pair, check_choice, check_out, check_size, empty

__all__ = ["conv2d", "conv2d_max_pool2d", "conv2d_backward", "conv2d_output_shape", "conv2d_transpose",
           "conv2d_transpose_backward", "conv2d_transpose_output_shape", "correlate2d",
           "convolve2d"]

# C algorithm codes (csrc/include/cnnfast/conv.h, CF_CONV_ALGO_*).
_ALGOS = {"auto": 0, "igemm": 1, "depthwise": 2, "winograd": 3, "gemm": 4, "im2col": 5}
_forced_algo = 0
_ACTIVATIONS = {None: 0, "linear": 0, "relu": 1, "relu6": 2}   # CF_CONV_ACT_*


@contextlib.contextmanager
def force_algorithm(name: str):
    """Run the conv ops inside the block with the C algorithm ``name``: 'auto' (the default
    choice per shape), 'igemm' (implicit GEMM, any shape), 'winograd' (F(2x2, 3x3): 3x3 kernels,
    stride 1, dilation 1, groups 1) or 'depthwise' (groups == input channels). Used by the tests
    and benchmarks to exercise every path; an algorithm that cannot run a shape raises."""
    global _forced_algo
    check_choice(name, tuple(_ALGOS), "force_algorithm", "name")
    previous, _forced_algo = _forced_algo, _ALGOS[name]
    try:
        yield
    finally:
        _forced_algo = previous


# --------------------------------------------------------------------------------------------
# Argument helpers


def _activation(activation, op: str) -> int:
    if activation is None:
        return 0
    return _ACTIVATIONS[check_choice(activation, ("linear", "relu", "relu6"), op, "activation")]


def _dim(value, op: str, name: str, allow_none: bool):
    if value is None and allow_none:
        return None
    return as_int(value, op, name, minimum=0)


def _padding_pairs(padding, op: str):
    """Non-string padding -> ((top, bottom), (left, right)) of non-negative ints."""
    if isinstance(padding, (bool, np.bool_)):
        raise TypeError(f"{op}: padding must be 'valid', 'same', 'full', an int or "
                        f"((top, bottom), (left, right)), got {padding!r}")
    if isinstance(padding, (list, tuple)):
        if len(padding) != 2:
            raise ValueError(f"{op}: padding must be an int, a pair (pad_h, pad_w) or "
                             f"((top, bottom), (left, right)), got {padding!r}")
        pairs = []
        for axis, item in zip(("height", "width"), padding):
            if isinstance(item, (list, tuple)):
                pairs.append(as_pair(item, op, f"padding ({axis})", minimum=0))
            else:
                v = as_int(item, op, f"padding ({axis})", minimum=0)
                pairs.append((v, v))
        return tuple(pairs)
    try:
        v = as_int(padding, op, "padding", minimum=0)
    except TypeError:
        raise TypeError(f"{op}: padding must be 'valid', 'same', 'full', an int or "
                        f"((top, bottom), (left, right)), got {padding!r}") from None
    return ((v, v), (v, v))


def _conv_dim(n, k, s, d, mode, pads, axis: str, op: str):
    """Output size and (before, after) padding of one spatial axis, or raise."""
    dk = d * (k - 1) + 1
    if mode == "same":
        if n is None:
            return None, None
        out = -(-n // s)
        total = max((out - 1) * s + dk - n, 0)
        return out, (total // 2, total - total // 2)
    if mode == "valid":
        pb, pa = 0, 0
    elif mode == "full":
        pb, pa = dk - 1, dk - 1
    else:
        pb, pa = pads
    if n is None:
        return None, (pb, pa)
    if n + pb + pa < dk:
        raise ValueError(f"{op}: the kernel {axis} ({k}, dilated to {dk}) is larger than the padded "
                         f"input {axis} ({n} + padding {pb + pa} = {n + pb + pa}); use smaller "
                         f"kernel/dilation, more padding, or padding='same'")
    return (n + pb + pa - dk) // s + 1, (pb, pa)


_MAX_DILATED_KERNEL = 2**24


def _normalise(h, w, kh, kw, strides, padding, dilation, op: str):
    """Strides reduced to an equivalent geometry, after refusing absurd dilations.

    A stride larger than the (padded) extent of an axis gives one output along it, exactly like a
    stride equal to that extent, so it is clamped there: the kernels then never see a stride that
    overflows their size arithmetic or splits the problem into billions of empty phases. A dilated
    kernel beyond ``_MAX_DILATED_KERNEL`` cells cannot be run (its windows are mostly padding and
    the tile buffers span it), so it is refused. All arithmetic is in Python ints.
    """
    if isinstance(padding, str):
        mode = check_choice(padding, ("valid", "same", "full"), op, "padding")
        pads = ((0, 0), (0, 0))
    else:
        mode, pads = "explicit", _padding_pairs(padding, op)
    out = []
    for n, k, s, d, p, axis in ((h, kh, strides[0], dilation[0], pads[0], "height"),
                                (w, kw, strides[1], dilation[1], pads[1], "width")):
        dk = d * (k - 1) + 1
        if dk > _MAX_DILATED_KERNEL:
            raise ValueError(f"{op}: the kernel {axis} ({k}) with dilation {d} spans {dk} cells, more "
                             f"than the supported {_MAX_DILATED_KERNEL}; use a smaller dilation")
        if n is None:
            out.append(s)
            continue
        if mode == "same":
            limit = max(n, 1)
        else:
            _, (pb, pa) = _conv_dim(None, k, s, d, mode, p, axis, op)
            limit = max(n + pb + pa, 1)
        out.append(min(s, limit))
    return tuple(out)


def _conv_geometry(h, w, kh, kw, strides, padding, dilation, op: str):
    """(ho, wo, pad_top, pad_left) for the convolution, validating everything."""
    if isinstance(padding, str):
        mode = check_choice(padding, ("valid", "same", "full"), op, "padding")
        pads = ((0, 0), (0, 0))
    else:
        mode, pads = "explicit", _padding_pairs(padding, op)
    ho, ph = _conv_dim(h, kh, strides[0], dilation[0], mode, pads[0], "height", op)
    wo, pw = _conv_dim(w, kw, strides[1], dilation[1], mode, pads[1], "width", op)
    return ho, wo, (ph[0] if ph else 0), (pw[0] if pw else 0)


def _check_kernel(w: np.ndarray, op: str, name: str = "w"):
    if w.shape[0] < 1 or w.shape[1] < 1:
        raise ValueError(f"{op}: {name} must have kernel height and width >= 1, got shape {w.shape}")


def _check_groups(c: int, w: np.ndarray, groups, op: str, x_name: str = "x"):
    groups = as_int(groups, op, "groups", minimum=1)
    cout = w.shape[3]
    if c % groups != 0:
        raise ValueError(f"{op}: groups={groups} must divide the input channels; {x_name} has {c}")
    if cout % groups != 0:
        raise ValueError(f"{op}: groups={groups} must divide the output channels; w has {cout} "
                         f"(w.shape[3])")
    if w.shape[2] != c // groups:
        raise ValueError(f"{op}: channel mismatch: {x_name} has {c} channels and groups={groups}, "
                         f"so w.shape[2] must be {c // groups}; got w of shape {w.shape}")
    return groups


def _check_bias(bias, n: int, op: str):
    if bias is None:
        return None
    b = as_float32(bias, op, "bias", ndim=1)
    if b.shape[0] != n:
        raise ValueError(f"{op}: bias must have shape ({n},), got {b.shape}")
    return b


def _fill_no_input(out: np.ndarray, bias, act: int) -> np.ndarray:
    """The result when no input channel contributes: bias (then ReLU / ReLU6), or zeros."""
    out[...] = 0.0 if bias is None else bias
    if act:
        np.maximum(out, 0.0, out=out)
    if act == 2:
        np.minimum(out, 6.0, out=out)
    return out


# --------------------------------------------------------------------------------------------
# conv2d

# Validated geometry per distinct call signature: a model calls each op with the same shapes and
# arguments every step, and re-deriving strides, padding and output size in Python costs more
# than a batch-1 convolution. Only signatures made of plain ints, strings and tuples of them are
# memoised (so True is never taken for 1, nor a list for a tuple); the arrays themselves are
# checked on every call.
_GEOMETRY_CACHE_LIMIT = 4096
_geometry_cache: dict = {}


def _plain(args) -> bool:
    """Every argument an int, a str, None, or a tuple of ints / of pairs of ints."""
    for v in args:
        t = type(v)
        if t is int or t is str or v is None:
            continue
        if t is not tuple:
            return False
        for e in v:
            if type(e) is not int and not (type(e) is tuple and all(type(q) is int for q in e)):
                return False
    return True


def _cached_geometry(key, args, compute):
    """``compute()`` memoised under ``key + args`` when the user arguments ``args`` are plain
    (the rest of the key is shapes, always tuples of ints)."""
    plain = _plain(args)
    hit = _geometry_cache.get(key + args) if plain else None
    if hit is None:
        hit = compute()
        if plain:
            if len(_geometry_cache) >= _GEOMETRY_CACHE_LIMIT:
                _geometry_cache.clear()
            _geometry_cache[key + args] = hit
    return hit


def _conv_forward_args(op, x, w, bias, strides, padding, dilation, groups, activation):
    """The validated arguments of a forward convolution: x, w, bias, activation code, groups,
    strides, dilation and (ho, wo, pad_top, pad_left)."""
    x = as_float32(x, op, "x", ndim=4)
    w = as_float32(w, op, "w", ndim=4)
    groups, strides, dilation, geometry = _conv_signature(op, x, w, groups, strides, padding,
                                                          dilation)
    return (x, w, _check_bias(bias, w.shape[3], op), _activation(activation, op), groups, strides,
            dilation, geometry)


def _conv_signature(op, x, w, groups, strides, padding, dilation):
    """(groups, strides, (ho, wo, pt, pl)) for conv2d / conv2d_backward, validated."""
    def compute():
        _check_kernel(w, op)
        n, h, wd, c = x.shape
        kh, kw = w.shape[:2]
        g = _check_groups(c, w, groups, op)
        s = as_pair(strides, op, "strides", minimum=1)
        d = as_pair(dilation, op, "dilation", minimum=1)
        s = _normalise(h, wd, kh, kw, s, padding, d, op)
        return g, s, d, _conv_geometry(h, wd, kh, kw, s, padding, d, op)
    return _cached_geometry((op, x.shape, w.shape), (groups, strides, padding, dilation), compute)


def conv2d_output_shape(input_shape, kernel_shape, strides=(1, 1), padding="valid",
                        dilation=(1, 1)):
    """Output shape ``(N, Ho, Wo, Cout)`` of :func:`conv2d` without running it.

    ``input_shape`` is ``(N, H, W, C)`` (``N``, ``H`` or ``W`` may be ``None``, as in a Keras
    ``summary()``), ``kernel_shape`` is the HWIO ``(kh, kw, C // groups, Cout)``. Raises a
    ``ValueError`` naming the axis when the (dilated) kernel is larger than the padded input.

    >>> from cnnfast.ops import conv2d_output_shape
    >>> conv2d_output_shape((None, 28, 28, 1), (3, 3, 1, 32))
    (None, 26, 26, 32)
    """
    op = "conv2d_output_shape"
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 4:
        raise ValueError(f"{op}: input_shape must be (N, H, W, C), got {input_shape!r}")
    if not isinstance(kernel_shape, (list, tuple)) or len(kernel_shape) != 4:
        raise ValueError(f"{op}: kernel_shape must be (kh, kw, C // groups, Cout), got {kernel_shape!r}")
    n = _dim(input_shape[0], op, "input_shape[0]", True)
    h = _dim(input_shape[1], op, "input_shape[1]", True)
    w = _dim(input_shape[2], op, "input_shape[2]", True)
    c = _dim(input_shape[3], op, "input_shape[3]", True)
    kh = as_int(kernel_shape[0], op, "kernel_shape[0]", minimum=1)
    kw = as_int(kernel_shape[1], op, "kernel_shape[1]", minimum=1)
    cig = as_int(kernel_shape[2], op, "kernel_shape[2]", minimum=0)
    cout = as_int(kernel_shape[3], op, "kernel_shape[3]", minimum=0)
    if c is not None and (cig == 0 and c != 0 or cig != 0 and c % cig != 0):
        raise ValueError(f"{op}: channel mismatch: the input has {c} channels, which is not a "
                         f"multiple of the kernel's {cig} input channels per group")
    strides = as_pair(strides, op, "strides", minimum=1)
    dilation = as_pair(dilation, op, "dilation", minimum=1)
    _normalise(h, w, kh, kw, strides, padding, dilation, op)
    ho, wo, _, _ = _conv_geometry(h, w, kh, kw, strides, padding, dilation, op)
    return (n, ho, wo, cout)


def _params(strides, pads, dilation, groups):
    return (strides[0], strides[1], pads[0], pads[1], dilation[0], dilation[1], groups, _forced_algo)


def conv2d(x, w, bias=None, strides=(1, 1), padding="valid", dilation=(1, 1), groups=1,
           activation=None, out=None):
    """2-D convolution of a batch of NHWC images, with bias and activation fused.

    Args:
        x: input ``(N, H, W, C)``.
        w: HWIO weights ``(kh, kw, C // groups, Cout)`` (the Keras ``Conv2D`` kernel).
        bias: ``(Cout,)`` or ``None``.
        strides: int or ``(sh, sw)``, >= 1.
        padding: ``'valid'``, ``'same'`` (TensorFlow/Keras rule), ``'full'``, an int, a pair
            ``(ph, pw)`` or ``((top, bottom), (left, right))``.
        dilation: int or ``(dh, dw)``, >= 1 (Keras ``dilation_rate``).
        groups: channel groups; ``groups == C`` is a depthwise convolution (``Cout`` a multiple
            of ``C``).
        activation: ``None``/``'linear'``, ``'relu'`` or ``'relu6'``, applied in the kernel's
            epilogue.
        out: optional float32 C-contiguous ``(N, Ho, Wo, Cout)`` array to write into.

    Returns:
        ``(N, Ho, Wo, Cout)`` float32.

    >>> import numpy as np, cnnfast
    >>> x = np.ones((1, 5, 5, 1), np.float32); w = np.ones((3, 3, 1, 2), np.float32)
    >>> cnnfast.ops.conv2d(x, w, padding="same")[0, :, :, 0]
    array([[4., 6., 6., 6., 4.],
           [6., 9., 9., 9., 6.],
           [6., 9., 9., 9., 6.],
           [6., 9., 9., 9., 6.],
           [4., 6., 6., 6., 4.]], dtype=float32)
    """
    op = "conv2d"
    x, w, bias, act, groups, strides, dilation, (ho, wo, pt, pl) = _conv_forward_args(
        op, x, w, bias, strides, padding, dilation, groups, activation)
    n, c, cout = x.shape[0], x.shape[3], w.shape[3]
    out = check_out(out, (n, ho, wo, cout), op, inputs=(x, w, bias))
    if out.size == 0:
        return out
    if c == 0:
        return _fill_no_input(out, bias, act)
    _kernels.conv2d_fwd(x, w, bias, out, _params(strides, (pt, pl), dilation, groups), act)
    return out


_SERIAL_FLOPS = 2.0e7  # csrc/conv/cf_conv2d.c, CF_CONV_SERIAL_FLOPS: smaller convolutions use one thread


def pooled_split_is_free(z_shape, w_shape, threads: int) -> bool:
    """Whether :func:`conv2d_max_pool2d`, which splits images over the threads, keeps every
    thread busy for a convolution with output ``z_shape`` and HWIO weights ``w_shape``: enough
    images, or a convolution small enough to run on one thread anyway."""
    n, ho, wo, cout = z_shape
    flops = 2.0 * n * ho * wo * cout * w_shape[0] * w_shape[1] * w_shape[2]
    return n >= threads or flops < _SERIAL_FLOPS


def conv2d_max_pool2d(x, w, bias=None, strides=(1, 1), padding="valid", dilation=(1, 1), groups=1,
                      activation=None, pool_size=(2, 2), pool_strides=None, pool_padding="valid",
                      return_argmax=False):
    """``max_pool2d(conv2d(x, w, ...), pool_size, pool_strides, pool_padding)`` in one pass.

    The convolution output of each image is pooled from a per-thread buffer while it is still in
    cache, so the full-size activation (often the largest array of a small CNN) is never
    written out nor read back. Results are bit-identical to the two separate calls, argmax
    included (see :func:`cnnfast.ops.max_pool2d`). Arguments are those of :func:`conv2d` and,
    prefixed ``pool_``, those of :func:`cnnfast.ops.max_pool2d`.

    Returns:
        ``y`` of shape ``(N, Hp, Wp, Cout)``, or ``(y, argmax)``.
    """
    from ._pool import _U8_MAX_CELLS, _check_argmax_cells, _geometry, _index_bytes, _raw, max_pool2d
    op = "conv2d_max_pool2d"
    x, w, bias, act, groups, strides, dilation, (ho, wo, pt, pl) = _conv_forward_args(
        op, x, w, bias, strides, padding, dilation, groups, activation)
    n, c, cout = x.shape[0], x.shape[3], w.shape[3]
    check_size((n, ho, wo, cout), op)
    z_shape = (n, ho, wo, cout)
    g = _cached_geometry((op, z_shape), (pool_size, pool_strides, pool_padding),
                         lambda: _geometry(op, z_shape, pool_size, pool_strides, pool_padding))
    if return_argmax:
        _check_argmax_cells(op, g[6], g[7])
    if groups != 1 or c == 0 or n * ho * wo * cout == 0 or act == 2:   # two passes
        z = conv2d(x, w, bias, strides, padding, dilation, groups, activation)
        return max_pool2d(z, pool_size, pool_strides, pool_padding, return_argmax)
    out_shape = (g[0], g[4], g[5], g[3])
    y = empty(out_shape, op)
    argmax = None
    if return_argmax:
        argmax = empty(out_shape, op, np.uint8 if g[6] * g[7] <= _U8_MAX_CELLS else np.int32)
    if y.size:
        _kernels.conv2d_fwd_maxpool(x, w, bias, (n, ho, wo, cout),
                                    _params(strides, (pt, pl), dilation, groups), act, g,
                                    y.reshape(-1), None if argmax is None else _raw(argmax),
                                    4 if argmax is None else _index_bytes(argmax))
    return (y, argmax) if return_argmax else y


def conv2d_backward(dy, x, w, strides=(1, 1), padding="valid", dilation=(1, 1), groups=1,
                    need_input_grad=True, need_bias_grad=True):
    """Gradients of :func:`conv2d` (without its activation: apply the ReLU backward to ``dy``
    first).

    Args:
        dy: gradient of the loss with respect to the output, ``(N, Ho, Wo, Cout)``.
        x, w, strides, padding, dilation, groups: as given to :func:`conv2d`.
        need_input_grad: compute ``dx`` (a first layer does not need it).
        need_bias_grad: compute ``db``.

    Returns:
        ``(dx or None, dw, db or None)`` with the shapes of ``x``, ``w`` and ``(Cout,)``.
        ``dw`` is deterministic for a given thread count (fixed-order reduction).
    """
    op = "conv2d_backward"
    x = as_float32(x, op, "x", ndim=4)
    w = as_float32(w, op, "w", ndim=4)
    dy = as_float32(dy, op, "dy", ndim=4)
    n, h, wd, c = x.shape
    cout = w.shape[3]
    groups, strides, dilation, (ho, wo, pt, pl) = _conv_signature(op, x, w, groups, strides,
                                                                  padding, dilation)
    if dy.shape != (n, ho, wo, cout):
        raise ValueError(f"{op}: dy must have the conv2d output shape {(n, ho, wo, cout)}, "
                         f"got {dy.shape}")
    hp = _params(strides, (pt, pl), dilation, groups)
    dx = None
    if need_input_grad:
        dx = np.empty(x.shape, np.float32)
        if dx.size:
            _kernels.conv2d_bwd_data(dy, w, dx, hp)
    dw = np.empty(w.shape, np.float32)
    db = np.empty((cout,), np.float32) if need_bias_grad else None
    _kernels.conv2d_bwd_filter(x, dy, dw, db, hp)
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# conv2d_transpose


def _transpose_dim(n, k, s, d, padding, output_padding):
    """Keras 3 rule (backend_utils._get_output_shape_given_tf_padding and the JAX padding it
    uses): output size, and the top/left padding of the forward convolution it transposes."""
    dk = d * (k - 1) + 1
    if padding == "valid":
        op_ = max(dk, s) - dk if output_padding is None else output_padding
        left = dk - 1
        out = None if n is None else (n - 1) * s + dk + op_
    else:
        if output_padding is None:
            pad_len = s + dk - 2
            out = None if n is None else n * s
        else:
            pad_len = dk + dk % 2 - 2 + output_padding
            out = None if n is None else (n - 1) * s + dk % 2 + output_padding
        left = min(pad_len // 2 + pad_len % 2, dk - 1)
    return out, dk - 1 - left


def _transpose_geometry(h, w, kh, kw, strides, padding, output_padding, dilation, op):
    mode = check_choice(padding, ("valid", "same"), op, "padding")
    if output_padding is not None:
        output_padding = as_pair(output_padding, op, "output_padding", minimum=0)
        for axis, o, s in zip(("height", "width"), output_padding, strides):
            if o >= s:
                raise ValueError(f"{op}: output_padding ({axis}) must be smaller than the stride "
                                 f"({s}), got {o}")
    ops = output_padding or (None, None)
    ht, pt = _transpose_dim(h, kh, strides[0], dilation[0], mode, ops[0])
    wt, pl = _transpose_dim(w, kw, strides[1], dilation[1], mode, ops[1])
    for axis, size in (("height", ht), ("width", wt)):
        if size is not None and size < 0:
            raise ValueError(f"{op}: the output {axis} would be negative ({size})")
    return ht, wt, pt, pl


def conv2d_transpose_output_shape(input_shape, kernel_shape, strides=(1, 1), padding="valid",
                                  output_padding=None, dilation=(1, 1)):
    """Output shape ``(N, Ht, Wt, filters)`` of :func:`conv2d_transpose` (Keras's rule:
    ``'valid'``: ``(H-1)*s + max(dk, s)``; ``'same'``: ``H*s``; with ``output_padding``
    ``(H-1)*s + dk + output_padding`` resp. ``(H-1)*s + dk % 2 + output_padding``).

    ``kernel_shape`` is the Keras ``Conv2DTranspose`` kernel ``(kh, kw, filters, in_channels)``.
    """
    op = "conv2d_transpose_output_shape"
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 4:
        raise ValueError(f"{op}: input_shape must be (N, H, W, C), got {input_shape!r}")
    if not isinstance(kernel_shape, (list, tuple)) or len(kernel_shape) != 4:
        raise ValueError(f"{op}: kernel_shape must be (kh, kw, filters, in_channels), "
                         f"got {kernel_shape!r}")
    n = _dim(input_shape[0], op, "input_shape[0]", True)
    h = _dim(input_shape[1], op, "input_shape[1]", True)
    w = _dim(input_shape[2], op, "input_shape[2]", True)
    c = _dim(input_shape[3], op, "input_shape[3]", True)
    kh = as_int(kernel_shape[0], op, "kernel_shape[0]", minimum=1)
    kw = as_int(kernel_shape[1], op, "kernel_shape[1]", minimum=1)
    filters = as_int(kernel_shape[2], op, "kernel_shape[2]", minimum=0)
    cin = as_int(kernel_shape[3], op, "kernel_shape[3]", minimum=0)
    if c is not None and c != cin:
        raise ValueError(f"{op}: channel mismatch: the input has {c} channels but the kernel "
                         f"expects {cin} (kernel_shape[3])")
    strides = as_pair(strides, op, "strides", minimum=1)
    dilation = as_pair(dilation, op, "dilation", minimum=1)
    ht, wt, _, _ = _transpose_geometry(h, w, kh, kw, strides, padding, output_padding, dilation, op)
    return (n, ht, wt, filters)


def _transpose_setup(x, w, strides, padding, output_padding, dilation, op):
    x = as_float32(x, op, "x", ndim=4)
    w = as_float32(w, op, "w", ndim=4)
    _check_kernel(w, op)
    kh, kw, filters, cin = w.shape
    if x.shape[3] != cin:
        raise ValueError(f"{op}: channel mismatch: x has {x.shape[3]} channels but w expects "
                         f"{cin} (w.shape[3]; Conv2DTranspose kernels are (kh, kw, filters, "
                         f"in_channels))")
    strides = as_pair(strides, op, "strides", minimum=1)
    dilation = as_pair(dilation, op, "dilation", minimum=1)
    _normalise(None, None, kh, kw, strides, "same", dilation, op)  # refuses absurd dilations
    ht, wt, pt, pl = _transpose_geometry(x.shape[1], x.shape[2], kh, kw, strides, padding,
                                         output_padding, dilation, op)
    return x, w, strides, dilation, (x.shape[0], ht, wt, filters), (pt, pl)


def conv2d_transpose(x, w, bias=None, strides=(1, 1), padding="valid", output_padding=None,
                     dilation=(1, 1), activation=None):
    """Transposed convolution (Keras ``Conv2DTranspose``): the input-gradient of a convolution,
    used as a learned upsampling.

    Args:
        x: input ``(N, H, W, in_channels)``.
        w: Keras ``Conv2DTranspose`` kernel ``(kh, kw, filters, in_channels)``.
        bias: ``(filters,)`` or ``None``.
        strides, dilation: int or pair, >= 1.
        padding: ``'valid'`` or ``'same'``.
        output_padding: ``None`` (Keras's default size) or int/pair, each smaller than the stride.
        activation: ``None``/``'linear'``, ``'relu'`` or ``'relu6'``.

    Returns:
        ``(N, Ht, Wt, filters)`` float32, sizes as :func:`conv2d_transpose_output_shape`.
    """
    op = "conv2d_transpose"
    x, w, strides, dilation, oshape, pads = _transpose_setup(x, w, strides, padding,
                                                             output_padding, dilation, op)
    bias = _check_bias(bias, w.shape[2], op)
    act = _activation(activation, op)
    out = empty(oshape, op)  # checked: strides can make the output arbitrarily large
    if out.size == 0:
        return out
    if x.shape[3] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        return _fill_no_input(out, bias, act)
    _kernels.conv2d_transpose_fwd(x, w, bias, out, _params(strides, pads, dilation, 1), act)
    return out


def conv2d_transpose_backward(dy, x, w, strides=(1, 1), padding="valid", output_padding=None,
                              dilation=(1, 1), need_input_grad=True, need_bias_grad=True):
    """Gradients of :func:`conv2d_transpose` (without its activation).

    Returns ``(dx or None, dw, db or None)`` shaped like ``x``, ``w`` and ``(filters,)``.
    """
    op = "conv2d_transpose_backward"
    x, w, strides, dilation, oshape, pads = _transpose_setup(x, w, strides, padding,
                                                             output_padding, dilation, op)
    dy = as_float32(dy, op, "dy", ndim=4)
    if dy.shape != oshape:
        raise ValueError(f"{op}: dy must have the conv2d_transpose output shape {oshape}, "
                         f"got {dy.shape}")
    hp = _params(strides, pads, dilation, 1)
    dx = None
    if need_input_grad:
        # x's gradient is the forward convolution of dy (sized like x).
        dx = np.empty(x.shape, np.float32)
        if dx.size:
            if dy.shape[3] == 0:
                dx[...] = 0.0
            else:
                _kernels.conv2d_fwd(dy, w, None, dx, hp, 0)
    # The weight gradient is the convolution's filter gradient with the roles of input and
    # output swapped: its input is dy, its output gradient is x.
    dw = np.empty(w.shape, np.float32)
    _kernels.conv2d_bwd_filter(dy, x, dw, None, hp)
    db = None
    if need_bias_grad:
        db = dy.reshape(math.prod(dy.shape[:3]), dy.shape[3]).sum(axis=0, dtype=np.float64).astype(np.float32)
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# Single-image correlation / convolution (SciPy semantics)


def _correlate_setup(image, kernel, mode, op):
    image = as_float32(image, op, "image", ndim=2)
    kernel = as_float32(kernel, op, "kernel", ndim=2)
    mode = check_choice(mode, ("valid", "same", "full"), op, "mode")
    return image, kernel, mode


def _correlate(image, kernel, mode, op, flip: bool):
    """SciPy's output geometry: 'full' pads k-1, 'same' keeps the image size (correlation pads
    (k-1)//2 above/left, convolution k//2), 'valid' swaps the arrays when the kernel is the
    larger one in every axis."""
    if mode == "valid":
        ih, iw = image.shape
        kh, kw = kernel.shape
        fits = ih >= kh and iw >= kw
        swap = kh >= ih and kw >= iw and not fits
        if not fits and not swap:
            raise ValueError(f"{op}: for mode='valid' one of image and kernel must be at least as "
                             f"large as the other in every dimension; got image {image.shape} "
                             f"and kernel {kernel.shape}")
        if swap:
            image, kernel = kernel, image
    else:
        swap = False
    if flip:
        kernel = np.ascontiguousarray(kernel[::-1, ::-1])
    ih, iw = image.shape
    kh, kw = kernel.shape
    if mode == "valid":
        shape, pads = (ih - kh + 1, iw - kw + 1), (0, 0)
    elif mode == "full":
        shape, pads = (ih + kh - 1, iw + kw - 1), (kh - 1, kw - 1)
    elif flip:
        shape, pads = (ih, iw), (kh // 2, kw // 2)
    else:
        shape, pads = (ih, iw), ((kh - 1) // 2, (kw - 1) // 2)
    shape = (max(shape[0], 0), max(shape[1], 0))
    out = np.zeros(shape, np.float32)
    if out.size and image.size and kernel.size:
        _kernels.correlate2d(image, kernel, out, pads[0], pads[1])
    if swap and not flip:
        out = np.ascontiguousarray(out[::-1, ::-1])
    return out


def correlate2d(image, kernel, mode="valid"):
    """Cross-correlate a 2-D image with a 2-D kernel, like ``scipy.signal.correlate2d`` with the
    default zero boundary (``boundary='fill', fillvalue=0``); the result is float32.

    ``out[r, c] = sum_{i, j} image[r + i - p, c + j - q] * kernel[i, j]`` with zeros outside the
    image, where ``mode`` sets the output size and the offsets ``p, q``:

    * ``'valid'`` (the default, what a CNN layer does; note SciPy's default is ``'full'``): only
      positions where the kernel fits inside the image,
      ``(H - kh + 1, W - kw + 1)``. If the kernel is larger than the image in every axis the two
      are swapped (the result is then flipped), as SciPy does.
    * ``'same'``: the image's size, centred like SciPy (``p = (kh - 1) // 2``).
    * ``'full'``: every overlap, ``(H + kh - 1, W + kw - 1)``.

    This is what a CNN layer computes (no kernel flip). Example, a vertical-edge detector:

    >>> import numpy as np
    >>> from cnnfast.ops import correlate2d
    >>> image = np.array([[10, 10, 10, 0, 0, 0]] * 6)
    >>> edge = np.array([[1, 0, -1]] * 3)
    >>> correlate2d(image, edge)
    array([[ 0., 30., 30.,  0.],
           [ 0., 30., 30.,  0.],
           [ 0., 30., 30.,  0.],
           [ 0., 30., 30.,  0.]], dtype=float32)
    """
    op = "correlate2d"
    image, kernel, mode = _correlate_setup(image, kernel, mode, op)
    return _correlate(image, kernel, mode, op, flip=False)


def convolve2d(image, kernel, mode="valid"):
    """Convolve a 2-D image with a 2-D kernel (the kernel flipped in both axes), like
    ``scipy.signal.convolve2d`` with the default zero boundary; the result is float32.

    Modes as in :func:`correlate2d` (``'same'`` is centred like SciPy, ``p = kh // 2``); for an
    odd-sized kernel ``convolve2d(image, kernel, 'same')`` equals
    ``scipy.ndimage.convolve(image, kernel, mode='constant')``.

    >>> import numpy as np
    >>> from cnnfast.ops import convolve2d
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> convolve2d(image, np.ones((3, 3)) / 9, mode="same").round(2)
    array([[ 1.11,  2.  ,  2.67,  2.  ],
           [ 3.  ,  5.  ,  6.  ,  4.33],
           [ 5.67,  9.  , 10.  ,  7.  ],
           [ 4.67,  7.33,  8.  ,  5.56]], dtype=float32)
    """
    op = "convolve2d"
    image, kernel, mode = _correlate_setup(image, kernel, mode, op)
    return _correlate(image, kernel, mode, op, flip=True)
