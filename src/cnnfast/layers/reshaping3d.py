"""Volume reshaping (NDHWC): UpSampling3D, ZeroPadding3D, Cropping3D. Whole-array NumPy moves."""
from __future__ import annotations

import numpy as np

from .base import Layer, buffer
from .conv import _check_data_format
from .conv3d import as_triple

__all__ = ["UpSampling3D", "ZeroPadding3D", "Cropping3D"]


def _check_rank(layer, input_shape):
    if len(input_shape) != 5:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': expects inputs of shape "
                         f"(batch, depth, height, width, channels), got {input_shape}")


def _three_pairs(value, op, name):
    """int, 3 ints (symmetric per axis) or 3 (before, after) pairs -> 3 (before, after) pairs."""
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (list, tuple)) for v in value):
        pairs = []
        for v in value:
            if len(v) != 2:
                raise ValueError(f"{op}: {name} must be an int, 3 ints or 3 pairs of ints, got {value!r}")
            pairs.append(tuple(as_triple((v[0], v[1], 0), op, name, 0)[:2]))
        return tuple(pairs)
    return tuple((v, v) for v in as_triple(value, op, name, 0))


def _grow(n, before, after):
    return None if n is None else n + before + after


class UpSampling3D(Layer):
    """Repeats each voxel ``size[0]`` x ``size[1]`` x ``size[2]`` times (nearest-neighbour)."""

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.size = as_triple(size, f"UpSampling3D '{self.name}'", "size", 1)
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        _check_rank(self, input_shape)
        self._input_spec = (5, {})

    def compute_output_shape(self, input_shape):
        n, *spatial, c = input_shape
        return (n,) + tuple(None if s is None else s * k for s, k in zip(spatial, self.size)) + (c,)

    def forward(self, x, training, ctx):
        n, d, h, w, c = x.shape
        sd, sh, sw = self.size
        y = buffer(ctx, "y", (n, d * sd, h * sh, w * sw, c))
        y.reshape(n, d, sd, h, sh, w, sw, c)[...] = x[:, :, None, :, None, :, None, :]
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        n, ds, hs, ws, c = dy.shape
        sd, sh, sw = self.size
        return dy.reshape(n, ds // sd, sd, hs // sh, sh, ws // sw, sw, c).sum(axis=(2, 4, 6), dtype=np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(size=list(self.size), data_format=self.data_format)
        return config


class ZeroPadding3D(Layer):
    """Adds zeros around the volume: ``padding`` is an int, 3 ints or 3 (before, after) pairs."""

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _three_pairs(padding, f"ZeroPadding3D '{self.name}'", "padding")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        _check_rank(self, input_shape)
        self._input_spec = (5, {})

    def compute_output_shape(self, input_shape):
        n, *spatial, c = input_shape
        return (n,) + tuple(_grow(s, *p) for s, p in zip(spatial, self.padding)) + (c,)

    def _inner(self, shape):
        return (slice(None),) + tuple(slice(b, b + s) for (b, _), s in zip(self.padding, shape[1:4]))

    def forward(self, x, training, ctx):
        y = buffer(ctx, "y", self.compute_output_shape(x.shape))
        if not ctx.get(("zeroed", y.shape)):  # the border stays zero between steps
            y.fill(0)
            ctx[("zeroed", y.shape)] = True
        y[self._inner(x.shape)] = x
        ctx["shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx):
        return np.ascontiguousarray(dy[self._inner(ctx["shape"])]) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.update(padding=[list(p) for p in self.padding], data_format=self.data_format)
        return config


class Cropping3D(Layer):
    """Removes voxels at the borders: ``cropping`` is an int, 3 ints or 3 (before, after) pairs."""

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _three_pairs(cropping, f"Cropping3D '{self.name}'", "cropping")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        out = self.compute_output_shape(input_shape)
        if any(s is not None and s <= 0 for s in out[1:4]):
            raise ValueError(f"Cropping3D '{self.name}': cropping {self.cropping} leaves nothing of an "
                             f"input of shape {input_shape}")
        self._input_spec = (5, {})

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape)
        n, *spatial, c = input_shape
        return (n,) + tuple(_grow(s, -b, -a) for s, (b, a) in zip(spatial, self.cropping)) + (c,)

    def _kept(self, shape):
        return (slice(None),) + tuple(slice(b, s - a) for (b, a), s in zip(self.cropping, shape[1:4]))

    def forward(self, x, training, ctx):
        ctx["shape"] = x.shape
        return np.ascontiguousarray(x[self._kept(x.shape)])

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        dx = np.zeros(ctx["shape"], np.float32)
        dx[self._kept(ctx["shape"])] = dy
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(cropping=[list(p) for p in self.cropping], data_format=self.data_format)
        return config
