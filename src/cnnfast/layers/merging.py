"""Merging layers for the functional API: Add, Subtract, Multiply, Average, Concatenate.

They take a list of tensors. Shapes must match exactly (Concatenate: except along ``axis``);
mismatches raise at graph-construction time, naming the layer and the shapes.
"""
from __future__ import annotations

import numpy as np

from ..ops._checks import as_int
from .base import Layer, buffer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Concatenate", "add", "subtract", "multiply",
           "average", "concatenate"]


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
        first = shapes[0]
        for s in shapes[1:]:
            if len(s) != len(first) or any(a is not None and b is not None and a != b
                                           for a, b in zip(first[1:], s[1:])):
                raise ValueError(f"{cls} '{self.name}': inputs must all have the same shape, got "
                                 f"{[tuple(x) for x in shapes]}")

    def compute_output_shape(self, input_shape):
        first = list(input_shape[0])
        for s in input_shape[1:]:
            first = [a if a is not None else b for a, b in zip(first, s)]
        return tuple(first)

    def _check_arrays(self, xs):
        shape = xs[0].shape
        for x in xs[1:]:
            if x.shape != shape:
                raise ValueError(f"{type(self).__name__} '{self.name}': inputs must all have the same "
                                 f"shape, got {[a.shape for a in xs]}")


class Add(_Merge):
    """Element-wise sum of the inputs (residual connections)."""

    def forward(self, xs, training, ctx):
        self._check_arrays(xs)
        y = buffer(ctx, "y", xs[0].shape)
        np.add(xs[0], xs[1], out=y) if len(xs) > 1 else np.copyto(y, xs[0])
        for x in xs[2:]:
            y += x
        ctx["n"] = len(xs)
        return y

    def backward(self, dy, ctx, need_dx):
        return [dy] * ctx["n"] if need_dx else None


class Subtract(_Merge):
    """``inputs[0] - inputs[1]``."""
    _min_inputs = _max_inputs = 2

    def forward(self, xs, training, ctx):
        self._check_arrays(xs)
        return np.subtract(xs[0], xs[1], out=buffer(ctx, "y", xs[0].shape))

    def backward(self, dy, ctx, need_dx):
        return [dy, -dy] if need_dx else None


class Multiply(_Merge):
    """Element-wise product of the inputs."""

    def forward(self, xs, training, ctx):
        self._check_arrays(xs)
        y = buffer(ctx, "y", xs[0].shape)
        np.copyto(y, xs[0])
        for x in xs[1:]:
            y *= x
        ctx["xs"] = xs
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        xs = ctx["xs"]
        grads = []
        for i in range(len(xs)):
            g = dy.copy()
            for j, x in enumerate(xs):
                if j != i:
                    g *= x
            grads.append(g)
        return grads


class Average(_Merge):
    """Element-wise mean of the inputs."""

    def forward(self, xs, training, ctx):
        self._check_arrays(xs)
        y = buffer(ctx, "y", xs[0].shape)
        np.copyto(y, xs[0])
        for x in xs[1:]:
            y += x
        y *= np.float32(1.0 / len(xs))
        ctx["n"] = len(xs)
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        g = dy * np.float32(1.0 / ctx["n"])
        return [g] * ctx["n"]


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
