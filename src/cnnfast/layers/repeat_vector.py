"""RepeatVector: ``(batch, features) -> (batch, n, features)``, the input repeated ``n`` times
(``keras.layers.RepeatVector``; the bridge from a vector to a sequence, e.g. the input of a
decoder). The backward pass sums the ``n`` copies' gradients."""
from __future__ import annotations

import numpy as np

from .base import Layer, buffer

__all__ = ["RepeatVector"]


class RepeatVector(Layer):
    """Repeats its 2-D input ``n`` times along a new axis 1.

    Args:
        n: the number of repetitions, a positive integer.

    Input shape ``(batch, features)``; output shape ``(batch, n, features)``.
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"RepeatVector '{self.name}': expected an integer value for `n`, got "
                            f"{type(n).__name__} {n!r}")
        if n <= 0:
            raise ValueError(f"RepeatVector '{self.name}': argument `n` should be a positive integer, "
                             f"got n={n}")
        self.n = int(n)
        self._input_spec = (2, {})

    def build(self, input_shape):
        self._check_input_shape(input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, x, training, ctx):
        y = buffer(ctx, "y", (x.shape[0], self.n, x.shape[1]))
        np.copyto(y, x[:, None, :])
        return y

    def backward(self, dy, ctx, need_dx):
        return np.sum(dy, axis=1, dtype=np.float32) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config
