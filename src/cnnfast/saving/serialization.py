"""Model and layer configs <-> objects, under their ``cnnfast.saving`` name.

Implemented in ``cnnfast.models.serialization`` (the allow-list and the config layout are
described there).
"""
from __future__ import annotations

from ..models.serialization import (MAX_LAYERS, ConfigError, deserialize_layer, functional_config,
                                    functional_from_config, is_model, register_model_class,
                                    sequential_config, sequential_from_config, serialize_layer)

__all__ = ["serialize_layer", "deserialize_layer", "sequential_config", "sequential_from_config",
           "functional_config", "functional_from_config", "register_model_class", "is_model",
           "ConfigError", "MAX_LAYERS"]
