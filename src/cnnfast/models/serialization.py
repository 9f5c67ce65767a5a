"""Model and layer configs <-> objects, data only.

A config is JSON: ``{"class_name": "Conv2D", "config": {...keyword arguments...}}``. Loading
rebuilds only classes on an allow-list (cnnfast's own layers, ``Sequential`` and ``Functional``),
passes only keyword arguments that the class's constructor declares, and never imports a module or
evaluates anything, so a config cannot run code (the class of bugs behind Keras's safe_mode CVEs).

Functional graphs are stored as Keras does: every layer with its ``inbound_nodes``, each a list of
``[layer_name, node_index, tensor_index]`` of the tensors it was called on, plus
``input_layers``/``output_layers``.

This module sits below the model classes it rebuilds (``functional.py`` and ``sequential.py``
call it from ``get_config``/``from_config``): each model class adds itself to the allow-list with
:func:`register_model_class` when it is defined, so the allow-list is complete as soon as
``cnnfast.models`` is imported.
"""
from __future__ import annotations

import inspect
import threading

from .. import layers as _layers
from ..layers.base import InputLayer, Layer

__all__ = ["serialize_layer", "deserialize_layer", "sequential_config", "sequential_from_config",
           "functional_config", "functional_from_config", "register_model_class", "is_model",
           "ConfigError"]

MAX_LAYERS = 100_000


class ConfigError(ValueError):
    """A saved config that cnnfast will not load (unknown class, bad argument, bad graph)."""


# The model classes on the allow-list: the name loading accepts -> the class, and the class -> the
# name saving writes. Filled by the classes themselves (see register_model_class).
_MODEL_CLASSES: dict[str, type] = {}
_MODEL_CLASS_NAMES: dict[type, str] = {}


def register_model_class(cls: type, name: str, aliases=()) -> type:
    """Put the model class ``cls`` on the allow-list: saved as ``name``, loaded from ``name`` and
    ``aliases``. Instances of subclasses are saved under the name of the nearest registered class."""
    _MODEL_CLASS_NAMES[cls] = name
    for key in (name, *aliases):
        _MODEL_CLASSES[key] = cls
    return cls


def _model_class(name: str) -> type:
    try:
        return _MODEL_CLASSES[name]
    except KeyError:
        raise ConfigError(f"no model class {name!r} is registered") from None


def _registered_model_name(obj) -> str | None:
    for klass in type(obj).__mro__:
        name = _MODEL_CLASS_NAMES.get(klass)
        if name is not None:
            return name
    return None


def is_model(obj) -> bool:
    """Is ``obj`` an instance of a registered model class (``Sequential``, the functional ``Model``)?"""
    return _registered_model_name(obj) is not None


def _allowed():
    allowed = dict(_layers.SERIALIZABLE)
    allowed.update(_MODEL_CLASSES)
    return allowed


def _class_name(layer):
    model_name = _registered_model_name(layer)
    if model_name is not None:
        return model_name
    name = type(layer).__name__
    if name not in _layers.SERIALIZABLE or _layers.SERIALIZABLE[name] is not type(layer):
        raise ValueError(f"cannot save layer '{layer.name}' of class {name}: only cnnfast's built-in "
                         "layers can be saved")
    return name


def serialize_layer(layer: Layer) -> dict:
    return {"class_name": _class_name(layer), "config": layer.get_config()}


_BASE_KWARGS = {"name", "trainable", "dtype", "input_shape", "input_dim", "batch_size", "batch_input_shape"}


def _accepted_kwargs(cls):
    params = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                params.add(p.name)
    return params | _BASE_KWARGS


_MAX_NESTING = 32
_nesting = threading.local()


def deserialize_layer(spec, where="config") -> Layer:
    """A layer (or nested model) from ``{"class_name", "config"}``; allow-listed classes only.

    Nested models are limited to ``_MAX_NESTING`` levels so a hostile config cannot exhaust the stack.
    """
    depth = getattr(_nesting, "depth", 0)
    if depth >= _MAX_NESTING:
        raise ConfigError(f"{where}: models nested more than {_MAX_NESTING} levels deep")
    _nesting.depth = depth + 1
    try:
        return _deserialize_layer(spec, where)
    finally:
        _nesting.depth = depth


def _deserialize_layer(spec, where) -> Layer:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a layer entry must be an object, got {type(spec).__name__}")
    name = spec.get("class_name")
    allowed = _allowed()
    if not isinstance(name, str) or name not in allowed:
        raise ConfigError(f"{where}: unknown or disallowed layer class {name!r}; cnnfast only loads "
                          f"its own classes: {sorted(allowed)}")
    cls = allowed[name]
    config = spec.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: the config of a {name} must be an object")
    if name in _MODEL_CLASSES:
        return cls.from_config(config)
    unknown = set(config) - _accepted_kwargs(cls)
    if unknown:
        raise ConfigError(f"{where}: {name} does not take the argument(s) {sorted(unknown)}")
    try:
        return cls(**config)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ConfigError(f"{where}: cannot rebuild {name} '{config.get('name')}': {exc}") from None


# -- Sequential ---------------------------------------------------------------------------------
def sequential_config(model) -> dict:
    return {"name": model.name, "trainable": model.trainable,
            "layers": [serialize_layer(l) for l in model._stack]}


def _check_keys(config, allowed, what):
    if not isinstance(config, dict):
        raise ConfigError(f"{what}: config must be an object")
    unknown = set(config) - set(allowed)
    if unknown:
        raise ConfigError(f"{what}: unexpected keys {sorted(unknown)}")


def sequential_from_config(config):
    Sequential = _model_class("Sequential")
    _check_keys(config, {"name", "trainable", "layers", "dtype"}, "Sequential")
    entries = config.get("layers")
    if not isinstance(entries, list) or len(entries) > MAX_LAYERS:
        raise ConfigError("Sequential: 'layers' must be a list of layer entries")
    name = config.get("name")
    model = Sequential(name=name if isinstance(name, str) and name else None)
    for i, entry in enumerate(entries):
        layer = deserialize_layer(entry, f"Sequential layer {i}")
        try:
            model.add(layer, rebuild=False)
        except (TypeError, ValueError) as exc:  # e.g. two layers with the same name
            raise ConfigError(f"Sequential '{model.name}': layer {i}: {exc}") from exc
    if model._has_input() and model.layers:
        try:
            model._build_graph()
        except ValueError as exc:
            raise ConfigError(f"Sequential '{model.name}': the saved layers do not fit together: {exc}") from None
    model._trainable = bool(config.get("trainable", True))
    return model


# -- Functional ---------------------------------------------------------------------------------
def _local_node_index(model, node):
    own = [n for n in model._nodes if n.layer is node.layer]
    for i, n in enumerate(own):
        if n is node:
            return i
    return 0  # an Input layer's node


def _tensor_ref(model, tensor):
    layer, node_index, tensor_index = tensor._keras_history
    node = layer._inbound_nodes[node_index]
    return [layer.name, _local_node_index(model, node), tensor_index]


def functional_config(model) -> dict:
    entries = []
    for layer in model.layers:
        entry = serialize_layer(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [[_tensor_ref(model, t) + _call_kwargs(node) for t in node.inputs]
                                  for node in model._nodes if node.layer is layer]
        entries.append(entry)
    return {"name": model.name, "trainable": model.trainable, "layers": entries,
            "input_layers": [_tensor_ref(model, t) for t in model._inputs],
            "output_layers": [_tensor_ref(model, t) for t in model._outputs]}


def _call_kwargs(node):
    """The call arguments a node keeps, as the 4th item of its tensor references (Keras 2's
    layout): only an explicit ``training``."""
    return [] if node.training is None else [{"training": node.training}]


def _ref(value, what):
    if (not isinstance(value, list) or len(value) not in (3, 4) or not isinstance(value[0], str)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value[1:3])):
        raise ConfigError(f"Functional: bad tensor reference {value!r} in {what}")
    return value[0], value[1], value[2]


def _ref_training(value, what):
    """The ``training`` call argument in a 4-item tensor reference, or None."""
    if len(value) == 3:
        return None
    kwargs = value[3]
    if not isinstance(kwargs, dict) or set(kwargs) - {"training"} or \
            not isinstance(kwargs.get("training", False), bool):
        raise ConfigError(f"Functional: bad call arguments {kwargs!r} in {what} (only training=True/False "
                          "is kept)")
    return kwargs.get("training")


def functional_from_config(config):
    Model = _model_class("Functional")
    _check_keys(config, {"name", "trainable", "layers", "input_layers", "output_layers", "dtype"}, "Functional")
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries or len(entries) > MAX_LAYERS:
        raise ConfigError("Functional: 'layers' must be a non-empty list")
    created, pending = {}, []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"Functional: layer entry {i} must be an object")
        layer = deserialize_layer({"class_name": entry.get("class_name"), "config": entry.get("config")},
                                  f"Functional layer {i}")
        if entry.get("name") != layer.name or layer.name in created:
            raise ConfigError(f"Functional: layer entry {i} has a missing, mismatched or duplicate name")
        created[layer.name] = layer
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ConfigError(f"Functional: 'inbound_nodes' of '{layer.name}' must be a list")
        if isinstance(layer, InputLayer):
            if nodes:
                raise ConfigError(f"Functional: Input layer '{layer.name}' cannot have inbound nodes")
            continue
        for k, node in enumerate(nodes):
            if not isinstance(node, list) or not node:
                raise ConfigError(f"Functional: bad inbound node {k} of '{layer.name}'")
            pending.append((layer, k, [_ref(r, f"'{layer.name}'") for r in node],
                            _ref_training(node[0], f"'{layer.name}'")))

    tensors = {(name, 0): l.output_tensor for name, l in created.items() if isinstance(l, InputLayer)}
    progress = True
    while pending and progress:
        progress, waiting = False, []
        for layer, k, refs, training in pending:
            if (k > 0 and (layer.name, k - 1) not in tensors) or any((n, i) not in tensors for n, i, _ in refs):
                waiting.append((layer, k, refs, training))
                continue
            inputs = [tensors[(n, i)] for n, i, _ in refs]
            try:
                out = layer(inputs if layer._multi_input else inputs[0], training=training)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"Functional: cannot connect layer '{layer.name}': {exc}") from None
            tensors[(layer.name, k)] = out
            progress = True
        pending = waiting
    if pending:
        raise ConfigError(f"Functional: the graph cannot be rebuilt (unresolved inputs of "
                          f"{sorted({l.name for l, _, _, _ in pending})})")

    def lookup(key):
        refs = config.get(key)
        if not isinstance(refs, list) or not refs:
            raise ConfigError(f"Functional: '{key}' must be a non-empty list")
        out = []
        for r in refs:
            name, idx, _ = _ref(r, key)
            if (name, idx) not in tensors:
                raise ConfigError(f"Functional: '{key}' refers to an unknown tensor {r!r}")
            out.append(tensors[(name, idx)])
        return out

    inputs, outputs = lookup("input_layers"), lookup("output_layers")
    name = config.get("name")
    try:
        model = Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                      name=name if isinstance(name, str) and name else None)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Functional: {exc}") from None
    model._trainable = bool(config.get("trainable", True))
    return model
