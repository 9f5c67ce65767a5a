"""Layer, Variable, symbolic tensors and the InputLayer: the machinery every layer shares.

A layer has a Keras face and a training face.

Keras face: ``Layer(name=..., trainable=..., input_shape=...)``, lazy ``build(input_shape)`` that
creates weights with ``add_weight``, ``compute_output_shape``, ``get_config``/``from_config``,
``weights``/``get_weights``/``set_weights``/``count_params``, and ``__call__`` on either a NumPy
array (eager inference: returns an array) or a symbolic ``KerasTensor`` from ``Input`` (records a
``Node`` in the graph, which is how the functional ``Model`` is built).

Training face (used by models; no tape, each layer writes its own backward):

* ``forward(x, training, ctx) -> y``: ``ctx`` is a dict owned by the caller for one call site of
  the layer (one graph node), kept between steps. The layer stashes what its backward needs there
  and takes its output buffers from it (:func:`buffer`), so a training step allocates no new
  activation memory once shapes are stable. Eager calls pass a fresh dict, so nothing returned to
  a user is ever overwritten later.
* ``backward(dy, ctx, need_dx) -> dx``: writes the weight gradients into ``Variable.grad`` (views
  into the model's single flat gradient buffer) and returns the input gradient (None when
  ``need_dx`` is False, which spares the first layer's costly input gradient). A layer used at
  several call sites adds its gradients up: :func:`grad_target` says whether a gradient slot was
  already written during the current step (a per-step generation counter, so nothing is zeroed).
"""
from __future__ import annotations

import itertools
import math
import os
import re
import threading
import warnings
from collections import defaultdict

import numpy as np

from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from ..ops._checks import human_bytes

__all__ = ["Layer", "Variable", "KerasTensor", "Node", "InputLayer", "Input", "buffer", "grad_target",
           "new_grad_generation", "set_rng_step", "rng_step", "to_snake_case", "unique_name",
           "standardize_shape", "standardize_input_dtype", "symbolic_mask", "add_layer_loss",
           "collect_layer_losses"]

# --------------------------------------------------------------------------------------------
# names
_NAME_UIDS: defaultdict = defaultdict(int)


def to_snake_case(name: str) -> str:
    """Keras's rule: ``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` -> ``max_pooling2d``, ``ReLU`` -> ``re_lu``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """``prefix`` the first time in this process, then ``prefix_1``, ``prefix_2``... (as Keras)."""
    n = _NAME_UIDS[prefix]
    _NAME_UIDS[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


# --------------------------------------------------------------------------------------------
# shapes
def standardize_shape(shape, what: str, allow_none: bool = True) -> tuple:
    """A shape as a tuple of positive ints (and None where allowed), or a clear ValueError."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{what} must be a tuple of integers, got {shape!r}")
    out = []
    for s in shape:
        if s is None and allow_none:
            out.append(None)
            continue
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"{what} must hold non-negative integers{' or None' if allow_none else ''}, "
                             f"got {tuple(shape)!r}")
        out.append(int(s))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# dtypes of model inputs. Weights and every float computation are float32; integer inputs (token
# ids) and string inputs (raw text) flow through the graph to the first layer that consumes them
# (Embedding, TextVectorization). A float layer fed integers gets them as float32, as Keras
# casts; strings reach only layers that declare they take them.
_INPUT_DTYPES = {"float32": "float32", "int32": "int32", "int64": "int64", "string": "string",
                 "str": "string", "int": "int32", "float": "float32"}
_PY_DTYPES = {str: "string", int: "int32", float: "float32"}  # Keras's map on the torch backend


def standardize_input_dtype(dtype, what: str) -> str:
    """``dtype`` of an ``Input`` as Keras spells it: ``"float32"`` (None), ``"int32"``,
    ``"int64"`` or ``"string"`` (``str``); anything else is a clear ValueError."""
    if dtype is None:
        return "float32"
    name = _PY_DTYPES.get(dtype) if isinstance(dtype, type) and dtype in _PY_DTYPES else None
    if name is None:
        try:
            name = _INPUT_DTYPES.get(dtype if isinstance(dtype, str) else np.dtype(dtype).name)
        except TypeError:
            name = None
    if name is None:
        raise ValueError(f"{what}: cnnfast inputs are float32, int32, int64 or string, got dtype={dtype!r}")
    return name


def numpy_dtype(dtype: str):
    """The NumPy dtype holding values of a tensor dtype (strings live in object arrays)."""
    return object if dtype == "string" else np.dtype(dtype)


def format_shape(shape) -> str:
    """``(None, 28, 28, 1)`` as Keras prints shapes in messages."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


# --------------------------------------------------------------------------------------------
# Per-step state. A training step runs in one thread from start to end, so the state of the step
# in progress (its gradient generation, the step number random layers use, a load-time weight
# budget) is thread-local, as PyTorch's grad mode is: models trained, built or loaded in other
# threads at the same time never see it.
class _StepState(threading.local):
    generation = 1          # the gradient generation of the step in progress in this thread
    rng_step = None         # the optimizer step random layers (Dropout) use, None outside fit
    budget = None           # (remaining floats, source file) while a file loads in this thread
    skip_init = False       # weights created while loading are zeros, overwritten by the file
    recording = False       # a backward pass will follow the forward pass in progress
    layer_losses = None     # the losses layers add in the forward pass in progress (a list), or None


_STATE = _StepState()
_GENERATIONS = itertools.count(2)  # process-wide and unique: a generation never repeats


def new_grad_generation() -> int:
    """Start a new backward pass in this thread: every gradient slot counts as unwritten again.

    Generations come from one process-wide counter (``next`` on it is atomic), so a generation
    started by another thread can never equal this thread's; the current one is thread-local.
    """
    _STATE.generation = gen = next(_GENERATIONS)
    return gen


def grad_target(var: "Variable") -> tuple:
    """``(grad_array, accumulate)``: accumulate is True when ``var.grad`` was already written in
    this backward pass (the layer is shared), so the new contribution must be added."""
    gen = _STATE.generation
    if var._grad_generation == gen:
        return var.grad, True
    var._grad_generation = gen
    return var.grad, False


def set_rng_step(step) -> None:
    """Set by a model around a training step (in the thread running it): the step number random
    layers (Dropout) use."""
    _STATE.rng_step = step


def rng_step():
    return _STATE.rng_step


def recording() -> bool:
    """True while a forward pass that a backward pass will follow runs in this thread.

    ``training`` says how a layer computes (batch statistics, dropout); this says whether it must
    keep what its backward needs (a max-pool's argmax). They differ for a layer called with
    ``training=False`` inside a model being trained (a frozen base model during fine-tuning)."""
    return _STATE.recording


class record_for_backward:
    """Context manager: forward passes inside keep their backward state when ``on``."""

    def __init__(self, on: bool):
        self.on = bool(on)

    def __enter__(self):
        self._saved = _STATE.recording
        _STATE.recording = self._saved or self.on
        return self

    def __exit__(self, *exc):
        _STATE.recording = self._saved
        return False


def add_layer_loss(value) -> None:
    """Add ``value`` to the loss of the training or evaluation step in progress in this thread
    (Keras's ``Layer.add_loss``, e.g. ActivityRegularization's penalty). Outside such a step (an
    eager call, predict) nothing collects it. The layer's backward adds the loss's gradient."""
    if _STATE.layer_losses is not None:
        _STATE.layer_losses.append(float(value))


class collect_layer_losses:
    """Context manager around a model's forward pass: ``total`` is then the sum of the losses
    layers added with :func:`add_layer_loss` (0.0 when none did)."""

    def __enter__(self):
        self._saved = _STATE.layer_losses
        _STATE.layer_losses = self._losses = []
        return self

    def __exit__(self, *exc):
        _STATE.layer_losses = self._saved
        return False

    @property
    def total(self) -> float:
        return float(sum(self._losses))


def buffer(ctx: dict, key: str, shape: tuple) -> np.ndarray:
    """A float32 buffer of ``shape`` owned by ``ctx`` and reused by later steps of the same shape."""
    k = (key, shape)
    buf = ctx.get(k)
    if buf is None:
        buf = ctx[k] = np.empty(shape, dtype=np.float32)
    return buf


# --------------------------------------------------------------------------------------------
# allocation budget (set while loading a file, so a forged config cannot allocate terabytes)
class weight_budget:
    """Context manager: weights created inside, in this thread, may hold at most ``max_elements``
    floats in total (thread-local: layers built meanwhile in other threads are not affected)."""

    def __init__(self, max_elements: int, source: str):
        self.max_elements, self.source = int(max_elements), source

    def __enter__(self):
        self._saved = _STATE.budget, _STATE.skip_init
        _STATE.budget, _STATE.skip_init = [self.max_elements, self.source], True
        return self

    def __exit__(self, *exc):
        _STATE.budget, _STATE.skip_init = self._saved
        return False


def _physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


_PHYSICAL_MEMORY = _physical_memory_bytes()


def _check_weight_size(layer: str, cls: str, name: str, shape: tuple, size: int) -> None:
    """Refuse, naming the layer and the shape, a weight larger than this machine's memory."""
    limit = _PHYSICAL_MEMORY if _PHYSICAL_MEMORY else 2**62
    if 4 * size > limit:
        raise MemoryError(f"layer '{layer}' ({cls}): weight '{name}' of shape {shape} needs "
                          f"{human_bytes(4 * size)}, more than this machine's {human_bytes(limit)} of memory")


# --------------------------------------------------------------------------------------------
class Variable:
    """A weight: ``value`` (float32 ndarray, possibly a view into a model's flat buffer) and
    ``grad`` (same shape). ``numpy()`` returns a copy; ``assign`` writes in place."""

    __slots__ = ("name", "path", "trainable", "value", "grad", "_grad_generation", "regularizer",
                 "constraint")

    def __init__(self, value: np.ndarray, name: str, path: str, trainable: bool):
        self.value = value
        self.grad = np.zeros_like(value) if trainable else None
        self.name, self.path, self.trainable = name, path, trainable
        self._grad_generation = 0
        self.regularizer = self.constraint = None   # see cnnfast.regularizers / constraints

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return "float32"

    @property
    def size(self):
        return self.value.size

    def numpy(self) -> np.ndarray:
        return self.value.copy()

    def assign(self, value) -> None:
        arr = np.asarray(value)
        if arr.shape != self.value.shape:
            raise ValueError(f"Variable {self.path}: cannot assign a value of shape {arr.shape} to a "
                             f"variable of shape {self.value.shape}")
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"Variable {self.path}: cannot assign values of dtype {arr.dtype}")
        self.value[...] = arr
        note_weights_written()

    def __array__(self, dtype=None, copy=None):
        return self.value.astype(dtype) if dtype is not None else self.value

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.value.shape}, dtype=float32>"


# --------------------------------------------------------------------------------------------
# The weights' generation: a counter that every write to weights moves on (Variable.assign,
# set_weights, loading, an optimiser step, a forward pass in training mode, which updates batch-norm
# statistics). Inference plans keep weights derived from the model's (batch norm folded into the
# convolution before it) and rebuild them when the generation has moved since.
_weights_generation = [0]


def note_weights_written() -> None:
    """Say that some weights may have changed (derived copies must be rebuilt)."""
    _weights_generation[0] += 1


def weights_generation() -> int:
    return _weights_generation[0]


_NODE_IDS = itertools.count()


class KerasTensor:
    """A symbolic tensor: a shape with a None batch axis and a dtype, produced by ``Input`` or a
    layer call. ``_keras_mask`` is the symbolic mask (a bool KerasTensor) when the layer that made
    it computes one (``Embedding(mask_zero=True)`` and the masking layers after it), else None."""

    __slots__ = ("shape", "name", "_keras_history", "dtype", "_keras_mask")

    def __init__(self, shape, name=None, history=None, dtype="float32"):
        self.shape = tuple(shape)
        self.name = name
        self._keras_history = history  # (layer, node_index, tensor_index)
        self.dtype = dtype
        self._keras_mask = None

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError("A symbolic KerasTensor has no values: it describes a graph built with "
                        "Input(); pass NumPy arrays to a Model to compute something")


def symbolic_mask(tensor: KerasTensor) -> KerasTensor:
    """The symbolic mask of a layer's output in a graph: a bool tensor of ``tensor``'s shape."""
    return KerasTensor(tensor.shape, name=f"{tensor.name}_mask", dtype="bool")


class Node:
    """One call of a layer in a graph: its input tensors, its output tensor, and the ``training``
    argument given in that call (None when not given: the model's mode then decides)."""

    __slots__ = ("layer", "inputs", "outputs", "uid", "multi_input", "training")

    def __init__(self, layer, inputs, outputs, multi_input, training=None):
        self.layer, self.inputs, self.outputs = layer, list(inputs), list(outputs)
        self.multi_input = multi_input
        self.training = None if training is None else bool(training)
        self.uid = next(_NODE_IDS)


# --------------------------------------------------------------------------------------------
class Layer:
    """Base class of every layer (``keras.layers.Layer``); see the module docstring."""

    #: layers whose forward takes a list of inputs (Add, Concatenate, ...)
    _multi_input = False
    #: the input dtypes ``forward`` takes; integer inputs reach float-only layers as float32
    _input_dtypes = ("float32",)
    #: Keras's flag: the layer passes a mask on (``compute_mask``); a layer without it drops one
    supports_masking = False
    #: the layer's ``forward`` takes ``mask=`` (the mask of its input, or None)
    _consumes_mask = False

    def __init__(self, *, trainable=True, name=None, dtype=None, input_shape=None, input_dim=None,
                 batch_size=None, batch_input_shape=None, **kwargs):
        cls = type(self).__name__
        kwargs.pop("autocast", None)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {cls}: {kwargs}")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{cls}: cnnfast computes in float32, got dtype={dtype!r}")
        if name is None:
            name = unique_name(to_snake_case(cls))
        elif not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"{cls}: name must be a non-empty string without '/', got {name!r}")
        self.name = name
        self._trainable = bool(trainable)
        self.built = False
        self._variables: list = []
        self._inbound_nodes: list = []
        self._build_input_shape = None
        self._output_shape = None
        self._input_spec = None  # (ndim, {axis: size}) checked on eager calls
        self._batch_input_shape = None
        if batch_input_shape is not None:
            self._batch_input_shape = standardize_shape(batch_input_shape, f"{cls}: batch_input_shape")
        elif input_shape is not None or input_dim is not None:
            if input_shape is None:
                input_shape = (input_dim,)
            shape = standardize_shape(input_shape, f"{cls}: input_shape")
            self._batch_input_shape = (batch_size,) + shape

    # -- weights -----------------------------------------------------------------------------
    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, name=None,
                   regularizer=None, constraint=None, **kwargs) -> Variable:
        """Create a float32 weight of ``shape`` initialised by ``initializer`` (Keras signature).
        ``regularizer`` adds its penalty to the training loss, ``constraint`` projects the weight
        after each optimizer step (``cnnfast.regularizers``, ``cnnfast.constraints``)."""
        cls = type(self).__name__
        regularizer = _regularizers.get(regularizer, f"{cls} '{self.name}': regularizer of weight {name!r}")
        constraint = _constraints.get(constraint, f"{cls} '{self.name}': constraint of weight {name!r}")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{cls}: weights are float32, got dtype={dtype!r}")
        shape = standardize_shape(() if shape is None else shape, f"{cls}: weight shape", allow_none=False)
        name = name or f"variable_{len(self._variables)}"
        size = math.prod(shape)
        budget = _STATE.budget
        if budget is not None:
            if size > budget[0]:
                raise ValueError(f"{budget[1]}: layer '{self.name}' declares a weight of shape "
                                 f"{shape}, more than the file's weights can hold")
            budget[0] -= size
        _check_weight_size(self.name, cls, name, shape, size)
        init = None
        if not _STATE.skip_init:
            init = _initializers.get("glorot_uniform" if initializer is None else initializer,
                                     f"{cls} '{self.name}': initializer")
        try:
            value = np.zeros(shape, np.float32) if init is None else \
                np.asarray(init(shape, "float32"), dtype=np.float32, order="C")
        except MemoryError:
            raise MemoryError(f"layer '{self.name}' ({cls}): not enough memory for weight '{name}' of shape "
                              f"{shape} ({human_bytes(4 * size)})") from None
        if init is not None and value.shape != shape:
            raise ValueError(f"{cls}: initializer returned shape {value.shape}, expected {shape}")
        var = Variable(value, name, f"{self.name}/{name}", bool(trainable))
        var.regularizer, var.constraint = regularizer, constraint
        self._variables.append(var)
        return var

    @property
    def variables(self):
        return list(self._variables)

    @property
    def weights(self):
        return list(self._variables)

    @property
    def trainable_weights(self):
        return [v for v in self._variables if v.trainable] if self._trainable else []

    @property
    def non_trainable_weights(self):
        if not self._trainable:
            return list(self._variables)
        return [v for v in self._variables if not v.trainable]

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)

    @property
    def losses(self) -> list:
        """Keras's ``losses``: activity penalties of the last call, then weight penalties."""
        return _regularizers.layer_losses(self)

    def get_weights(self) -> list:
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights) -> None:
        """Copy ``weights`` (a list of arrays in ``self.weights`` order) into the layer, in place."""
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f"Layer '{self.name}': set_weights expected a list of {len(own)} arrays "
                             f"(shapes {[v.shape for v in own]}), got {len(weights)}")
        arrays = []
        for var, w in zip(own, weights):
            arr = np.asarray(w)
            if arr.shape != var.shape:
                raise ValueError(f"Layer '{self.name}': weight '{var.name}' has shape {var.shape}, "
                                 f"got an array of shape {arr.shape}")
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"Layer '{self.name}': weight '{var.name}' needs a real array, got "
                                f"dtype {arr.dtype}")
            arrays.append(arr)
        for var, arr in zip(own, arrays):
            var.value[...] = arr
        note_weights_written()

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"You tried to call count_params on layer '{self.name}', but the layer "
                             "isn't built. Build it first (call it on data, or give the model an "
                             "input shape).")
        return int(sum(v.size for v in self.weights))

    # -- shapes and building -----------------------------------------------------------------
    def build(self, input_shape) -> None:
        """Create the weights for ``input_shape`` (batch axis included, as None). Override."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def _output_dtype(self, input_dtype):
        """The dtype of the output for inputs of ``input_dtype`` (a list for multi-input layers)."""
        return "float32"

    def compute_mask(self, inputs, previous_mask):
        """Keras's ``compute_mask``: the mask of the output, called only on layers that
        ``supports_masking``; by default the input's mask passes through unchanged. In a graph
        it is called once on the symbolic tensors (to know which values carry a mask), then on
        every forward pass with the arrays."""
        return previous_mask

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(input_shape)
            self.built = True
            self._build_input_shape = input_shape
            self._output_shape = self.compute_output_shape(input_shape)
        self._check_input_shape(input_shape)

    def _check_input_shape(self, shape):
        """Raise a clear error if ``shape`` (batch axis first) cannot feed this built layer."""
        spec = self._input_spec
        if spec is None or self._multi_input:
            return
        ndim, axes = spec
        if ndim is not None and len(shape) != ndim:
            raise ValueError(f"Input of layer '{self.name}' ({type(self).__name__}) is incompatible "
                             f"with the layer: expected ndim={ndim}, found ndim={len(shape)}. Full "
                             f"shape received: {format_shape(shape)}")
        for axis, size in axes.items():
            got = shape[axis] if -len(shape) <= axis < len(shape) else None
            if got is not None and got != size:
                raise ValueError(f"Input of layer '{self.name}' ({type(self).__name__}) is incompatible "
                                 f"with the layer: expected axis {axis} of the input shape to have "
                                 f"value {size}, but received input with shape {format_shape(shape)}")

    @property
    def output_shape(self):
        if self._output_shape is None:
            raise AttributeError(f"Layer '{self.name}' has no defined output shape yet (not built)")
        return self._output_shape

    @property
    def input_shape(self):
        if self._build_input_shape is None:
            raise AttributeError(f"Layer '{self.name}' has no defined input shape yet (not built)")
        return self._build_input_shape

    @property
    def input(self):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called on a symbolic input")
        ins = self._inbound_nodes[0].inputs
        return ins if self._multi_input else ins[0]

    @property
    def output(self):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called on a symbolic input")
        return self._inbound_nodes[0].outputs[0]

    # -- calling -----------------------------------------------------------------------------
    def __call__(self, inputs, training=None, **kwargs):
        if kwargs:
            raise TypeError(f"Layer '{self.name}': unexpected call arguments {sorted(kwargs)}")
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if any(isinstance(t, KerasTensor) for t in flat):
            return self._call_symbolic(inputs, training)
        return self._call_eager(inputs, bool(training))

    def call(self, inputs, training=None):
        """Keras's ``call``: the eager computation on NumPy arrays."""
        return self._call_eager(inputs, bool(training))

    def _call_symbolic(self, inputs, training=None):
        """Record this call in the graph. An explicit ``training`` is kept with the call and
        wins over the model's mode whenever the graph runs: ``base(x, training=False)`` keeps a
        base model in inference mode while the model around it trains (Keras's documented
        transfer-learning idiom); ``Dropout(0.5)(x, training=True)`` stays active in predict."""
        if training is not None and not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"Layer '{self.name}': training must be True, False or None, got {training!r}")
        cls = type(self).__name__
        if self._multi_input:
            if not isinstance(inputs, (list, tuple)) or len(inputs) < 1:
                raise ValueError(f"Layer '{self.name}' ({cls}) expects a list of inputs, got {inputs!r}")
            tensors = list(inputs)
        else:
            if isinstance(inputs, (list, tuple)):
                if len(inputs) != 1:
                    raise ValueError(f"Layer '{self.name}' ({cls}) expects a single input, got a list "
                                     f"of {len(inputs)}")
                inputs = inputs[0]
            tensors = [inputs]
        for t in tensors:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Layer '{self.name}' ({cls}): cannot mix symbolic tensors and "
                                f"arrays in one call, got {type(t).__name__}")
            if t.dtype == "string" and "string" not in self._input_dtypes:
                raise TypeError(f"Layer '{self.name}' ({cls}) cannot take string inputs (tensor "
                                f"{t.name!r} is a string tensor); turn text into numbers first, "
                                "e.g. with a TextVectorization layer")
        shapes = [t.shape for t in tensors]
        in_shape = shapes if self._multi_input else shapes[0]
        self._maybe_build(in_shape)
        out_shape = self.compute_output_shape(in_shape)
        dtypes = [t.dtype for t in tensors]
        out = KerasTensor(out_shape, name=self.name,
                          dtype=self._output_dtype(dtypes if self._multi_input else dtypes[0]))
        masks = [t._keras_mask for t in tensors]
        previous = masks if self._multi_input else masks[0]
        if self.supports_masking:
            out._keras_mask = self.compute_mask(inputs, previous)
        elif any(m is not None for m in masks):
            warnings.warn(f"Layer '{self.name}' (of type {cls}) was passed an input with a mask "
                          "attached to it. However, this layer does not support masking and will "
                          "therefore destroy the mask information. Downstream layers will not see "
                          "the mask.", stacklevel=3)
        node = Node(self, tensors, [out], self._multi_input, training)
        out._keras_history = (self, len(self._inbound_nodes), 0)
        self._inbound_nodes.append(node)
        return out

    def _call_eager(self, inputs, training):
        if self._multi_input:
            if not isinstance(inputs, (list, tuple)):
                raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) expects a list of inputs")
            xs = [_as_input_array(a, self.name, self._input_dtypes) for a in inputs]
            shape = [(None,) + x.shape[1:] for x in xs]
        else:
            xs = _as_input_array(inputs, self.name, self._input_dtypes)
            shape = (None,) + xs.shape[1:]
        self._maybe_build(shape)
        return self.forward(xs, training, {})

    # -- training face -----------------------------------------------------------------------
    def forward(self, x, training: bool, ctx: dict):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy, ctx: dict, need_dx: bool):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    # -- config --------------------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self._trainable, "dtype": "float32"}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _as_input_array(x, layer_name, dtypes=("float32",)):
    """An eager call's input as the layer's forward takes it: float32 for float layers; integer
    arrays kept as they are for layers taking integers; object arrays of ``str`` for layers
    taking strings."""
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous:
        return x
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise ValueError(f"Layer '{layer_name}': inputs need a batch axis, got a scalar")
    if "string" in dtypes and arr.dtype.kind in "USO":
        return as_string_array(arr, f"Layer '{layer_name}'", "inputs")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"Layer '{layer_name}': inputs must be real numeric arrays, got dtype {arr.dtype}")
    if arr.dtype.kind in "iu" and ("int32" in dtypes or "int64" in dtypes):
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_string_array(x, who: str, what: str) -> np.ndarray:
    """``x`` (a list or array of ``str``/UTF-8 ``bytes``) as a C-contiguous object array of
    ``str``, or a TypeError naming ``who`` and ``what``."""
    arr = np.asarray(x)
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8").astype(object)
    if arr.dtype.kind == "O":
        flat = arr.reshape(-1)
        if all(type(v) is str for v in flat):
            return np.ascontiguousarray(arr)
        if all(isinstance(v, (str, bytes)) for v in flat):
            out = np.empty(arr.shape, object)
            out.reshape(-1)[:] = [v.decode("utf-8") if isinstance(v, bytes) else v for v in flat]
            return out
    raise TypeError(f"{who}: {what} must be strings (a list or array of str), got dtype {arr.dtype}")


# --------------------------------------------------------------------------------------------
class InputLayer(Layer):
    """The layer behind ``Input``: it holds the model's input shape and computes nothing."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, name=None, **kwargs):
        if sparse:
            raise ValueError("InputLayer: sparse inputs are not supported")
        if input_tensor is not None:
            raise ValueError("InputLayer: input_tensor is not supported")
        kwargs.pop("trainable", None)
        if shape is not None and batch_shape is not None:
            raise ValueError("InputLayer: give either shape or batch_shape, not both")
        if "input_shape" in kwargs:  # legacy spelling
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        if batch_shape is not None:
            batch_shape = standardize_shape(batch_shape, "InputLayer: batch_shape")
            if not batch_shape:
                raise ValueError("InputLayer: batch_shape needs at least the batch axis")
        elif shape is not None:
            batch_shape = (batch_size,) + standardize_shape(shape, "InputLayer: shape")
        else:
            raise ValueError("InputLayer: you must give the input shape, e.g. Input(shape=(28, 28, 1))")
        input_dtype = standardize_input_dtype(dtype, "InputLayer")
        super().__init__(name=name, **kwargs)
        self.batch_shape = batch_shape
        self.input_dtype = input_dtype
        self.built = True
        self._build_input_shape = batch_shape
        self._output_shape = batch_shape
        out = KerasTensor(batch_shape, name=self.name, dtype=input_dtype)
        node = Node(self, [], [out], False)
        out._keras_history = (self, 0, 0)
        self._inbound_nodes.append(node)
        self.output_tensor = out

    def forward(self, x, training, ctx):
        return x

    def backward(self, dy, ctx, need_dx):
        return dy

    def get_config(self):
        return {"name": self.name, "batch_shape": list(self.batch_shape), "dtype": self.input_dtype}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """A symbolic input tensor: ``inputs = Input(shape=(28, 28, 1))`` (``keras.Input``)."""
    if optional:
        raise ValueError("Input: optional inputs are not supported")
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                       batch_shape=batch_shape, input_tensor=tensor, name=name)
    return layer.output_tensor
