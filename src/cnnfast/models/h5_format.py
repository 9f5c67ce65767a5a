"""Keras's HDF5 weight files, read and written through h5py (the optional ``cnnfast[h5]`` extra).

Two layouts exist, and ``load_weights`` tells them apart by their content:

* **Keras 3** (``model.save_weights("w.weights.h5")``, and ``model.weights.h5`` inside a Keras
  ``.keras`` zip). Every layer has a group named by its class and position, not by its name:
  ``layers/conv2d/vars``, ``layers/conv2d_1/vars``... (a nested model adds its own
  ``layers/<class>/`` level; a functional model's class is ``functional``), holding datasets
  ``0``, ``1``... in the layer's own variable order (trainable ones first, as created) and an
  attribute ``name``. The model itself has a root ``vars`` group.
* **Legacy** (Keras 2 and keras-applications files such as
  ``resnet50_weights_tf_dim_ordering_tf_kernels.h5``; ``model.save("m.h5")`` puts the same thing in
  a ``model_weights`` group). The root attribute ``layer_names`` lists the model's layers; each
  layer's group has a ``weight_names`` attribute naming its datasets, in
  ``trainable_weights + non_trainable_weights`` order (a nested model lists all of its weights
  that way). Loading matches layers with weights by position (or by name with ``by_name=True``),
  as Keras 3's ``legacy_h5_format`` does.

Positions are Keras's, not cnnfast's: a functional model's layers are ordered as Keras's
``map_graph`` orders them (by depth from the outputs, ties in traversal order), so that files
written by Keras for the same architecture line up even when the graph branches.

Reading is defensive: soft and external links, external or virtual datasets, non-numeric data
and datasets of an unexpected shape are refused before any array is read. Every array is read and
checked first; the model's weights change only when the whole file matched, so a failed load
leaves the model as it was.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np

from ..layers.base import InputLayer, to_snake_case
from .archive import InvalidFileError, write_atomic

__all__ = ["save_weights_h5", "load_weights_h5", "load_weights_h5_bytes", "keras_layer_order",
           "is_legacy_h5"]

_INSTALL_HINT = "pip install 'cnnfast[h5]'"


def _h5py(function):
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{function}: HDF5 weight files need the h5py package: {_INSTALL_HINT} "
                          "(or pip install h5py)") from None
    return h5py


# --------------------------------------------------------------------------------------------
# Keras's view of a model: layer order, class keys, per-layer variable order

def _is_model(layer) -> bool:
    return hasattr(layer, "_plan")


def _class_key(layer) -> str:
    """The snake-case class name Keras files use for ``layer`` (a cnnfast ``Model(inputs,
    outputs)`` is a Keras ``Functional``)."""
    name = type(layer).__name__
    if _is_model(layer) and name in ("Model", "Functional"):
        return "functional"
    return to_snake_case(name)


def keras_layer_order(model) -> list:
    """``model.layers`` in the order Keras 3 would list them.

    Sequential: its layers as stacked. Functional: Keras's ``map_graph`` order, i.e. operations
    sorted by decreasing depth (longest path to an output), ties broken by the order in which a
    depth-first walk from the outputs first meets them; input layers included, as Keras does.
    """
    if not hasattr(model, "_nodes") or type(model).__name__ == "Sequential" or not hasattr(model, "_outputs"):
        return list(model.layers)
    input_ids = {id(t) for t in model._inputs}
    finished, order, first_seen = set(), [], {}
    in_graph = {}
    for output in model._outputs:
        stack = [(output, False)]
        while stack:  # iterative post-order walk, so deep networks need no deep recursion
            tensor, expanded = stack.pop()
            layer, node_index, _ = tensor._keras_history
            node = layer._inbound_nodes[node_index]
            if expanded:
                finished.add(id(node))
                order.append(node)
                in_graph[id(node)] = node
                continue
            if id(node) in finished:
                continue
            is_input = isinstance(layer, InputLayer)
            if not is_input and id(tensor) in input_ids:
                finished.add(id(node))
                continue
            first_seen.setdefault(id(layer), (len(first_seen), layer))
            stack.append((tensor, True))
            if not is_input:
                stack.extend((t, False) for t in reversed(node.inputs))

    node_depth, layer_depth = {}, {}
    for node in reversed(order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        if isinstance(node.layer, InputLayer):
            continue
        for t in node.inputs:
            parent_layer, parent_index, _ = t._keras_history
            parent = parent_layer._inbound_nodes[parent_index]
            if id(parent) in in_graph:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for layer in model._input_layers:  # inputs no output depends on still belong to the model
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            first_seen[id(layer)] = (-1, layer)
    ranked = sorted(first_seen.values(), key=lambda item: (-layer_depth[id(item[1])], item[0]))
    return [layer for _, layer in ranked]


def _own_variables(layer) -> list:
    """A layer's variables as Keras stores them: created-trainable ones first, then the others."""
    own = layer._variables
    return [v for v in own if v.trainable] + [v for v in own if not v.trainable]


def _keras3_entries(model):
    """``(group path, layer, variables)`` for the model and every layer under it, in Keras 3's
    walk order; a layer met twice (shared) is listed once, as Keras skips visited objects."""
    entries, visited = [("", model, [])], {id(model)}

    def walk(container, prefix):
        used = {}
        for layer in keras_layer_order(container):
            key = _class_key(layer)
            if key in used:
                used[key] += 1
                key = f"{key}_{used[key]}"
            else:
                used[key] = 0
            if id(layer) in visited:
                continue
            visited.add(id(layer))
            path = f"{prefix}layers/{key}"
            if _is_model(layer):
                entries.append((path, layer, []))
                walk(layer, path + "/")
            else:
                entries.append((path, layer, _own_variables(layer)))

    walk(model, "")
    return entries


def _legacy_weights(layer, ancestors_trainable=True) -> list:
    """Keras's ``trainable_weights + non_trainable_weights`` of a top-level layer; for a nested
    model, of all its layers (in Keras's order) together."""
    trainable, frozen, seen = [], [], set()

    def collect(item, parent_trainable):
        active = parent_trainable and item._trainable
        if _is_model(item):
            for sub in keras_layer_order(item):
                collect(sub, active)
            return
        for var in _own_variables(item):
            if id(var) not in seen:
                seen.add(id(var))
                (trainable if active and var.trainable else frozen).append(var)

    collect(layer, ancestors_trainable)
    return trainable + frozen


# --------------------------------------------------------------------------------------------
# safe reading

def _safe_child(h5py, parent, name, want_group, source):
    """``parent[name]`` when it is a hard link to a group (``want_group``) or a dataset stored in
    this file; None when absent; InvalidFileError for links out of the file or the wrong kind."""
    try:
        if name not in parent:
            return None
        link = parent.get(name, getclass=True, getlink=True)
        if link in (h5py.SoftLink, h5py.ExternalLink):
            raise InvalidFileError(f"load_weights: {source}: '{parent.name}/{name}' is a {link.__name__}; links are "
                                   "not allowed in weight files")
        obj = parent[name]
    except (OSError, KeyError, RuntimeError) as exc:
        raise InvalidFileError(f"load_weights: {source}: cannot read '{parent.name}/{name}' (truncated or corrupt "
                               f"file?): {exc}") from None
    kind = h5py.Group if want_group else h5py.Dataset
    if not isinstance(obj, kind):
        raise InvalidFileError(f"load_weights: {source}: '{obj.name}' should be an HDF5 "
                               f"{'group' if want_group else 'dataset'}")
    if not want_group and (obj.external or obj.is_virtual):
        raise InvalidFileError(f"load_weights: {source}: dataset '{obj.name}' keeps its data outside the file")
    return obj


def _safe_path(h5py, root, path, want_group, source):
    current = root
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise InvalidFileError(f"load_weights: {source}: empty HDF5 path {path!r}")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        current = _safe_child(h5py, current, part, want_group or not last, source)
        if current is None:
            return None
    return current


def _read_array(dataset, expected_shape, source, what):
    """The dataset as float32, after checking its dtype and that its shape is ``expected_shape``
    (None: any shape, but then nothing is read; the caller reports the mismatch)."""
    if dataset.dtype.kind not in "fiub":
        raise InvalidFileError(f"load_weights: {source}: {what} ('{dataset.name}') holds {dataset.dtype} data, "
                               "expected numbers")
    if tuple(dataset.shape) != tuple(expected_shape):
        return None
    try:
        return np.asarray(dataset[()], dtype=np.float32).reshape(expected_shape)
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidFileError(f"load_weights: {source}: cannot read {what} ('{dataset.name}'; truncated or corrupt "
                               f"file?): {exc}") from None


def _string_list_attr(group, name, source):
    """A list-of-strings attribute as Keras writes them (split into ``name0``, ``name1``... when
    too long for one HDF5 object header)."""
    try:
        if name in group.attrs:
            chunks = [group.attrs[name]]
        else:
            chunks, i = [], 0
            while f"{name}{i}" in group.attrs:
                chunks.append(group.attrs[f"{name}{i}"])
                i += 1
    except (OSError, RuntimeError) as exc:
        raise InvalidFileError(f"load_weights: {source}: cannot read attribute {name!r} of '{group.name}': {exc}") from None
    out = []
    for chunk in chunks:
        values = np.atleast_1d(np.asarray(chunk))
        if values.size == 0:
            continue
        for v in values.tolist():
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf8")
                except UnicodeDecodeError:
                    raise InvalidFileError(f"load_weights: {source}: attribute {name!r} of '{group.name}' is not "
                                           "UTF-8 text") from None
            if not isinstance(v, str):
                raise InvalidFileError(f"load_weights: {source}: attribute {name!r} of '{group.name}' should list "
                                       f"strings, found {type(v).__name__}")
            out.append(v)
    return out


# --------------------------------------------------------------------------------------------
# writing (Keras 3 layout)

def save_weights_h5(model, filepath, overwrite=True):
    """Write ``model``'s weights to ``filepath`` (``.weights.h5``) in Keras 3's layout, which
    ``keras_model.load_weights`` reads."""
    h5py = _h5py("save_weights")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for path, layer, variables in _keras3_entries(model):
            group = f.create_group(f"{path}/vars" if path else "vars")
            group.attrs["name"] = layer.name
            for i, var in enumerate(variables):
                group.create_dataset(str(i), data=np.asarray(var.value, dtype=np.float32))
    data = buffer.getvalue()
    write_atomic(os.fspath(filepath), lambda fileobj: fileobj.write(data), overwrite)


# --------------------------------------------------------------------------------------------
# reading

def is_legacy_h5(f) -> bool:
    """Whether an open HDF5 file is in the legacy layout (``layer_names`` at the root or in a
    ``model_weights`` group)."""
    return ("layer_names" in f.attrs or "layer_names0" in f.attrs
            or ("model_weights" in f and "layers" not in f))


def load_weights_h5(model, filepath, skip_mismatch=False, by_name=False):
    """Load an HDF5 weights file (either layout) into ``model``; see the module docstring."""
    h5py = _h5py("load_weights")
    source = os.fspath(filepath)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"load_weights: no such file: {source!r}")
    _load_from(h5py, model, source, source, skip_mismatch, by_name)


def load_weights_h5_bytes(model, blob, source, skip_mismatch=False):
    """Load the Keras 3 layout from bytes (the ``model.weights.h5`` member of a Keras zip)."""
    h5py = _h5py("load_weights")
    _load_from(h5py, model, io.BytesIO(blob), source, skip_mismatch, False)


def _load_from(h5py, model, target, source, skip_mismatch, by_name):
    try:
        f = h5py.File(target, "r")
    except (OSError, ValueError) as exc:
        raise InvalidFileError(f"load_weights: {source}: not a readable HDF5 file (truncated or "
                               f"corrupt?): {exc}") from None
    try:
        with f:
            assignments = _match_file(h5py, f, model, source, skip_mismatch, by_name)
    except (OSError, RuntimeError, KeyError) as exc:  # h5py's errors on damaged metadata
        raise InvalidFileError(f"load_weights: {source}: cannot read the file (truncated or corrupt?): "
                               f"{type(exc).__name__}: {exc}") from None
    for var, array in assignments:  # everything matched: only now touch the model
        var.value[...] = array


def _match_file(h5py, f, model, source, skip_mismatch, by_name):
    """``(variable, float32 array)`` for every weight the file sets, after all checks."""
    if is_legacy_h5(f):
        root = f
        if "layer_names" not in f.attrs and "layer_names0" not in f.attrs:
            root = _safe_child(h5py, f, "model_weights", True, source)
        return _match_legacy(h5py, root, model, source, skip_mismatch, by_name)
    if "layers" in f or "vars" in f:
        if by_name:
            raise ValueError(f"load_weights: by_name only applies to legacy HDF5 files; {source} is "
                             "in Keras 3's layout, where layers are matched by class and position")
        return _match_keras3(h5py, f, model, source, skip_mismatch)
    raise InvalidFileError(f"load_weights: {source}: not a Keras weights file (no 'layers' "
                           "group and no 'layer_names' attribute)")


def _match_keras3(h5py, f, model, source, skip_mismatch):
    assignments = []
    for path, layer, variables in _keras3_entries(model):
        if _is_model(layer):  # a model's weights are its layers', listed after it
            continue
        if not variables:  # a weightless layer where the file has weights: another architecture
            group = _safe_path(h5py, f, f"{path}/vars", True, source)
            if group is not None and len(group):
                _mismatch(f"layer '{layer.name}' ({type(layer).__name__}, '{path}') has no weights, "
                          f"the file has {len(group)} there", source, skip_mismatch)
            continue
        group = _safe_path(h5py, f, f"{path}/vars", True, source)
        stored = [] if group is None else sorted(str(key) for key in group.keys())
        expected_names = [str(i) for i in range(len(variables))]
        where = f"layer '{layer.name}' ({type(layer).__name__}, '{path}')"
        if stored != sorted(expected_names):
            found = "nothing" if not stored else f"{len(stored)} ({', '.join(stored)})"
            _mismatch(f"{where} expects {len(variables)} weight(s) "
                      f"{[v.name for v in variables]} at '{path}/vars', the file has {found}",
                      source, skip_mismatch)
            continue
        layer_arrays, ok = [], True
        for name, var in zip(expected_names, variables):
            dataset = _safe_child(h5py, group, name, False, source)
            if dataset is None:  # listed by keys() yet not found: a damaged group
                raise InvalidFileError(f"load_weights: {source}: cannot read '{path}/vars/{name}'")
            array = _read_array(dataset, var.shape, source, f"{where} weight {name}")
            if array is None:
                _mismatch(f"{where} weight '{var.name}' has shape {var.shape}, the file's "
                          f"'{dataset.name}' has shape {tuple(dataset.shape)}", source, skip_mismatch)
                ok = False
                break
            layer_arrays.append((var, array))
        if ok:
            assignments.extend(layer_arrays)
    return assignments


def _mismatch(problem, source, skip_mismatch):
    if skip_mismatch:
        warnings.warn(f"load_weights: {source}: skipping: {problem}", stacklevel=4)
    else:
        raise ValueError(f"load_weights: {source}: {problem}")


def _legacy_layer_values(h5py, root, name, source):
    group = _safe_child(h5py, root, name, True, source)
    if group is None:
        raise InvalidFileError(f"load_weights: {source}: layer_names lists '{name}' but the file has "
                               "no group for it")
    names = _string_list_attr(group, "weight_names", source)
    datasets = []
    for weight_name in names:
        dataset = _safe_path(h5py, group, weight_name, False, source)
        if dataset is None:
            raise InvalidFileError(f"load_weights: {source}: layer '{name}' lists weight "
                                   f"'{weight_name}' but the file has no such dataset")
        datasets.append(dataset)
    return datasets


def _set_legacy(assignments, variables, datasets, label, source, skip_mismatch):
    for var, dataset in zip(variables, datasets):
        array = _read_array(dataset, var.shape, source, f"{label} weight '{dataset.name}'")
        if array is None:
            _mismatch(f"{label}: weight '{var.path}' expects shape {var.shape}, the file's "
                      f"'{dataset.name}' has shape {tuple(dataset.shape)}", source, skip_mismatch)
            continue
        assignments.append((var, array))


def _match_legacy(h5py, root, model, source, skip_mismatch, by_name):
    file_names = _string_list_attr(root, "layer_names", source)
    assignments = []
    if by_name:
        index = {}
        for layer in keras_layer_order(model):
            index.setdefault(layer.name, []).append(layer)
        for k, name in enumerate(file_names):
            if name not in index:
                continue
            datasets = _legacy_layer_values(h5py, root, name, source)
            for layer in index[name]:
                variables = _legacy_weights(layer, model._trainable)
                label = f"layer #{k} (named '{layer.name}')"
                if len(datasets) != len(variables):
                    _mismatch(f"{label} expects {len(variables)} weight(s), the file has "
                              f"{len(datasets)}", source, skip_mismatch)
                    continue
                _set_legacy(assignments, variables, datasets, label, source, skip_mismatch)
        return assignments

    model_layers = [(layer, _legacy_weights(layer, model._trainable)) for layer in keras_layer_order(model)]
    model_layers = [(layer, v) for layer, v in model_layers if v]
    file_layers = []
    for name in file_names:
        datasets = _legacy_layer_values(h5py, root, name, source)
        if datasets:
            file_layers.append((name, datasets))
    if len(model_layers) != len(file_layers):
        raise ValueError(f"load_weights: {source}: layer count mismatch: the model has "
                         f"{len(model_layers)} layer(s) with weights "
                         f"{[layer.name for layer, _ in model_layers][:8]}"
                         f"{'...' if len(model_layers) > 8 else ''}, the file has {len(file_layers)} "
                         f"{[name for name, _ in file_layers][:8]}{'...' if len(file_layers) > 8 else ''}")
    for k, ((layer, variables), (name, datasets)) in enumerate(zip(model_layers, file_layers)):
        label = f"layer #{k} (named '{layer.name}' in the model, '{name}' in the file)"
        if len(datasets) != len(variables):
            raise ValueError(f"load_weights: {source}: weight count mismatch for {label}: the layer "
                             f"expects {len(variables)} weight(s) {[tuple(v.shape) for v in variables]}, "
                             f"the file has {len(datasets)} {[tuple(d.shape) for d in datasets]}")
        _set_legacy(assignments, variables, datasets, label, source, skip_mismatch)
    if "top_level_model_weights" in root:
        extra = _legacy_layer_values(h5py, root, "top_level_model_weights", source)
        if extra:
            raise ValueError(f"load_weights: {source}: the file has {len(extra)} top-level model "
                             "weight(s); cnnfast models have none of their own")
    return assignments
