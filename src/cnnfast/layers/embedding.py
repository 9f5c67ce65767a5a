"""Embedding: integer ids -> rows of a trainable ``(input_dim, output_dim)`` table (``keras.layers.Embedding``).

Forward is a row gather and backward a scatter-add of the output gradient into the table's
gradient (duplicate ids add up), both in C (:func:`cnnfast.ops.embedding`,
:func:`cnnfast.ops.embedding_backward`); the ids themselves get no gradient. ``mask_zero=True``
makes id 0 padding: the layer then computes the mask ``ids != 0`` (``compute_mask``), which the
model passes on through the masking layers after it, as Keras does.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import ops
from .. import regularizers as _regularizers
from .base import KerasTensor, Layer, buffer, grad_target, symbolic_mask

__all__ = ["Embedding"]


def _positive_int(value, name):
    """Keras's check of ``input_dim`` / ``output_dim``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r} "
                         f"(of type {type(value).__name__}).")
    return int(value)


class Embedding(Layer):
    """Turns non-negative integer ids into dense vectors: ``y[..., :] = embeddings[x[...]]``.

    Args:
        input_dim: size of the vocabulary (ids are in ``[0, input_dim)``).
        output_dim: size of each embedding vector.
        embeddings_initializer: initialiser of the table (default ``"uniform"``: U(-0.05, 0.05)).
        embeddings_regularizer, embeddings_constraint: as Keras (``cnnfast.regularizers``,
            ``cnnfast.constraints``).
        mask_zero: id 0 is padding; the layer computes the mask ``x != 0`` for the layers after
            it (so id 0 should not be a real token: ``input_dim`` is then vocabulary size + 1).
        weights: an initial table ``(input_dim, output_dim)`` (or a one-element list of it).

    Input shape ``(batch, ...)`` of integer ids (floats are cast to int32, as Keras does);
    output shape ``(batch, ..., output_dim)`` float32. ``lora_rank`` and ``quantization_config``
    are Keras options cnnfast does not support.
    """

    _input_dtypes = ("int32", "int64", "float32")

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, lora_alpha=None,
                 quantization_config=None, activity_regularizer=None, **kwargs):
        input_dim = _positive_int(input_dim, "input_dim")
        output_dim = _positive_int(output_dim, "output_dim")
        if kwargs.pop("input_length", None) is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        super().__init__(**kwargs)
        for key, value in (("lora_rank", lora_rank), ("quantization_config", quantization_config),
                           ("activity_regularizer", activity_regularizer)):
            if value is not None:
                raise NotImplementedError(f"Embedding '{self.name}': {key} is not supported by cnnfast")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = _initializers.get(
            embeddings_initializer, f"Embedding '{self.name}': embeddings_initializer")
        self.embeddings_regularizer = _regularizers.get(
            embeddings_regularizer, f"Embedding '{self.name}': embeddings_regularizer")
        self.embeddings_constraint = _constraints.get(
            embeddings_constraint, f"Embedding '{self.name}': embeddings_constraint")
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.embeddings = None
        if weights is not None:
            self.build()
            self.built = True
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def build(self, input_shape=None):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                          name="embeddings", regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs, previous_mask=None):
        if not self.mask_zero:
            return None
        if isinstance(inputs, KerasTensor):
            return symbolic_mask(inputs)
        return np.not_equal(inputs, 0)

    def forward(self, x, training, ctx):
        ids = x if x.dtype in (np.int32, np.int64) else np.asarray(x).astype(np.int32)
        ctx["ids"] = ids
        return ops.embedding(ids, self.embeddings.value,
                             out=buffer(ctx, "y", ids.shape + (self.output_dim,)))

    def backward(self, dy, ctx, need_dx):
        if self._trainable:
            g, acc = grad_target(self.embeddings)
            ops.embedding_backward(ctx["ids"], dy, self.input_dim, out=g, accumulate=acc)
        return None  # integer ids have no gradient

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim,
                      embeddings_initializer=_initializers.serialize(self.embeddings_initializer),
                      embeddings_regularizer=_regularizers.serialize(self.embeddings_regularizer),
                      activity_regularizer=None,
                      embeddings_constraint=_constraints.serialize(self.embeddings_constraint),
                      mask_zero=self.mask_zero, quantization_config=None)
        return config
