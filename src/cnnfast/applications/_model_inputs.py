"""The checks and the input tensor every Keras application starts with (Keras's prologue)."""
from __future__ import annotations

from ..layers.base import Input, InputLayer, KerasTensor

__all__ = ["check_top_arguments", "image_input", "source_inputs"]


def check_top_arguments(caller, weights, include_top, classes, pooling):
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"{caller}: If using `weights='imagenet'` with `include_top=True`, "
                         f"`classes` should be 1000.  Received classes={classes}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"{caller}: pooling must be None, 'avg' or 'max', got {pooling!r}")
    if include_top and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
        raise ValueError(f"{caller}: classes must be a positive integer, got {classes!r}")


def image_input(caller, input_tensor, input_shape):
    """``Input(shape=input_shape)``, or ``input_tensor`` when given (a symbolic tensor from
    ``cnnfast.Input`` or a layer call, as Keras requires of a tensor it does not wrap)."""
    if input_tensor is None:
        return Input(shape=input_shape)
    if not isinstance(input_tensor, KerasTensor):
        raise ValueError(f"{caller}: input_tensor must be a symbolic tensor (from cnnfast.Input or a "
                         f"layer call), got {type(input_tensor).__name__}")
    if len(input_tensor.shape) != 4:
        raise ValueError(f"{caller}: input_tensor must be a batch of images (rank 4, NHWC), got shape "
                         f"{input_tensor.shape}")
    return input_tensor


def source_inputs(tensor):
    """The Input tensors a symbolic tensor is computed from (Keras's ``get_source_inputs``), in
    the order they are first reached."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        t = stack.pop()
        layer, node_index, _ = t._keras_history
        if isinstance(layer, InputLayer):
            if id(t) not in seen:
                seen.add(id(t))
                found.append(t)
            continue
        stack.extend(reversed(layer._inbound_nodes[node_index].inputs))
    return found if len(found) > 1 else found[0]
