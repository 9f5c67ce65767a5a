"""Inference plans: a model's forward pass compiled for one input shape.

``predict`` and ``predict_on_batch`` on a small batch spend more time in Python than in the
kernels: every layer re-validates arguments the model already guarantees (its own float32,
C-contiguous activations of known shapes). A plan validates each layer's arguments once, through
the same ``cnnfast.ops`` helpers the ops use, preallocates every output, and then runs one
``cnnfast._kernels`` call per layer. It covers chains of the layers of the tutorial CNNs (Conv2D
with ReLU, ReLU6 or no activation, MaxPooling2D, Flatten, Dense with ReLU / ReLU6 / softmax / none,
Dropout, Reshape, and the Permute that starts a model imported from an NCHW ONNX graph); any
other layer, or a graph that is not a chain, keeps the general path. Weights are read when the
plan runs, so training or ``set_weights`` between calls is seen.

A plan's output is its own buffer, overwritten by the next call: callers copy it.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import _kernels
from ..layers.conv import Conv2D
from ..layers.core import Dense, Dropout
from ..layers.pooling import MaxPooling2D
from ..layers.reshaping import Flatten, Permute, Reshape
from ..ops import _conv, _pool

_OP = "predict"
_ACT = {"linear": 0, "relu": 1, "relu6": 2}   # the kernels' activation codes


def _value(var):
    return None if var is None else var.value


def _conv_step(layer, shape, pool):
    """Conv2D (and the MaxPooling2D after it, when ``pool`` is given and splitting the batch
    over the threads loses nothing) as one kernel call: (step, output shape, pooled?)."""
    if type(layer) is not Conv2D or layer._act_name not in _ACT or layer.groups != 1:
        return None
    w = layer.kernel.value
    _, strides, dilation, (ho, wo, pt, pl) = _conv._conv_signature(
        _OP, SimpleNamespace(shape=shape), w, 1, layer.strides, layer.padding, layer.dilation_rate)
    z_shape = (shape[0], ho, wo, layer.filters)
    if shape[3] == 0 or 0 in z_shape:
        return None
    if pool is not None and (layer._act_name == "relu6" or
                             not _conv.pooled_split_is_free(z_shape, w.shape, _kernels.get_num_threads())):
        pool = None
    hp = _conv._params(strides, (pt, pl), dilation, 1)
    act = _ACT[layer._act_name]
    if pool is None:
        z = np.empty(z_shape, np.float32)

        def conv(x):
            _kernels.conv2d_fwd(x, layer.kernel.value, _value(layer.bias), z, hp, act)
            return z
        return conv, z_shape, False
    g = _pool._geometry(_OP, z_shape, pool.pool_size, pool.strides, pool.padding)
    y = np.empty((g[0], g[4], g[5], g[3]), np.float32)
    y_flat = y.reshape(-1)

    def conv_pool(x):
        _kernels.conv2d_fwd_maxpool(x, layer.kernel.value, _value(layer.bias), z_shape, hp, act, g,
                                    y_flat, None, 4)
        return y
    return conv_pool, y.shape, True


def _max_pool_step(layer, shape):
    g = _pool._geometry(_OP, shape, layer.pool_size, layer.strides, layer.padding)
    y = np.empty((g[0], g[4], g[5], g[3]), np.float32)
    if y.size == 0:
        return None
    y_flat = y.reshape(-1)

    def pool(x):
        _kernels.maxpool2d_fwd(g, x.reshape(-1), y_flat, None, 4)
        return y
    return pool, y.shape


def _dense_step(layer, shape):
    name = layer._act_name
    if len(shape) != 2 or name not in ("linear", "relu", "relu6", "softmax") or 0 in shape or \
            shape[1] != layer.kernel.value.shape[0]:
        return None
    z = np.empty((shape[0], layer.units), np.float32)
    act = _ACT.get(name, 0)
    if name != "softmax":
        def dense(x):
            _kernels.sgemm(False, False, 1.0, x, layer.kernel.value, 0.0, z, _value(layer.bias), act)
            return z
        return dense, z.shape
    y = np.empty_like(z)
    z_flat, y_flat = z.reshape(-1), y.reshape(-1)

    def dense_softmax(x):
        _kernels.sgemm(False, False, 1.0, x, layer.kernel.value, 0.0, z, _value(layer.bias), False)
        _kernels.softmax_fwd(z_flat, y_flat, shape[0], layer.units, 1)
        return y
    return dense_softmax, y.shape


def _permute_step(layer, shape):
    """An imported NCHW model's one layout change, into a preallocated buffer."""
    if len(shape) != len(layer._perm):
        return None
    y = np.empty(tuple(shape[i] for i in layer._perm), np.float32)

    def permute(x):
        np.copyto(y, x.transpose(layer._perm))
        return y
    return permute, y.shape


def _identity(x):
    return x


def run(steps, x):
    for step in steps:
        x = step(x)
    return x


def compile_plan(plan, shape, output_slot):
    """The steps of a chain ``plan`` (a functional model's node list, input in slot 0, output in
    ``output_slot``) for inputs of ``shape``, as a list of callables, or None when some layer or
    the graph is not covered (or the arguments are invalid: the general path then raises the
    usual error)."""
    try:
        return _compile(plan, tuple(shape), output_slot)
    except (ValueError, TypeError, MemoryError):
        return None


def _compile(plan, shape, output_slot):
    steps, i, slot = [], 0, 0
    consumers = {}
    for _, ins, _, _ in plan:
        for s in ins:
            consumers[s] = consumers.get(s, 0) + 1
    while i < len(plan):
        layer, ins, out, multi = plan[i]
        if multi or ins != (slot,) or consumers.get(slot, 0) != 1:
            return None
        nxt = plan[i + 1] if i + 1 < len(plan) else None
        if isinstance(layer, Conv2D):
            pool = nxt[0] if nxt is not None and type(nxt[0]) is MaxPooling2D and \
                nxt[1] == (out,) and consumers.get(out, 0) == 1 else None
            step = _conv_step(layer, shape, pool)
            if step is not None and step[2]:
                i, out = i + 1, nxt[2]
        elif type(layer) is MaxPooling2D:
            step = _max_pool_step(layer, shape)
        elif type(layer) is Flatten:
            flat_shape = (shape[0], int(np.prod(shape[1:])))
            step = (lambda x, s=flat_shape: x.reshape(s)), flat_shape
        elif type(layer) is Dense:
            step = _dense_step(layer, shape)
        elif type(layer) is Dropout:
            step = _identity, shape
        elif type(layer) is Permute:
            step = _permute_step(layer, shape)
        elif type(layer) is Reshape:   # a view of the contiguous activation
            new_shape = (shape[0],) + tuple(layer.compute_output_shape((None,) + shape[1:])[1:])
            step = (lambda x, s=new_shape: x.reshape(s)), new_shape
        else:
            return None
        if step is None:
            return None
        steps.append(step[0])
        shape, slot, i = tuple(step[1]), out, i + 1
    return steps if steps and slot == output_slot else None
