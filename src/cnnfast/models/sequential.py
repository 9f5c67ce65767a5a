"""Sequential: a plain stack of layers, each feeding the next.

The input shape comes from an ``Input``/``InputLayer`` added first, from ``input_shape=`` on the
first layer (accepted silently, as tutorials use it), from ``build(input_shape)``, or from the first
data the model sees. Once it is known the stack is turned into the same graph a functional
``Model`` uses (calling each layer on a symbolic tensor), lazily, so ``add`` stays cheap.
"""
from __future__ import annotations

from ..layers.base import InputLayer, KerasTensor, Layer, standardize_shape, unique_name
from .functional import Model
from .serialization import register_model_class, sequential_config, sequential_from_config

__all__ = ["Sequential"]


def _input_dtype_for(layer):
    """The dtype of the input a Sequential makes for its first ``layer`` when no Input is given:
    the first dtype the layer takes (string for TextVectorization, int32 for Embedding, so token
    ids are never rounded through float32), float32 for the others."""
    dtypes = getattr(layer, "_input_dtypes", ("float32",)) if layer is not None else ("float32",)
    return dtypes[0] if dtypes else "float32"


class Sequential(Model):
    """``Sequential([layers.Conv2D(...), ...])`` or ``Sequential()`` then ``.add(layer)``."""

    _is_sequential = True

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name or unique_name("sequential"), trainable=trainable)
        self._stack: list = []
        self._graph_built = False
        self.built = False
        if layers is not None:
            if isinstance(layers, (Layer, KerasTensor)):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # -- building -------------------------------------------------------------------------------
    def add(self, layer, rebuild=True):
        """Append a layer (or an ``Input(...)`` tensor, which sets the input shape)."""
        if isinstance(layer, KerasTensor):
            origin = layer._keras_history[0] if layer._keras_history else None
            if isinstance(origin, InputLayer) and len(origin._inbound_nodes) and layer is origin.output_tensor:
                layer = origin
            else:
                raise ValueError("Sequential.add: only tensors returned by Input() can be added; add "
                                 "layers, not the outputs of layer calls")
        if not isinstance(layer, Layer):
            raise TypeError(f"Only instances of cnnfast Layer can be added to a Sequential model. "
                            f"Received: {layer!r} (of type {type(layer).__name__})")
        if isinstance(layer, InputLayer):
            if self._stack:
                raise ValueError(f"Sequential model '{self.name}': an Input can only be the first "
                                 "element; this model already has layers")
        elif not self._stack and layer._batch_input_shape is not None:
            self._stack.append(InputLayer(batch_shape=layer._batch_input_shape, dtype=_input_dtype_for(layer)))
        if any(l.name == layer.name for l in self._stack):
            raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                             f"'{layer.name}' is already the name of a layer in this model. Update the "
                             "`name` argument to pass a unique name.")
        self._stack.append(layer)
        self._graph_built = False
        self.built = False
        self._invalidate_training()
        if rebuild and self._has_input() and self.layers:
            try:
                self._build_graph()
            except Exception:
                self._stack.pop()
                if len(self._stack) == 1 and isinstance(self._stack[0], InputLayer) and \
                        layer._batch_input_shape is not None:
                    self._stack.pop()
                if self._has_input() and self.layers:
                    self._build_graph()
                raise

    def pop(self):
        """Remove the last layer."""
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self._stack.pop()
        self._graph_built = False
        self.built = False
        self._invalidate_training()
        if self._has_input() and self.layers:
            self._build_graph()
        return layer

    def _has_input(self):
        return bool(self._stack) and isinstance(self._stack[0], InputLayer)

    def build(self, input_shape=None):
        """Build the model for ``input_shape`` (batch axis first, e.g. ``(None, 28, 28, 1)``)."""
        if not self._has_input():
            if input_shape is None:
                raise ValueError(f"Sequential model '{self.name}' has no input shape: pass one to "
                                 "build(), give the first layer input_shape=, or start with Input()")
            shape = standardize_shape(input_shape, f"Sequential '{self.name}': input_shape")
            first = next((l for l in self._stack if not isinstance(l, InputLayer)), None)
            self._stack.insert(0, InputLayer(batch_shape=shape, dtype=_input_dtype_for(first)))
        if not self._graph_built:
            self._build_graph()

    def _build_graph(self):
        if not self.layers:
            raise ValueError(f"Sequential model '{self.name}' has no layers")
        x = inputs = self._stack[0].output_tensor
        for layer in self._stack[1:]:
            x = layer(x)
        self._init_graph(inputs, x)
        self._graph_built = True

    @property
    def layers(self):
        return [l for l in self._stack if not isinstance(l, InputLayer)]

    @property
    def weights(self):
        if not self.built:
            return [v for l in self.layers for v in l.weights]
        return super().weights

    def _ensure_graph(self):
        if not self._graph_built and self._has_input() and self.layers:
            self._build_graph()

    def summary(self, *args, **kwargs):
        self._ensure_graph()
        return super().summary(*args, **kwargs)

    def count_params(self):
        self._ensure_graph()
        return super().count_params()

    # -- config -----------------------------------------------------------------------------------
    def get_config(self):
        return sequential_config(self)

    @classmethod
    def from_config(cls, config):
        return sequential_from_config(config)


register_model_class(Sequential, "Sequential")
