"""Model files: ``save_model``/``load_model`` (``.keras``) and ``save_weights``/``load_weights``
(``.weights.npz``); no pickle, ever. Public as ``cnnfast.saving``, ``Model.save`` and friends.

* ``save_model(model, "m.keras")`` / ``load_model("m.keras")``: architecture, weights, compile
  settings and optimizer state in one zip (format in ``archive.py``).
* ``save_weights(model, "w.weights.npz")`` / ``load_weights(model, path)``.
* ``save_weights(model, "w.weights.h5")`` and ``load_weights`` of Keras's HDF5 files (Keras 3
  ``.weights.h5``, legacy ``.h5``/``.hdf5``): see ``h5_format.py`` (needs h5py, ``cnnfast[h5]``).

They live with the model classes because both directions need them: ``Model.save`` and
``cnnfast.models.load_model`` call them, and loading rebuilds ``Sequential``/``Functional``
(through the allow-list of ``serialization.py``). ``cnnfast.saving`` sits above and re-exports them.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile

import numpy as np

from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from ..layers.base import to_snake_case, weight_budget
from . import h5_format as _h5_format
from .archive import (FORMAT, FORMAT_VERSION, MEMBERS, WEIGHTS_FORMAT, InvalidFileError, json_bytes, metadata,
                      npz_bytes, parse_json, read_archive, read_npz, write_atomic)
from .keras_format import compile_from_keras, is_keras_metadata, model_config_from_keras
from .serialization import ConfigError, deserialize_layer, is_model, serialize_layer

KERAS_WEIGHTS = "model.weights.h5"   # the weights member of a .keras file written by Keras 3

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "weight_names"]


def weight_names(model) -> list:
    """``(name, variable)`` for every weight of ``model`` in ``model.weights`` order.

    As Keras 3, a layer is addressed by its class and position, not by its (auto-generated, so
    not reproducible) name: ``layers/dense/vars/0``, ``layers/dense_1/vars/0``... in layer order;
    a nested model adds its own ``layers/<class>/`` level. Two instances of the same architecture
    therefore share names, whatever their layer names are.
    """
    out, seen = [], set()

    def walk(layers, prefix):
        used = {}
        for layer in layers:
            key = to_snake_case(type(layer).__name__)
            if key in used:
                used[key] += 1
                key = f"{key}_{used[key]}"
            else:
                used[key] = 0
            if hasattr(layer, "_plan"):  # a nested model
                walk(layer.layers, f"{prefix}layers/{key}/")
                continue
            for i, var in enumerate(layer.weights):
                if id(var) not in seen:
                    seen.add(id(var))
                    out.append((f"{prefix}layers/{key}/vars/{i}", var))

    walk(model.layers, "")
    if len(out) != len(model.weights):
        raise ValueError(f"model '{model.name}': cannot name its weights uniquely")
    return out


def _serializable_metric(m):
    if m is None or isinstance(m, str):
        return m
    if isinstance(m, _metrics.Metric) and type(m).__name__ in _metrics._CLASSES:
        return {"class_name": type(m).__name__, "config": m.get_config()}
    if callable(m) and m in _metrics._BY_FUNCTION:
        return m.__name__
    raise ValueError(f"metric {m!r} cannot be saved")


def _compile_config(model):
    if not getattr(model, "compiled", False) or model._compile_args is None:
        return None
    args = model._compile_args
    try:
        config = {"optimizer": _optimizers.serialize(model.optimizer),
                  "loss": None if model._loss_obj is None else _losses.serialize(model._loss_obj),
                  "loss_weights": args["loss_weights"] if isinstance(args["loss_weights"], (int, float, type(None))) else None}
        for key in ("metrics", "weighted_metrics"):
            specs = args[key]
            if specs is not None and not isinstance(specs, (list, tuple)):
                specs = [specs]
            config[key] = None if specs is None else [_serializable_metric(m) for m in specs]
    except ValueError as exc:
        warnings.warn(f"save: the model's compile settings cannot be saved ({exc}); the file will hold "
                      "an uncompiled model", stacklevel=3)
        return None
    return config


def save_model(model, filepath, overwrite=True, zipped=None, include_optimizer=True):
    """Save ``model`` to a ``.keras`` zip (see ``archive.py`` for the exact format)."""
    if not is_model(model):
        raise TypeError(f"save_model: expected a cnnfast model, got {type(model).__name__}")
    path = os.fspath(filepath)
    if zipped is False:
        raise ValueError("save_model: only the zipped .keras format is supported")
    if not path.endswith(".keras"):
        raise ValueError(f"save_model: the filepath must end in '.keras', got {path!r} (use "
                         "save_weights with '.weights.npz' for weights only)")
    entry = serialize_layer(model)
    config = {"class_name": entry["class_name"], "config": entry["config"],
              "compile_config": _compile_config(model)}
    weights = {name: var.value for name, var in weight_names(model)}
    members = {"metadata.json": json_bytes(metadata()), "config.json": json_bytes(config),
               "model.weights.npz": npz_bytes(weights)}
    opt = getattr(model, "optimizer", None)
    if include_optimizer and config["compile_config"] is not None and opt is not None and "flat" in opt._state:
        state = {k: v for k, v in opt.get_state().items() if k == "iterations" or k.startswith("flat/")}
        members["optimizer.npz"] = npz_bytes(state)

    def write(f):
        with zipfile.ZipFile(f, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name.endswith(".npz")
                            else zipfile.ZIP_DEFLATED)

    write_atomic(path, write, overwrite)


def _expected_shapes(model):
    return {name: (var.shape, np.float32) for name, var in weight_names(model)}


def _assign(model, arrays, source, skip_mismatch=False):
    for name, var in weight_names(model):
        arr = arrays.get(name)
        if arr is None or arr.shape != var.shape:
            if skip_mismatch:
                warnings.warn(f"{source}: skipping weight {name} (missing or shape mismatch)", stacklevel=3)
                continue
            raise InvalidFileError(f"{source}: no array of shape {var.shape} for weight {name}")
        var.value[...] = arr


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved by :func:`save_model`. Loading never runs code: ``safe_mode`` is always
    on and ``custom_objects`` are refused (only cnnfast's own classes are rebuilt)."""
    if custom_objects:
        raise ValueError("load_model: custom_objects are not supported; cnnfast files only hold cnnfast "
                         "layers, rebuilt from an allow-list")
    source = os.fspath(filepath)
    if source.endswith(".h5") or source.endswith(".hdf5"):
        raise ValueError(f"load_model: {source!r}: HDF5 files are not supported; cnnfast reads its "
                         "own .keras zip files. For the weights of a Keras HDF5 file, build the same "
                         "architecture in cnnfast and call model.load_weights(path)")
    members = read_archive(source, allowed=MEMBERS + (KERAS_WEIGHTS,))
    for required in ("metadata.json", "config.json"):
        if required not in members:
            raise InvalidFileError(f"{source}: missing {required}; not a cnnfast model file")
    meta = parse_json(members["metadata.json"], f"{source}: metadata.json")
    keras_file = is_keras_metadata(meta)
    for name in members:   # each kind of file has its own members, and only those
        if (name == KERAS_WEIGHTS) != keras_file and name not in ("metadata.json", "config.json"):
            kind = "a Keras 3" if keras_file else "a cnnfast"
            raise InvalidFileError(f"{source}: unexpected member {name!r} in {kind} .keras file")
    if keras_file:
        return _load_keras_file(members, source, compile)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InvalidFileError(f"{source}: metadata.json does not describe a {FORMAT!r} file "
                               "(Keras .keras files with HDF5 weights are not supported)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InvalidFileError(f"{source}: unsupported format_version {meta.get('format_version')!r}")
    config = parse_json(members["config.json"], f"{source}: config.json")
    if not isinstance(config, dict) or config.get("class_name") not in ("Sequential", "Functional"):
        raise InvalidFileError(f"{source}: config.json must describe a Sequential or Functional model")
    weights_blob = members.get("model.weights.npz", b"")
    try:
        with weight_budget(len(weights_blob) // 4 + 16, source):
            model = deserialize_layer({"class_name": config["class_name"], "config": config.get("config")},
                                      f"{source}: config.json")
    except ConfigError as exc:  # most messages already start with the file; say it once
        message = str(exc) if str(exc).startswith(source) else f"{source}: config.json: {exc}"
        raise InvalidFileError(message) from exc
    if model.weights or weights_blob:
        if not weights_blob:
            raise InvalidFileError(f"{source}: missing model.weights.npz")
        arrays = read_npz(weights_blob, f"{source}: model.weights.npz", _expected_shapes(model))
        _assign(model, arrays, source)
    compile_config = config.get("compile_config")
    if compile and compile_config:
        _compile_from_config(model, compile_config, source)
        if "optimizer.npz" in members:
            _restore_optimizer(model, members["optimizer.npz"], source)
    return model


def _load_keras_file(members, source, compile):
    """A ``.keras`` file written by Keras 3 (``keras_format.py``)."""
    spec = parse_json(members["config.json"], f"{source}: config.json")
    if not isinstance(spec, dict) or spec.get("class_name") not in ("Sequential", "Functional", "Model") \
            or not isinstance(spec.get("config"), dict):
        raise InvalidFileError(f"{source}: config.json must describe a Keras Sequential or Functional model "
                               "(subclassed models cannot be rebuilt without running their code)")
    blob = members.get(KERAS_WEIGHTS, b"")
    try:
        config = model_config_from_keras(spec["class_name"], spec["config"], f"{source}: config.json")
        with weight_budget(len(blob) // 4 + 16, source):
            model = deserialize_layer({"class_name": "Functional" if spec["class_name"] == "Model"
                                       else spec["class_name"], "config": config}, f"{source}: config.json")
    except ConfigError as exc:
        message = str(exc) if str(exc).startswith(source) else f"{source}: config.json: {exc}"
        raise InvalidFileError(message) from exc
    if model.weights:
        if not blob:
            raise InvalidFileError(f"{source}: missing {KERAS_WEIGHTS}")
        _h5_format.load_weights_h5_bytes(model, blob, source)
    if compile and isinstance(spec.get("compile_config"), dict):
        compile_from_keras(model, spec["compile_config"], source)
    return model


def _compile_from_config(model, cc, source):
    if not isinstance(cc, dict):
        raise InvalidFileError(f"{source}: bad compile_config")
    try:
        optimizer = _optimizers.deserialize(cc.get("optimizer"))
        loss = None if cc.get("loss") is None else _losses.deserialize(cc["loss"])

        def metric_list(specs):
            if specs is None:
                return None
            if not isinstance(specs, list):
                raise ValueError("metrics must be a list")
            return [s if isinstance(s, str) else _metrics.get(s) for s in specs]

        weights = cc.get("loss_weights")
        if weights is not None and (isinstance(weights, bool) or not isinstance(weights, (int, float))):
            raise ValueError("bad loss_weights")
        model.compile(optimizer=optimizer, loss=loss, loss_weights=weights,
                      metrics=metric_list(cc.get("metrics")),
                      weighted_metrics=metric_list(cc.get("weighted_metrics")))
    except (TypeError, ValueError) as exc:
        raise InvalidFileError(f"{source}: bad compile_config ({exc})") from None


def _restore_optimizer(model, blob, source):
    opt = model.optimizer
    total = sum(v.size for v in model.trainable_weights)
    expected = {"iterations": ((), np.int64)}
    expected.update({f"flat/{name}": ((total,), np.float32) for name in opt._slot_names()})
    state = read_npz(blob, f"{source}: optimizer.npz", expected)
    try:
        opt.set_state(state, {"flat": total})
    except ValueError as exc:
        raise InvalidFileError(f"{source}: {exc}") from None


def save_weights(model, filepath, overwrite=True):
    """Save the model's weights to ``filepath``: ``.weights.npz`` (cnnfast's NumPy archive) or
    ``.weights.h5`` (Keras 3's HDF5 layout, which Keras's ``load_weights`` reads; needs h5py)."""
    path = os.fspath(filepath)
    if path.endswith(".weights.h5"):
        _h5_format.save_weights_h5(model, path, overwrite)
        return
    if path.endswith(".h5") or path.endswith(".hdf5"):
        raise ValueError(f"save_weights: the filepath must end in '.weights.h5' (Keras 3's HDF5 layout) "
                         f"or '.weights.npz', got {path!r}; the legacy .h5 layout is read, not written")
    if not path.endswith(".weights.npz"):
        raise ValueError(f"save_weights: the filepath must end in '.weights.npz' or '.weights.h5', "
                         f"got {path!r}")
    arrays = {name: var.value for name, var in weight_names(model)}
    arrays["__cnnfast__"] = np.array(json.dumps({"format": WEIGHTS_FORMAT, "format_version": 1}))
    data = npz_bytes(arrays)
    write_atomic(path, lambda f: f.write(data), overwrite)


def load_weights(model, filepath, skip_mismatch=False, by_name=False):
    """Load weights from a ``.weights.npz`` (save_weights), a ``.keras`` file (save), or one of
    Keras's HDF5 files (``.weights.h5``, legacy ``.h5``/``.hdf5``; needs h5py).

    ``by_name`` (legacy HDF5 only, as in Keras) matches layers by name instead of position; with
    ``skip_mismatch`` a layer or weight that does not fit is skipped with a warning. Nothing is
    changed unless the whole file matched."""
    source = os.fspath(filepath)
    if not isinstance(by_name, bool):
        raise TypeError(f"load_weights: by_name must be True or False, got {by_name!r}")
    is_h5 = source.endswith(".h5") or source.endswith(".hdf5")
    if by_name and not is_h5:
        raise ValueError(f"load_weights: by_name only applies to legacy '.h5' or '.hdf5' files, got {source!r}")
    if is_h5:
        _h5_format.load_weights_h5(model, source, skip_mismatch=skip_mismatch, by_name=by_name)
        return
    if source.endswith(".keras"):
        members = read_archive(source, allowed=MEMBERS + (KERAS_WEIGHTS,))
        if "model.weights.npz" not in members and "model.weights.h5" in members:  # written by Keras
            _h5_format.load_weights_h5_bytes(model, members[KERAS_WEIGHTS],
                                             f"{source}: model.weights.h5", skip_mismatch)
            return
        if "model.weights.npz" not in members:
            raise InvalidFileError(f"{source}: no model.weights.npz in this file")
        blob = members["model.weights.npz"]
        extra = ()
    else:
        size = os.path.getsize(source)
        with open(source, "rb") as f:
            blob = f.read(size + 1)
        extra = ("__cnnfast__",)
    expected = None if skip_mismatch else _expected_shapes(model)
    arrays = read_npz(blob, source, expected, extra_unicode=extra)
    marker = arrays.pop("__cnnfast__", None)
    if extra and marker is None:
        raise InvalidFileError(f"{source}: not a cnnfast weights file (no __cnnfast__ marker)")
    _assign(model, arrays, source, skip_mismatch)
