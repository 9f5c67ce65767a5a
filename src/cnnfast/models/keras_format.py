"""Reading Keras 3's own ``.keras`` files: ``config.json`` in Keras's serialization format and
``model.weights.h5`` in its HDF5 weight layout.

Keras's config is translated into cnnfast's (the same class names and arguments, without the
``module`` / ``registered_name`` / ``build_config`` wrappers, dtype policies as their float32
name, and Keras 3's ``inbound_nodes`` ``{"args": [keras tensors], "kwargs": {...}}`` as
``[layer, node, tensor]`` references), then rebuilt by the same allow-listed loader as cnnfast's
own files: nothing in the file is imported or run, and a layer cnnfast does not have is named in
the error. Initializers are not needed (the weights follow) and are kept only by class name.
Arguments cnnfast does not take are accepted only at Keras's inert values (None, False); any
other value is refused, naming the layer and the argument. The weights are then read by the
Keras 3 HDF5 reader of ``model.load_weights``. The compile configuration (optimizer, loss,
metrics) is restored when cnnfast has them, else the model is returned uncompiled with a warning;
the optimizer's saved state is not restored (training resumes with a fresh optimizer state).
"""
from __future__ import annotations

import warnings

from .. import initializers as _initializers
from .. import losses as _losses
from .. import optimizers as _optimizers
from .serialization import ConfigError, _accepted_kwargs, _allowed

__all__ = ["is_keras_metadata", "model_config_from_keras", "compile_from_keras"]

_WRAPPER_KEYS = {"module", "registered_name", "build_config", "compile_config", "shared_object_id"}
_MODEL_NAMES = {"Sequential", "Functional", "Model"}


def is_keras_metadata(meta) -> bool:
    """metadata.json written by Keras 3 itself (``{"keras_version": "3.x", ...}``)."""
    return isinstance(meta, dict) and "format" not in meta and str(meta.get("keras_version", "")).startswith("3.")


def _dtype_name(value):
    if isinstance(value, dict):   # a DTypePolicy
        value = (value.get("config") or {}).get("name")
    return value


def _tensor_refs(value, where):
    """Keras 3 call arguments -> the keras tensors they hold, as [layer, node, tensor] lists."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        history = (value.get("config") or {}).get("keras_history")
        if not isinstance(history, list) or len(history) != 3:
            raise ConfigError(f"{where}: a keras tensor without a valid keras_history: {value!r}")
        return [list(history)]
    if isinstance(value, (list, tuple)):
        return [ref for item in value for ref in _tensor_refs(item, where)]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in _tensor_refs(item, where)]
    return []


def _inbound_nodes(nodes, name):
    out = []
    for k, node in enumerate(nodes or []):
        if isinstance(node, list):   # already [[name, node, tensor], ...] (Keras 2 style)
            out.append(node)
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"Keras file: bad inbound node {k} of layer '{name}'")
        refs = _tensor_refs(node.get("args", []), f"layer '{name}'")
        kwargs = node.get("kwargs") or {}
        extra = set(kwargs) - {"training", "mask"}
        if extra:
            raise ConfigError(f"Keras file: layer '{name}' is called with {sorted(extra)}, which cnnfast "
                              f"does not rebuild")
        if "training" in kwargs and isinstance(kwargs["training"], bool):
            refs = [r + [{"training": kwargs["training"]}] for r in refs]
        out.append(refs)
    return out


def _io_refs(value):
    """input_layers / output_layers: one flat [name, 0, 0] in Keras 3 for a single tensor."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value]
    return value


def _layer_config(class_name, config, where):
    cls = _allowed().get(class_name)
    if cls is None:
        raise ConfigError(f"{where}: the Keras layer class {class_name!r} is not one cnnfast has")
    accepted = _accepted_kwargs(cls)
    out = {}
    for key, value in config.items():
        if key in _WRAPPER_KEYS:
            continue
        if key == "dtype":
            value = _dtype_name(value)
        elif key.endswith("_initializer") and isinstance(value, dict):
            name = value.get("class_name")
            try:
                _initializers.get(name, key)
            except (TypeError, ValueError):
                continue   # the layer's default: the saved weights replace it anyway
            value = name
        if key not in accepted:
            if value in (None, False, {}, []):
                continue
            raise ConfigError(f"{where}: {class_name} '{config.get('name')}' uses {key}={value!r}, which "
                              f"cnnfast does not support")
        out[key] = value
    if class_name == "InputLayer" and "batch_input_shape" in out and "batch_shape" not in out:
        out["batch_shape"] = out.pop("batch_input_shape")
    return out


def _spec(entry, where):
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: a layer entry must be an object")
    class_name = entry.get("class_name")
    config = entry.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: the config of a {class_name} must be an object")
    if class_name in _MODEL_NAMES:
        return {"class_name": "Functional" if class_name == "Model" else class_name,
                "config": model_config_from_keras(class_name, config, where)}
    return {"class_name": class_name, "config": _layer_config(class_name, config, where)}


def model_config_from_keras(class_name, config, where="config.json"):
    """A Keras 3 ``Sequential`` / ``Functional`` config as cnnfast's."""
    name = config.get("name")
    if class_name == "Sequential":
        layers = [_spec(e, f"{where}: Sequential layer {i}") for i, e in enumerate(config.get("layers") or [])]
        return {"name": name, "trainable": config.get("trainable", True), "layers": layers}
    entries = []
    for i, entry in enumerate(config.get("layers") or []):
        spec = _spec(entry, f"{where}: layer {i}")
        spec["name"] = entry.get("name", spec["config"].get("name"))
        spec["inbound_nodes"] = _inbound_nodes(entry.get("inbound_nodes"), spec["name"])
        entries.append(spec)
    return {"name": name, "trainable": config.get("trainable", True), "layers": entries,
            "input_layers": _io_refs(config.get("input_layers")),
            "output_layers": _io_refs(config.get("output_layers"))}


def _plain(spec):
    """A Keras ``{"module", "class_name", "config"}`` object as a name or {"class_name", "config"}."""
    if isinstance(spec, dict) and "class_name" in spec:
        return {"class_name": spec["class_name"], "config": spec.get("config") or {}}
    return spec


def compile_from_keras(model, cc, source):
    """``model.compile`` from Keras's compile_config, or a warning saying what was not restored."""
    try:
        opt = _plain(cc.get("optimizer"))
        if isinstance(opt, dict):
            cls = opt["class_name"]
            kwargs = {k: v for k, v in opt["config"].items()
                      if k in _accepted_kwargs(type(_optimizers.get(cls.lower())))}
            opt = _optimizers.deserialize({"class_name": cls, "config": kwargs})
        loss = _plain(cc.get("loss"))
        if isinstance(loss, dict):
            loss = _losses.deserialize({"class_name": loss["class_name"], "config": {
                k: v for k, v in loss["config"].items() if k not in ("dtype",)}})
        metrics = [m if isinstance(m, str) else _plain(m)["config"].get("name") or _plain(m)["class_name"]
                   for m in (cc.get("metrics") or []) if m is not None]
        model.compile(optimizer=opt, loss=loss, metrics=metrics or None,
                      loss_weights=cc.get("loss_weights"))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        warnings.warn(f"{source}: the model was rebuilt with its weights, but its compile configuration "
                      f"could not be restored ({exc}); call compile() before training", stacklevel=3)
