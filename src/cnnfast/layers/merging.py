"""Merging layers for the functional API: Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate and Dot.

They take a list of tensors. The element-wise ones broadcast as Keras 3 does: axes after the batch
axis must be equal or 1 (``(N, 1, 1, C) * (N, H, W, C)``, the squeeze-and-excitation gate), and a
tensor of lower rank is expanded at axis 1 until the ranks match. Their backward sums each input's
gradient over the axes it was broadcast along. Concatenate needs equal shapes except along
``axis``; Dot takes exactly two inputs and sums one axis of each. Mismatches raise at
graph-construction time, naming the layer and the shapes.
"""
from __future__ import annotations

import math

import numpy as np

from ..ops._checks import as_int
from .base import Layer, buffer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Concatenate", "add", "subtract", "multiply",
           "average", "concatenate", "Maximum", "Minimum", "Dot", "maximum", "minimum", "dot"]


def _broadcast_shape(layer, shapes):
    """Keras's element-wise output shape for ``shapes`` (batch axis first), or a ValueError."""
    ndim = max(len(s) for s in shapes)
    shapes = [_expand_shape(s, ndim) for s in shapes]
    batch = {s[0] for s in shapes} - {None}
    if len(batch) > 1:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': cannot merge tensors with different "
                         f"batch sizes, got {[tuple(s) for s in shapes]}")
    out = [next(iter(batch)) if batch else None]
    for axis in range(1, ndim):
        sizes = [s[axis] for s in shapes]
        known = {v for v in sizes if v is not None and v != 1}
        if len(known) > 1:
            raise ValueError(f"{type(layer).__name__} '{layer.name}': inputs must all have the same "
                             "shape after the batch axis, except for sizes of 1 that broadcast; got "
                             f"{[tuple(s) for s in shapes]}")
        if None in sizes:   # Keras: unknown wins, the sizes are checked when the values arrive
            out.append(None)
        else:
            out.append(known.pop() if known else 1)
    return tuple(out)


def _expand_shape(shape, ndim):
    shape = tuple(shape)
    return shape[:1] + (1,) * (ndim - len(shape)) + shape[1:] if shape else shape


def _unbroadcast(grad, shape):
    """``grad`` summed over the axes an input of ``shape`` was broadcast along, in its own shape."""
    if grad.shape == shape:
        return grad
    ndim = grad.ndim
    expanded = _expand_shape(shape, ndim)
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, expanded)) if s == 1 and g != 1)
    reduced = grad.sum(axis=axes, keepdims=True, dtype=np.float32) if axes else grad
    return np.ascontiguousarray(reduced.reshape(shape), dtype=np.float32)


class _Merge(Layer):
    _multi_input = True
    _min_inputs = 1
    _max_inputs = None

    def build(self, input_shape):
        self._check_shapes(input_shape)

    def _check_shapes(self, shapes):
        cls = type(self).__name__
        if not isinstance(shapes, list) or len(shapes) < max(self._min_inputs, 1):
            raise ValueError(f"{cls} '{self.name}': expects a list of at least {self._min_inputs} "
                             f"inputs, got {shapes}")
        if self._max_inputs is not None and len(shapes) > self._max_inputs:
            raise ValueError(f"{cls} '{self.name}': expects exactly {self._max_inputs} inputs, "
                             f"got {len(shapes)}")
        _broadcast_shape(self, shapes)

    def compute_output_shape(self, input_shape):
        return _broadcast_shape(self, input_shape)

    def _aligned(self, xs):
        """The inputs with equal ranks (lower-rank ones expanded at axis 1) and the output shape."""
        out_shape = _broadcast_shape(self, [x.shape for x in xs])
        ndim = len(out_shape)
        return [x if x.ndim == ndim else x.reshape(_expand_shape(x.shape, ndim)) for x in xs], out_shape


class Add(_Merge):
    """Element-wise sum of the inputs (residual connections)."""

    def forward(self, xs, training, ctx):
        ctx["shapes"] = [x.shape for x in xs]
        xs, out_shape = self._aligned(xs)
        y = buffer(ctx, "y", out_shape)
        np.add(xs[0], xs[1], out=y) if len(xs) > 1 else np.copyto(y, xs[0])
        for x in xs[2:]:
            y += x
        return y

    def backward(self, dy, ctx, need_dx):
        return [_unbroadcast(dy, s) for s in ctx["shapes"]] if need_dx else None


class Subtract(_Merge):
    """``inputs[0] - inputs[1]``."""
    _min_inputs = _max_inputs = 2

    def forward(self, xs, training, ctx):
        ctx["shapes"] = [x.shape for x in xs]
        xs, out_shape = self._aligned(xs)
        return np.subtract(xs[0], xs[1], out=buffer(ctx, "y", out_shape))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        a, b = ctx["shapes"]
        return [_unbroadcast(dy, a), _unbroadcast(-dy, b)]


class Multiply(_Merge):
    """Element-wise product of the inputs (with broadcasting: a squeeze-and-excitation gate of
    shape ``(N, 1, 1, C)`` times features ``(N, H, W, C)``)."""

    def forward(self, xs, training, ctx):
        ctx["shapes"] = [x.shape for x in xs]
        xs, out_shape = self._aligned(xs)
        y = buffer(ctx, "y", out_shape)
        np.multiply(xs[0], xs[1], out=y) if len(xs) > 1 else np.copyto(y, xs[0])
        for x in xs[2:]:
            y *= x
        ctx["xs"] = xs
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        xs = ctx["xs"]
        grads = []
        for i in range(len(xs)):
            g = None
            for j, x in enumerate(xs):
                if j != i:
                    g = np.multiply(dy, x) if g is None else np.multiply(g, x, out=g)
            grads.append(_unbroadcast(dy.copy() if g is None else g, ctx["shapes"][i]))
        return grads


class Average(_Merge):
    """Element-wise mean of the inputs."""

    def forward(self, xs, training, ctx):
        ctx["shapes"] = [x.shape for x in xs]
        xs, out_shape = self._aligned(xs)
        y = buffer(ctx, "y", out_shape)
        np.add(xs[0], xs[1], out=y) if len(xs) > 1 else np.copyto(y, xs[0])
        for x in xs[2:]:
            y += x
        y *= np.float32(1.0 / len(xs))
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        g = dy * np.float32(1.0 / len(ctx["shapes"]))
        return [_unbroadcast(g, s) for s in ctx["shapes"]]


class Concatenate(_Merge):
    """Joins the inputs along ``axis`` (default: the channel axis)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = as_int(axis, f"Concatenate '{self.name}'", "axis")

    def _axis(self, ndim):
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= axis < ndim:
            raise ValueError(f"Concatenate '{self.name}': axis {self.axis} is out of range for "
                             f"{ndim}-D inputs (the batch axis cannot be concatenated)")
        return axis

    def _check_shapes(self, shapes):
        if not isinstance(shapes, list) or len(shapes) < 1:
            raise ValueError(f"Concatenate '{self.name}': expects a list of inputs, got {shapes}")
        ndim = len(shapes[0])
        axis = self._axis(ndim)
        for s in shapes:
            if len(s) != ndim or any(i != axis and a is not None and b is not None and a != b
                                     for i, (a, b) in enumerate(zip(shapes[0], s)) if i > 0):
                raise ValueError(f"Concatenate '{self.name}': a Concatenate layer requires inputs with "
                                 f"matching shapes except for the concatenation axis {self.axis}; got "
                                 f"inputs shapes: {[tuple(x) for x in shapes]}")

    def compute_output_shape(self, input_shape):
        axis = self._axis(len(input_shape[0]))
        out = list(input_shape[0])
        sizes = [s[axis] for s in input_shape]
        out[axis] = None if any(v is None for v in sizes) else sum(sizes)
        for i in range(1, len(out)):
            if i != axis and out[i] is None:
                out[i] = next((s[i] for s in input_shape if s[i] is not None), None)
        return tuple(out)

    def forward(self, xs, training, ctx):
        axis = self._axis(xs[0].ndim)
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        try:
            y = np.concatenate(xs, axis=axis, out=buffer(ctx, "y", tuple(shape)))
        except ValueError:
            raise ValueError(f"Concatenate '{self.name}': inputs must match except along axis "
                             f"{self.axis}, got {[x.shape for x in xs]}") from None
        ctx["splits"] = np.cumsum([x.shape[axis] for x in xs])[:-1]
        ctx["axis"] = axis
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return [np.ascontiguousarray(g) for g in np.split(dy, ctx["splits"], axis=ctx["axis"])]

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


# --- Maximum, Minimum ---------------------------------------------------------------------------
class _Extremum(_Merge):
    """Element-wise maximum or minimum of the inputs, folded left to right as Keras does
    (``op(op(x0, x1), x2)...``). The gradient goes to the input that won each pairwise step; a tie
    splits it in halves between the two sides (PyTorch's ``maximum``/``minimum`` backward, which is
    what Keras trains with on its torch backend), so with three equal values x0 and x1 get a
    quarter each and x2 a half."""

    _pick = None   # np.maximum or np.minimum

    def forward(self, xs, training, ctx):
        ctx["shapes"] = [x.shape for x in xs]
        xs, out_shape = self._aligned(xs)
        y = buffer(ctx, "y", out_shape)
        np.copyto(y, xs[0])
        # per step k, the share of the gradient that goes to x_k (the rest goes to the running result)
        shares = []
        for x in xs[1:]:
            share = self._beats(x, y).astype(np.float32)
            share[x == y] = 0.5
            shares.append(share)
            self._pick(y, x, out=y)
        ctx["shares"] = shares
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        g = dy
        grads = []
        for share in reversed(ctx["shares"]):
            grads.append(g * share)
            g = g * (np.float32(1) - share)
        grads.append(g)
        return [_unbroadcast(np.ascontiguousarray(d, dtype=np.float32), s)
                for d, s in zip(reversed(grads), ctx["shapes"])]


class Maximum(_Extremum):
    """Element-wise maximum of the inputs (``keras.layers.Maximum``), with the merges'
    broadcasting."""
    _pick = np.maximum

    @staticmethod
    def _beats(x, running):
        return x > running


class Minimum(_Extremum):
    """Element-wise minimum of the inputs (``keras.layers.Minimum``), with the merges'
    broadcasting."""
    _pick = np.minimum

    @staticmethod
    def _beats(x, running):
        return x < running


# --- Dot ----------------------------------------------------------------------------------------
_NORMALIZE_EPSILON = 1e-7   # Keras's backend.epsilon(): 1 / norm is capped at 1e7


class Dot(_Merge):
    """Batched dot product of two inputs along ``axes`` (``keras.layers.Dot``).

    ``axes`` is one axis for both inputs or a pair ``(axis_of_x, axis_of_y)``; negative axes count
    from the end of each input's own rank; the batch axis 0 cannot be summed. The output has x's
    other axes followed by y's other axes (batch excluded), and at least 2 dimensions:
    ``(N, k) . (N, k) -> (N, 1)``, ``(N, a, k) . (N, k, b) -> (N, a, b)`` with ``axes=(2, 1)``.
    With ``normalize=True`` each input is first L2-normalised along its dot axis (``x / ||x||``,
    with ``1 / ||x||`` capped at 1e7 as Keras does), giving cosine similarities.

    The product runs as one batched matrix product (NumPy's ``matmul`` on float32; cnnfast's GEMM
    takes single matrices): x is viewed as ``(N, P, k)`` and y as ``(N, k, Q)``.
    """
    _min_inputs = _max_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        op = f"Dot '{self.name}'"
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"{op}: axes must be an integer or a pair of integers, got axes={axes!r}")
            axes = type(axes)(as_int(a, op, "axes") for a in axes)
        elif isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
            axes = int(axes)
        else:
            raise TypeError(f"{op}: axes must be an integer or a pair of integers, got axes={axes!r}")
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(f"{op}: normalize must be True or False, got {normalize!r}")
        self.axes = axes
        self.normalize = bool(normalize)

    def _resolved_axes(self, shapes):
        """The two summed axes as non-negative indices, checked against the inputs' ranks."""
        pair = self.axes if isinstance(self.axes, (list, tuple)) else (self.axes, self.axes)
        resolved = []
        for axis, shape in zip(pair, shapes):
            ndim = len(shape)
            a = axis + ndim if axis < 0 else axis
            if not 0 <= a < ndim:
                raise ValueError(f"Dot '{self.name}': axis {axis} is out of range for an input of shape "
                                 f"{tuple(shape)}")
            if a == 0:
                raise ValueError(f"Dot '{self.name}': cannot take the dot product over axis 0, the batch "
                                 f"axis (axes={self.axes}, input shapes {[tuple(s) for s in shapes]})")
            resolved.append(a)
        return resolved

    def _check_shapes(self, shapes):
        if not isinstance(shapes, list) or len(shapes) != 2 or \
                not all(isinstance(s, (tuple, list)) for s in shapes):
            raise ValueError(f"Dot '{self.name}': a Dot layer should be called on a list of 2 inputs, "
                             f"got input shapes {shapes}")
        if any(len(s) < 2 for s in shapes):
            raise ValueError(f"Dot '{self.name}': both inputs need a batch axis and at least one more, "
                             f"got shapes {[tuple(s) for s in shapes]}")
        a0, a1 = self._resolved_axes(shapes)
        d0, d1 = shapes[0][a0], shapes[1][a1]
        if d0 is not None and d1 is not None and d0 != d1:
            raise ValueError(f"Dot '{self.name}': incompatible input shapes: axis values {d0} (at axis "
                             f"{a0}) != {d1} (at axis {a1}). Full input shapes: {tuple(shapes[0])}, "
                             f"{tuple(shapes[1])}")
        b0, b1 = shapes[0][0], shapes[1][0]
        if b0 is not None and b1 is not None and b0 != b1:
            raise ValueError(f"Dot '{self.name}': cannot merge tensors with different batch sizes, "
                             f"got {[tuple(s) for s in shapes]}")

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        a0, a1 = self._resolved_axes(input_shape)
        x_rest = [d for i, d in enumerate(input_shape[0]) if i != a0]
        y_rest = [d for i, d in enumerate(input_shape[1]) if i not in (0, a1)]
        out = x_rest + y_rest
        return tuple(out + [1] if len(out) == 1 else out)

    def forward(self, xs, training, ctx):
        self._check_shapes([x.shape for x in xs])
        x, y = xs
        a0, a1 = self._resolved_axes([x.shape, y.shape])
        if self.normalize:
            x, ctx["x_inv"] = _l2_normalize(x, a0)
            y, ctx["y_inv"] = _l2_normalize(y, a1)
        xm = np.moveaxis(x, a0, -1)          # (N, A..., k)
        ym = np.moveaxis(y, a1, 1)           # (N, k, B...)
        n, k = x.shape[0], x.shape[a0]
        x3 = xm.reshape(n, -1, k) if xm.size else np.zeros((n, math.prod(xm.shape[1:-1]), k), np.float32)
        y3 = ym.reshape(n, k, -1) if ym.size else np.zeros((n, k, math.prod(ym.shape[2:])), np.float32)
        out = np.matmul(x3, y3)
        ctx.update(x3=x3, y3=y3, xm_shape=xm.shape, ym_shape=ym.shape, axes=(a0, a1), xn=x, yn=y)
        shape = (n,) + xm.shape[1:-1] + ym.shape[2:]
        return np.ascontiguousarray(out.reshape(shape if len(shape) > 1 else (n, 1)), dtype=np.float32)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        x3, y3 = ctx["x3"], ctx["y3"]
        a0, a1 = ctx["axes"]
        g = dy.reshape(x3.shape[0], x3.shape[1], y3.shape[2])
        dx = np.moveaxis(np.matmul(g, y3.transpose(0, 2, 1)).reshape(ctx["xm_shape"]), -1, a0)
        dyy = np.moveaxis(np.matmul(x3.transpose(0, 2, 1), g).reshape(ctx["ym_shape"]), 1, a1)
        if self.normalize:
            dx = _l2_normalize_backward(dx, ctx["xn"], ctx["x_inv"], a0)
            dyy = _l2_normalize_backward(dyy, ctx["yn"], ctx["y_inv"], a1)
        return [np.ascontiguousarray(dx, dtype=np.float32), np.ascontiguousarray(dyy, dtype=np.float32)]

    def get_config(self):
        config = super().get_config()
        config.update(axes=list(self.axes) if isinstance(self.axes, (list, tuple)) else self.axes,
                      normalize=self.normalize)
        return config


def _l2_normalize(x, axis):
    """``x * min(1 / ||x||, 1 / epsilon)`` along ``axis`` (Keras's ``ops.normalize``) and the
    factor, which is kept for the backward pass."""
    squares = np.sum(np.square(x, dtype=np.float32), axis=axis, keepdims=True, dtype=np.float32)
    with np.errstate(divide="ignore"):
        inv = np.minimum(np.float32(1) / np.sqrt(squares), np.float32(1 / _NORMALIZE_EPSILON))
    return (x * inv).astype(np.float32), inv


def _l2_normalize_backward(g, xn, inv, axis):
    """Gradient of ``x * min(1/||x||, cap)``: ``inv * (g - xn * sum(g * xn))`` where the norm is
    above epsilon (``xn`` is the normalised x), ``cap * g`` where the cap holds (constant factor)."""
    capped = inv >= np.float32(1 / _NORMALIZE_EPSILON)
    along = np.sum(g * xn, axis=axis, keepdims=True, dtype=np.float32)
    return np.where(capped, g * inv, inv * (g - xn * along)).astype(np.float32)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def dot(inputs, axes=-1, **kwargs):
    return Dot(axes=axes, **kwargs)(inputs)
