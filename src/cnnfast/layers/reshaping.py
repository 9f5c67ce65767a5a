"""Reshaping layers: Flatten, Reshape, Permute, UpSampling2D, ZeroPadding2D, Cropping2D.

Flatten and Reshape are free views of contiguous inputs. Flatten's order is H, W, C (channels_last),
which matters when importing PyTorch weights (see ``cnnfast.saving.load_torch_state_dict``).
UpSampling2D ("nearest") and the padding layers are single vectorised NumPy copies into buffers
reused between steps; their backward passes are a strided sum and a slice.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..ops._checks import as_int, as_pair, check_choice
from .base import Layer, buffer, standardize_shape
from .conv import _check_data_format

__all__ = ["Flatten", "Reshape", "Permute", "UpSampling2D", "ZeroPadding2D", "Cropping2D"]


class Flatten(Layer):
    """Flattens all but the batch axis: ``(batch, h, w, c) -> (batch, h*w*c)``."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(s is None for s in rest) else math.prod(rest))

    def forward(self, x, training, ctx):
        ctx["shape"] = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: NumPy cannot resolve it for 0 rows

    def backward(self, dy, ctx, need_dx):
        return dy.reshape(ctx["shape"]) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    """Reshapes to ``(batch,) + target_shape``; one entry may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        op = f"Reshape '{self.name}'"
        if not isinstance(target_shape, (tuple, list)):
            raise TypeError(f"{op}: target_shape must be a tuple of integers, got {target_shape!r}")
        shape = tuple(as_int(s, op, "target_shape") for s in target_shape)
        if sum(s == -1 for s in shape) > 1 or any(s < -1 or s == 0 for s in shape):
            raise ValueError(f"{op}: target_shape must hold positive integers and at most one -1, "
                             f"got {tuple(target_shape)}")
        self.target_shape = shape

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if any(s is None for s in rest):
            known = None
        else:
            known = math.prod(rest)
        shape = list(self.target_shape)
        if -1 in shape:
            other = math.prod(s for s in shape if s != -1)
            if known is None:
                shape[shape.index(-1)] = None
            else:
                if known % other:
                    raise ValueError(f"Reshape '{self.name}': cannot reshape input of shape {input_shape} "
                                     f"to {self.target_shape}")
                shape[shape.index(-1)] = known // other
        elif known is not None and math.prod(shape) != known:
            raise ValueError(f"Reshape '{self.name}': total size of the new shape {self.target_shape} "
                             f"must equal the input's {known} (input shape {input_shape})")
        return (input_shape[0],) + tuple(shape)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def forward(self, x, training, ctx):
        ctx["shape"] = x.shape
        # the -1 resolved from the sample shape, so an empty batch reshapes too
        return x.reshape((x.shape[0],) + self.compute_output_shape(x.shape)[1:])

    def backward(self, dy, ctx, need_dx):
        return dy.reshape(ctx["shape"]) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


class Permute(Layer):
    """Permutes the non-batch axes (Keras ``Permute``): ``dims`` is a permutation of 1..rank-1,
    e.g. ``Permute((2, 3, 1))`` turns ``(batch, c, h, w)`` into ``(batch, h, w, c)``.
    The output is a C-contiguous copy (a buffer reused between steps)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        op = f"Permute '{self.name}'"
        if not isinstance(dims, (tuple, list)):
            raise TypeError(f"{op}: dims must be a tuple of integers, got {dims!r}")
        dims = tuple(as_int(d, op, "dims") for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"{op}: dims must be a permutation of 1..{len(dims)} (the batch axis "
                             f"is not permuted), got {dims}")
        self.dims = dims
        self._perm = (0,) + dims
        self._inverse = tuple(int(i) for i in np.argsort(self._perm))

    def build(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"Permute '{self.name}': dims {self.dims} need inputs of rank "
                             f"{len(self.dims) + 1}, got input shape {input_shape}")
        self._input_spec = (len(self.dims) + 1, {})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[i] for i in self._perm)

    def forward(self, x, training, ctx):
        y = buffer(ctx, "y", tuple(x.shape[i] for i in self._perm))
        np.copyto(y, x.transpose(self._perm))
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return np.ascontiguousarray(dy.transpose(self._inverse))

    def get_config(self):
        config = super().get_config()
        config["dims"] = list(self.dims)
        return config


class UpSampling2D(Layer):
    """Scales images by ``size``: ``interpolation="nearest"`` repeats rows ``size[0]`` and columns
    ``size[1]`` times; ``"bilinear"`` interpolates with half-pixel centres, as Keras 3 (and
    PyTorch's ``align_corners=False``), in a C kernel."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        op = f"UpSampling2D '{self.name}'"
        self.size = as_pair(size, op, "size", 1)
        _check_data_format(self, data_format)
        self.data_format = "channels_last"
        self.interpolation = check_choice(interpolation, ("nearest", "bilinear"), op, "interpolation")

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"UpSampling2D '{self.name}': expects 4-D inputs, got {input_shape}")
        self._input_spec = (4, {})

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        sh, sw = self.size
        return (n, None if h is None else h * sh, None if w is None else w * sw, c)

    def forward(self, x, training, ctx):
        n, h, w, c = x.shape
        sh, sw = self.size
        if self.interpolation == "bilinear":
            ctx["x_shape"] = x.shape
            return ops.resize_bilinear(x, (h * sh, w * sw))
        y = buffer(ctx, "y", (n, h * sh, w * sw, c))
        y.reshape(n, h, sh, w, sw, c)[...] = x[:, :, None, :, None, :]
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if self.interpolation == "bilinear":
            return ops.resize_bilinear_backward(dy, ctx["x_shape"])
        n, hs, ws, c = dy.shape
        sh, sw = self.size
        return dy.reshape(n, hs // sh, sh, ws // sw, sw, c).sum(axis=(2, 4), dtype=np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(size=list(self.size), data_format=self.data_format,
                      interpolation=self.interpolation)
        return config


def _pad_pairs(value, op, name):
    """int, (sym_h, sym_w) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (list, tuple)) for v in value):
        return tuple(as_pair(v, op, name, 0) for v in value)
    h, w = as_pair(value, op, name, 0)
    return ((h, h), (w, w))


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around the image."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pad_pairs(padding, f"ZeroPadding2D '{self.name}'", "padding")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"ZeroPadding2D '{self.name}': expects 4-D inputs, got {input_shape}")
        self._input_spec = (4, {})

    def compute_output_shape(self, input_shape):
        (t, b), (l, r) = self.padding
        n, h, w, c = input_shape
        return (n, None if h is None else h + t + b, None if w is None else w + l + r, c)

    def forward(self, x, training, ctx):
        (t, b), (l, r) = self.padding
        n, h, w, c = x.shape
        y = buffer(ctx, "y", (n, h + t + b, w + l + r, c))
        if not ctx.get(("zeroed", y.shape)):  # the border stays zero between steps
            y.fill(0)
            ctx[("zeroed", y.shape)] = True
        y[:, t:t + h, l:l + w, :] = x
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        (t, b), (l, r) = self.padding
        return np.ascontiguousarray(dy[:, t:dy.shape[1] - b, l:dy.shape[2] - r, :])

    def get_config(self):
        config = super().get_config()
        config.update(padding=[list(p) for p in self.padding], data_format=self.data_format)
        return config


class Cropping2D(Layer):
    """Removes rows and columns at the image borders."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pad_pairs(cropping, f"Cropping2D '{self.name}'", "cropping")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        out = self.compute_output_shape(input_shape)
        if any(s is not None and s <= 0 for s in out[1:3]):
            raise ValueError(f"Cropping2D '{self.name}': cropping {self.cropping} leaves nothing of an "
                             f"input of shape {input_shape}")
        self._input_spec = (4, {})

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Cropping2D '{self.name}': expects 4-D inputs, got {input_shape}")
        (t, b), (l, r) = self.cropping
        n, h, w, c = input_shape
        return (n, None if h is None else h - t - b, None if w is None else w - l - r, c)

    def forward(self, x, training, ctx):
        (t, b), (l, r) = self.cropping
        ctx["shape"] = x.shape
        return np.ascontiguousarray(x[:, t:x.shape[1] - b, l:x.shape[2] - r, :])

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        (t, b), (l, r) = self.cropping
        dx = np.zeros(ctx["shape"], np.float32)
        dx[:, t:t + dy.shape[1], l:l + dy.shape[2], :] = dy
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(cropping=[list(p) for p in self.cropping], data_format=self.data_format)
        return config
