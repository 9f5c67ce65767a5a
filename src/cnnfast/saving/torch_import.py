"""Import weights from a PyTorch ``state_dict`` of the same architecture — never by unpickling.

Pass the state dict as a mapping of names to arrays (``{k: v.numpy() for k, v in
sd.items()}``, or the tensors themselves), or the path of a file: a ``torch.save``'d state dict
(``.pth`` / ``.pt``, read without torch and without unpickling code, see ``torch_files.py``), a
``.safetensors`` file, or an ``.npz`` written with ``np.savez(path, **that_mapping)``. Tensors are
matched to cnnfast's weighted layers **in order** (the order of ``model.weights`` and of the state
dict), or with ``by_name=True`` by name: layer ``L`` takes ``L.weight``, ``L.bias`` (and a
BatchNormalization ``L.running_mean`` / ``L.running_var``), as models whose layers are named after
the PyTorch modules are (``cnnfast.applications.torchvision``). They are converted:

* Conv2d ``weight (out, in/groups, kh, kw)`` (OIHW) -> Conv2D kernel HWIO: ``transpose(2, 3, 1, 0)``;
* depthwise Conv2d ``(cin*m, 1, kh, kw)`` -> DepthwiseConv2D ``(kh, kw, cin, m)``;
* ConvTranspose2d ``(in, out, kh, kw)`` -> Conv2DTranspose ``(kh, kw, out, in)``;
* Linear ``weight (out, in)`` -> Dense kernel ``(in, out)``; for the first Dense after a Flatten of
  an ``(h, w, c)`` feature map, the rows are also reordered from PyTorch's C,H,W flattening to
  cnnfast's H,W,C: ``W.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h*w*c, out)``;
* BatchNorm ``weight, bias, running_mean, running_var`` -> gamma, beta, moving_mean,
  moving_variance (``num_batches_tracked`` is dropped). Build the cnnfast layer with PyTorch's
  ``eps`` as ``epsilon`` and ``1 - momentum`` as ``momentum`` to keep training behaviour equal.

Any count or shape mismatch, and with ``by_name`` any missing or unused key, raises a ValueError
naming the cnnfast layer and the PyTorch key.
"""
from __future__ import annotations

import os

import numpy as np

from ..layers.base import note_weights_written
from ..models.archive import read_npz
from .torch_files import read_torch_weights

__all__ = ["load_torch_state_dict"]


def _to_numpy(value, key):
    if hasattr(value, "detach"):  # a torch tensor handed over directly
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"load_torch_state_dict: {key!r} is not a numeric array (dtype {arr.dtype})")
    return arr


def _read_state(state_dict):
    if isinstance(state_dict, (str, os.PathLike)):
        path = os.fspath(state_dict)
        if not path.endswith(".npz"):
            return list(read_torch_weights(path).items())
        with open(path, "rb") as f:
            data = f.read(os.path.getsize(path) + 1)
        arrays = read_npz(data, path)
        return list(arrays.items())
    if not hasattr(state_dict, "items"):
        raise TypeError("load_torch_state_dict: expected a mapping {name: array} or the path of a "
                        f".pth, .safetensors or .npz file, got {type(state_dict).__name__}")
    return [(str(k), _to_numpy(v, k)) for k, v in state_dict.items()]


def _flatten_source_shape(model, layer):
    """(h, w, c) if ``layer`` (a Dense) reads a Flatten of a 4-D map, possibly through shape-keeping
    weightless layers (Dropout, activations), else None."""
    plan = getattr(model, "_plan", None)
    if not plan:
        return None
    producer = {out: (lyr, ins) for lyr, ins, out, _ in plan}
    for lyr, ins, out, _ in plan:
        if lyr is not layer:
            continue
        slot = ins[0]
        while slot in producer:
            src, src_ins = producer[slot]
            name = type(src).__name__
            if name == "Flatten":
                in_shape = src._build_input_shape
                return tuple(in_shape[1:]) if in_shape is not None and len(in_shape) == 4 else None
            if src.weights or src._multi_input or name not in ("Dropout", "Activation", "ReLU", "LeakyReLU"):
                return None
            slot = src_ins[0]
        return None
    return None


def _weighted_layers(model):
    out = []
    for layer in model.layers:
        if hasattr(layer, "_plan"):
            out += [(sub, layer) for sub, _ in _weighted_layers(layer)]
        elif layer.weights:
            out.append((layer, model))
    return out


def load_torch_state_dict(model, state_dict, by_name=False) -> None:
    """Copy PyTorch weights into ``model`` (see the module docstring for the mapping).

    ``by_name=False`` pairs tensors with layers in order; ``by_name=True`` takes the tensors of
    layer ``L`` from the keys ``L.weight``, ``L.bias``, ... and requires every key to be used."""
    if not by_name and isinstance(state_dict, (str, os.PathLike)) and \
            os.fspath(state_dict).endswith(".safetensors"):
        raise ValueError("load_torch_state_dict: a .safetensors file does not keep the state dict's order "
                         "(its tensors are sorted), so it can only be matched by name: name the layers "
                         "after the PyTorch modules and pass by_name=True")
    items = [(k, v) for k, v in _read_state(state_dict) if not k.endswith("num_batches_tracked")]
    pos = 0
    by_key = dict(items)
    if by_name and len(by_key) != len(items):
        dupes = sorted({k for k, _ in items if sum(1 for j, _ in items if j == k) > 1})
        raise ValueError(f"load_torch_state_dict: the state dict repeats keys {dupes[:5]}")
    used = set()

    def take(layer, what):
        nonlocal pos
        if by_name:
            key = f"{layer.name}.{what}"
            if key not in by_key:
                raise ValueError(f"load_torch_state_dict: the state dict has no key {key!r} for the {what} "
                                 f"of layer '{layer.name}' ({type(layer).__name__}); is it the same "
                                 f"architecture?")
            used.add(key)
            return key, by_key[key]
        if pos >= len(items):
            raise ValueError(f"load_torch_state_dict: the state dict has no tensor left for the {what} of "
                             f"layer '{layer.name}' ({type(layer).__name__})")
        key, arr = items[pos]
        pos += 1
        return key, arr

    def check(layer, what, key, arr, shape):
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"load_torch_state_dict: layer '{layer.name}' ({type(layer).__name__}) {what} "
                             f"expects a tensor of shape {tuple(shape)}, got {key!r} with shape {arr.shape}")

    updates = []
    for layer, owner in _weighted_layers(model):
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D", "Conv2DTranspose"):
            kernel = layer.kernel.value
            key, w = take(layer, "weight")
            kh, kw, a, b = kernel.shape
            if kind == "Conv2D":
                check(layer, "weight", key, w, (b, a, kh, kw))
                updates.append((layer.kernel, w.transpose(2, 3, 1, 0)))
            elif kind == "DepthwiseConv2D":
                check(layer, "weight", key, w, (a * b, 1, kh, kw))
                updates.append((layer.kernel, w.transpose(2, 3, 1, 0).reshape(kh, kw, a, b)))
            else:
                check(layer, "weight", key, w, (b, a, kh, kw))
                updates.append((layer.kernel, w.transpose(2, 3, 1, 0)))
            if layer.bias is not None:
                key, bias = take(layer, "bias")
                check(layer, "bias", key, bias, layer.bias.shape)
                updates.append((layer.bias, bias))
        elif kind == "Dense":
            n_in, n_out = layer.kernel.shape
            key, w = take(layer, "weight")
            check(layer, "weight", key, w, (n_out, n_in))
            hwc = _flatten_source_shape(owner, layer)
            if hwc is not None and None not in hwc and np.prod(hwc) == n_in:
                h, wd, c = hwc
                # a (h, w, c, out) view of the kernel takes the permuted rows in one strided copy
                updates.append((layer.kernel, w.reshape(n_out, c, h, wd).transpose(2, 3, 1, 0), (h, wd, c, n_out)))
            else:
                updates.append((layer.kernel, w.T))
            if layer.bias is not None:
                key, bias = take(layer, "bias")
                check(layer, "bias", key, bias, layer.bias.shape)
                updates.append((layer.bias, bias))
        elif kind == "BatchNormalization":
            c = layer.moving_mean.shape
            for var, what in ((layer.gamma, "weight"), (layer.beta, "bias"),
                              (layer.moving_mean, "running_mean"), (layer.moving_variance, "running_var")):
                if var is None:
                    continue
                key, arr = take(layer, what)
                check(layer, what, key, arr, c)
                updates.append((var, arr))
        else:
            raise ValueError(f"load_torch_state_dict: no PyTorch mapping for layer '{layer.name}' ({kind})")
    if by_name:
        unused = [k for k, _ in items if k not in used]
        if unused:
            module = unused[0].rsplit(".", 1)[0]
            raise ValueError(f"load_torch_state_dict: {len(unused)} tensors of the state dict match no layer "
                             f"of model '{model.name}', starting with {unused[0]!r} (the model has no "
                             f"weighted layer '{module}' taking it); is it the same architecture?")
    elif pos != len(items):
        raise ValueError(f"load_torch_state_dict: {len(items) - pos} tensors of the state dict were not used, "
                         f"starting with {items[pos][0]!r}; is it the same architecture?")
    for var, arr, *target_shape in updates:   # only now, so that an error leaves the model unchanged
        target = var.value.view()
        if target_shape:
            target.shape = target_shape[0]   # a view of the weight (raises rather than copy)
        target[...] = arr
    note_weights_written()
