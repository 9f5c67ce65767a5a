"""Identity: a layer that returns its input unchanged (``keras.layers.Identity``).

Useful as a placeholder where an architecture optionally has a block (a skipped head, a
stochastic-depth branch turned off) so layer names and graph structure stay the same."""
from __future__ import annotations

from .base import Layer

__all__ = ["Identity"]


class Identity(Layer):
    """Returns its input; its gradient passes through unchanged. No weights."""

    def forward(self, x, training, ctx):
        return x

    def backward(self, dy, ctx, need_dx):
        return dy if need_dx else None
