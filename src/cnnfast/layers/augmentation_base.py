"""What Keras 3's image augmentation layers share: seeds, training-mode rules, image layout and
factor arguments (``keras.layers.RandomFlip`` & co., see augmentation.py and augmentation_color.py).

* Active only in training: inside ``fit`` (and ``model(x, training=True)``); identities in
  ``predict``/``evaluate``. Called directly on an array without ``training``, a layer augments, as
  in Keras (whose ``call`` defaults to ``training=True``).
* Randomness is a pure function of ``(seed, step)``, as for Dropout: ``seed=None`` draws a seed
  from cnnfast's stream (``cnnfast.utils.set_random_seed`` fixes it) but the config keeps None, as
  Keras's does; inside ``fit`` the step is the optimizer's iteration count, outside it a per-layer
  counter; each call site of a shared layer draws its own values. The values are NumPy's
  (``PCG64``), not a Keras backend's, but the distributions and their ranges are Keras's.
* Images are ``(batch, height, width, channels)`` (``data_format="channels_first"``: channels
  second); a single 3-D image is accepted in direct calls.
* Gradients: these layers sit right after the input, where no gradient is needed (the model never
  asks). Where the input gradient is a simple copy (flips, crops, resizing, inference-mode
  identities) the layer computes it; the interpolating warps and the colour changes mark that no
  gradient flows to their input (``backward`` returns None), as their Keras counterparts are never
  differentiated in practice.
"""
from __future__ import annotations

import numpy as np

from .base import KerasTensor, Layer, buffer, rng_step

__all__ = []  # helpers for the augmentation layers

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def data_format_arg(value, op: str) -> str:
    if value is None:
        return "channels_last"
    if value not in ("channels_last", "channels_first"):
        raise ValueError(f"{op}: data_format must be 'channels_last' or 'channels_first', got {value!r}")
    return value


def check_warp_modes(fill_mode, interpolation) -> None:
    """Keras's errors (NotImplementedError) for the warping layers' modes."""
    if fill_mode not in FILL_MODES:
        raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one {FILL_MODES}.")
    if interpolation not in INTERPOLATIONS:
        raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one {INTERPOLATIONS}.")


def base_factor(factor, bounds) -> tuple:
    """Keras's ``BaseImagePreprocessingLayer._set_factor``: a number ``f`` gives
    ``(max(-|f|, low), |f|)``; a pair is sorted (only its order against the bounds is checked,
    as Keras); None or 0 give ``(0, 0)``."""
    low, high = bounds
    factor = factor or 0.0
    message = ("The `factor` argument should be a number (or a list of two numbers) in the range "
               f"[{low}, {high}]. Received: factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(f) for f in factor):
            raise ValueError(message)
        if factor[0] > high or factor[1] < low:
            raise ValueError(message)
        lower, upper = sorted(factor)
    elif _is_number(factor):
        if factor < low or factor > high:
            raise ValueError(message)
        factor = abs(factor)
        lower, upper = max(-factor, low), factor
    else:
        raise ValueError(message)
    return (lower, upper)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and bool(np.isfinite(value))


def _symbolic(inputs) -> bool:
    flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return any(isinstance(t, KerasTensor) for t in flat)


class ImageLayer(Layer):
    """Base of the image layers here: the ``data_format`` and the conversions to and from a 4-D
    channels-last batch."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format_arg(data_format, f"{type(self).__name__} '{self.name}'")

    # -- layout -------------------------------------------------------------------------------
    def _to_nhwc(self, x, ctx):
        """``x`` as a 4-D channels-last batch; ``ctx`` remembers how to undo it."""
        op = f"{type(self).__name__} '{self.name}'"
        if x.ndim not in (3, 4):
            raise ValueError(f"{op}: expected images of rank 3 (single image) or 4 (batch of images), "
                             f"got shape {x.shape}")
        ctx["single"] = x.ndim == 3
        if x.ndim == 3:
            x = x[None]
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        return x

    def _from_nhwc(self, y, ctx):
        if self.data_format == "channels_first":
            y = y.transpose(0, 3, 1, 2)
        y = np.ascontiguousarray(y, dtype=np.float32)
        return y[0] if ctx.get("single") else y

    def _out(self, xb, ctx):
        """An output buffer for a result of ``xb``'s shape, reused between the steps of ``fit``
        (``ctx`` lives as long as the call site), or None when the result is transposed back."""
        return buffer(ctx, "y", xb.shape) if self.data_format == "channels_last" else None

    def _spatial_axes(self, ndim: int) -> tuple[int, int]:
        """The height and width axes of an input of rank ``ndim``."""
        return (ndim - 3, ndim - 2) if self.data_format == "channels_last" else (ndim - 2, ndim - 1)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class AugmentationLayer(ImageLayer):
    """Base of the random augmentation layers (see the module docstring)."""

    _uses_rng = True

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))
                                 or not 0 <= seed < 2 ** 64):
            raise ValueError(f"{type(self).__name__} '{self.name}': seed must be a non-negative integer or "
                             f"None, got {seed!r}")
        self._seed_arg = None if seed is None else int(seed)   # what the config saves, as Keras's
        if seed is None:
            from ..utils.random import next_seed
            seed = next_seed() & 0x7FFFFFFF
        # the seed the draws use (an int even for seed=None, so distributed fit can give every
        # rank its own stream, as it does for Dropout)
        self.seed = int(seed)
        self._eager_step = 0

    # -- calling: Keras's call() defaults to training=True -----------------------------------
    def __call__(self, inputs, training=None, **kwargs):
        if training is None and not _symbolic(inputs):
            training = True
        return super().__call__(inputs, training=training, **kwargs)

    def call(self, inputs, training=True):
        return self._call_eager(inputs, bool(training))

    def _generator(self, ctx) -> np.random.Generator:
        """The generator of this call: a function of the seed, the call site and the step."""
        step = rng_step()
        if step is None:  # outside fit: a private counter
            step = self._eager_step
            self._eager_step += 1
        seed = (self.seed + 0x9E3779B9 * ctx.get("node_index", 0)) % 2 ** 64
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, int(step)])))


class RandomWarpLayer(AugmentationLayer):
    """An augmentation whose training-mode output is an interpolated warp: no input gradient."""

    def backward(self, dy, ctx, need_dx):
        if not need_dx or ctx.get("augmented"):
            return None  # the warped images do not pass a gradient to the input (see module docstring)
        return dy
