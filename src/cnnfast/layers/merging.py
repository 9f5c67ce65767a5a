"""Merging layers for the functional API: Add, Subtract, Multiply, Average, Concatenate.

They take a list of tensors. The element-wise ones broadcast as Keras 3 does: axes after the batch
axis must be equal or 1 (``(N, 1, 1, C) * (N, H, W, C)``, the squeeze-and-excitation gate), and a
tensor of lower rank is expanded at axis 1 until the ranks match. Their backward sums each input's
gradient over the axes it was broadcast along. Concatenate needs equal shapes except along
``axis``. Mismatches raise at graph-construction time, naming the layer and the shapes.
"""
from __future__ import annotations

import numpy as np

from ..ops._checks import as_int
from .base import Layer, buffer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Concatenate", "add", "subtract", "multiply",
           "average", "concatenate"]


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
