"""Inference plans: a model's forward pass compiled for one input shape.

``predict`` and ``predict_on_batch`` on a small batch spend more time in Python than in the
kernels: every layer re-validates arguments the model already guarantees (its own float32,
C-contiguous activations of known shapes). A plan validates each layer's arguments once, through
the same ``cnnfast.ops`` helpers the ops use, preallocates every output, and then runs one
``cnnfast._kernels`` call per layer. It covers chains of the layers of the tutorial CNNs (Conv2D
with ReLU, ReLU6 or no activation, MaxPooling2D, Flatten, Dense with ReLU / ReLU6 / softmax / none,
Dropout, Reshape, and the Permute that starts a model imported from an NCHW ONNX graph).

Any other graph (residual networks, Keras's and torchvision's applications) gets a graph plan:
every node runs its layer's inference forward pass with buffers kept from call to call, except
that a Conv2D or DepthwiseConv2D whose only reader is an inference BatchNormalization runs with
the batch norm folded into its kernel and bias, and the ReLU / ReLU6 that alone reads the batch
norm's output fused into the convolution's epilogue: one pass over the activation instead of
three. The folded weights are derived copies, rebuilt whenever the weights' generation
(``layers.base.weights_generation``: set_weights, assign, load_weights, optimiser steps and
training-mode passes move it) has moved since they were made; other weights are read when the
plan runs, so training or ``set_weights`` between calls is seen.

A plan's output is its own buffer, overwritten by the next call: callers copy it.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .. import _kernels
from .. import ops
from ..layers.activation import ReLU
from ..layers.base import weights_generation
from ..layers.conv import Conv2D, DepthwiseConv2D
from ..layers.core import Activation, Dense, Dropout
from ..layers.normalization import BatchNormalization
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
        steps = _compile(plan, tuple(shape), output_slot)
        return steps if steps is not None else _compile_graph(plan, output_slot)
    except (ValueError, TypeError, MemoryError):
        return None


# --------------------------------------------------------------------------------------------
# Graph plans


def _fused_activation(layer):
    """The kernels' activation name for a layer that is only a ReLU or ReLU6, else None."""
    if type(layer) is ReLU and layer.negative_slope == 0.0 and layer.threshold == 0.0:
        if layer.max_value is None:
            return "relu"
        return "relu6" if layer.max_value == 6.0 else None
    if type(layer) is Activation and layer._act_name in ("relu", "relu6"):
        return layer._act_name
    return None


class _FoldedConv:
    """A convolution with the inference batch norm after it folded in (and maybe a ReLU/ReLU6):
    kernel * s and (bias - mean) * s + beta, s = gamma / sqrt(variance + epsilon), per output
    channel, computed in float64 and rebuilt when the weights' generation moves."""

    def __init__(self, conv, bn, activation):
        self.conv, self.bn, self.activation = conv, bn, activation
        self.generation, self.kernel, self.bias, self.out, self.out_for = None, None, None, None, None

    def _fold(self):
        generation = weights_generation()   # before reading: a write during the fold moves it on
        conv, bn = self.conv, self.bn
        kernel = conv._kernel_value().astype(np.float64)      # HWIO; depthwise (kh, kw, 1, cin*m)
        var = bn.moving_variance.value.astype(np.float64)
        scale = 1.0 / np.sqrt(var + bn.epsilon)
        if bn.gamma is not None:
            scale = scale * bn.gamma.value
        bias = -bn.moving_mean.value.astype(np.float64)
        if conv.bias is not None:
            bias = bias + conv.bias.value
        bias = bias * scale
        if bn.beta is not None:
            bias = bias + bn.beta.value
        self.kernel = np.ascontiguousarray(kernel * scale, dtype=np.float32)
        self.bias = bias.astype(np.float32)
        self.generation = generation

    def __call__(self, x):
        if self.generation != weights_generation():
            self._fold()
        conv = self.conv
        groups = x.shape[-1] if type(conv) is DepthwiseConv2D else conv.groups
        y = ops.conv2d(x, self.kernel, bias=self.bias, strides=conv.strides, padding=conv.padding,
                       dilation=conv.dilation_rate, groups=groups, activation=self.activation,
                       out=self.out if self.out is not None and self.out_for == x.shape else None)
        self.out, self.out_for = y, x.shape
        return y


def _compile_graph(plan, output_slot):
    """One callable running the whole graph ``plan`` (one input, in slot 0), convolution + batch
    norm (+ ReLU/ReLU6) chains folded; None when no node could be folded (the general path is as
    fast then)."""
    readers = {}
    for i, (_, ins, _, _) in enumerate(plan):
        for s in ins:
            readers.setdefault(s, []).append(i)

    def sole_reader(slot, cls):
        r = readers.get(slot, [])
        if len(r) != 1 or slot == output_slot:
            return None
        j = r[0]
        layer, ins, _, multi = plan[j]
        return j if not multi and ins == (slot,) and cls(layer) else None

    steps, skip, folded = [], set(), []
    for i, (layer, ins, out, multi) in enumerate(plan):
        if i in skip:
            continue
        j = None
        if type(layer) in (Conv2D, DepthwiseConv2D) and layer._act_name == "linear" and not multi:
            j = sole_reader(out, lambda l: type(l) is BatchNormalization and l.built)
        if j is None:
            ctx = {"node_index": i}

            def run_layer(vals, layer=layer, ins=ins, multi=multi, ctx=ctx):
                return layer.forward([vals[s] for s in ins] if multi else vals[ins[0]], False, ctx)
            steps.append((run_layer, out))
            continue
        skip.add(j)
        out, activation = plan[j][2], None
        k = sole_reader(out, lambda l: _fused_activation(l) is not None)
        if k is not None:
            skip.add(k)
            out, activation = plan[k][2], _fused_activation(plan[k][0])
        step = _FoldedConv(layer, plan[j][0], activation)
        steps.append((lambda vals, step=step, src=ins[0]: step(vals[src]), out))
        folded.append(step)
    if not folded:
        return None
    n_slots = 1 + max(max((out for _, _, out, _ in plan), default=0), output_slot)

    def run_graph(x):
        vals = [None] * n_slots
        vals[0] = x
        for step, out in steps:
            vals[out] = step(vals)
        return vals[output_slot]
    run_graph.folded = folded   # what was folded, for tests and for looking at a plan
    return [run_graph]


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
