"""Lambda: a Python function as a layer (``keras.layers.Lambda``), and the registry that lets a
Lambda be saved and loaded.

The function receives and returns NumPy arrays (float32, batch axis first), so inference
(``predict``, ``model(x)``, ``evaluate``) runs any function. cnnfast has no automatic
differentiation, so training *through* a Lambda needs its derivative:

* a function of ``cnnfast.activations`` (``Lambda(activations.gelu, arguments={"approximate":
  True})``) uses that function's derivative with the same arguments;
* any other function needs ``backward=``, a cnnfast extension: ``backward(dy, x, y, **arguments)
  -> dx`` (a list of gradients, one per input, for a Lambda called on a list);
* without either, the backward pass raises, naming the layer. A Lambda whose input needs no
  gradient (one placed right after the model's inputs, e.g. preprocessing) still trains fine.

Saving: Keras writes a Python ``lambda`` as marshalled bytecode and refuses to load it in safe
mode (CVE-2024-3660); cnnfast never writes or runs code from a file. A Lambda's config names its
function, and loading looks the name up among the functions registered in this process with
:func:`register_keras_serializable` (Keras's decorator and naming, ``"package>name"``) and the
``cnnfast.activations`` functions. A config holding bytecode (``"__lambda__"``, as Keras saves a
``lambda``) is refused with an explanation; saving a Lambda whose function is not registered
raises, naming the layer.
"""
from __future__ import annotations

import inspect

import numpy as np

from .. import activations as _activations
from .base import Layer, standardize_shape

__all__ = ["Lambda", "register_keras_serializable", "get_registered_function"]

# "package>name" -> function, and back
_REGISTRY: dict[str, object] = {}
_REGISTERED_NAMES: dict[object, str] = {}


def register_keras_serializable(package="Custom", name=None):
    """Decorator registering a function under ``"package>name"`` (``name`` defaults to the
    function's ``__name__``), so a Lambda using it can be saved and loaded (as
    ``keras.saving.register_keras_serializable``; cnnfast registers functions only: the layer
    classes it loads are its own).

        @register_keras_serializable(package="my_pkg")
        def double(x):
            return 2 * x
    """
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"register_keras_serializable: package must be a string without '>', "
                         f"got {package!r}")

    def decorator(fn):
        if inspect.isclass(fn) or not callable(fn):
            raise TypeError("register_keras_serializable: cnnfast registers functions (for Lambda "
                            f"layers), got {fn!r}")
        key = f"{package}>{name if name is not None else fn.__name__}"
        if key in _REGISTRY and _REGISTRY[key] is not fn:
            raise ValueError(f"register_keras_serializable: {key!r} is already registered to "
                             f"{_REGISTRY[key]!r}")
        _REGISTRY[key] = fn
        _REGISTERED_NAMES[fn] = key
        return fn
    return decorator


def get_registered_function(key):
    """The function registered under ``"package>name"``, or None."""
    return _REGISTRY.get(key)


def _function_config(fn, layer, what):
    """Keras's config of a named function: ``{"module": "builtins", "class_name": "function",
    "config": <name>, "registered_name": "function"}``."""
    if fn in _REGISTERED_NAMES:
        name = _REGISTERED_NAMES[fn]
    elif _is_activation(fn):
        name = _activations.serialize(fn)
    else:
        raise ValueError(f"Lambda '{layer}': cannot save the {what} {fn!r}: cnnfast saves functions by "
                         "name only (never their code), so register it with "
                         "@cnnfast.layers.register_keras_serializable() (or use a cnnfast.activations "
                         "function) before saving")
    return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}


def _function_from_config(config, layer, what):
    if not isinstance(config, dict):
        raise ValueError(f"Lambda '{layer}': bad {what} config {config!r}")
    if config.get("class_name") == "__lambda__":
        raise ValueError(f"Lambda '{layer}': the saved {what} is Python bytecode (a `lambda` saved by "
                         "Keras). Running code from a file can execute anything, so cnnfast never does "
                         "(Keras refuses it too in safe mode). Define the function in your code, register "
                         "it with @cnnfast.layers.register_keras_serializable(), and build the Lambda "
                         "with it")
    name = config.get("config")
    if config.get("class_name") != "function" or not isinstance(name, str):
        raise ValueError(f"Lambda '{layer}': bad {what} config {config!r}; expected a named function")
    fn = _REGISTRY.get(name)
    if fn is None and ">" not in name:
        try:
            fn = _activations.get(name)
        except (TypeError, ValueError):
            fn = None
    if fn is None:
        raise ValueError(f"Lambda '{layer}': the {what} {name!r} is not registered in this process; "
                         "register it with @cnnfast.layers.register_keras_serializable() before loading "
                         f"(registered: {sorted(_REGISTRY)})")
    return fn


def _is_activation(fn):
    try:
        return _activations.get(fn) is fn
    except (TypeError, ValueError):
        return False


def _is_json_data(value, depth=0):
    if depth > 32:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json_data(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_data(v, depth + 1) for k, v in value.items())
    return False


class Lambda(Layer):
    """Wraps a function of NumPy arrays as a layer.

    Args:
        function: the function, called as ``function(inputs, **arguments)`` (plus
            ``training=`` when it takes that argument); or its saved config.
        output_shape: the output shape without the batch axis (a tuple), a function of the
            input shape (batch axis included) returning the full output shape, or None: the shape
            is then found by calling ``function`` once on zeros of the input's shape.
        mask: must be None (cnnfast's Lambda does not compute masks).
        arguments: a dict of keyword arguments for ``function``.
        backward: (cnnfast extension) ``backward(dy, x, y, **arguments) -> dx``, the derivative
            that lets a model train through the layer; not needed for a
            ``cnnfast.activations`` function.
        list_input: (set by a saved config) the layer is called on a list of tensors. A call
            sets it; a saved model needs it because a graph's config lists a node's inputs
            without saying whether they were passed as a list.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, backward=None,
                 list_input=False, **kwargs):
        super().__init__(**kwargs)
        self._multi_input = bool(list_input)
        op = f"Lambda '{self.name}'"
        if isinstance(function, dict):
            function = _function_from_config(function, self.name, "function")
        if not callable(function):
            raise TypeError(f"{op}: function must be callable, got {function!r}")
        if isinstance(output_shape, dict):
            output_shape = _function_from_config(output_shape, self.name, "output_shape function")
        if isinstance(backward, dict):
            backward = _function_from_config(backward, self.name, "backward function")
        if mask is not None:
            raise NotImplementedError(f"{op}: mask is not supported by cnnfast (got {mask!r})")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict) or not all(isinstance(k, str) for k in arguments):
            raise TypeError(f"{op}: arguments must be a dict of keyword arguments, got {arguments!r}")
        if backward is not None and not callable(backward):
            raise TypeError(f"{op}: backward must be callable, got {backward!r}")
        if output_shape is not None and not callable(output_shape):
            if isinstance(output_shape, (list, tuple)) and len(output_shape) == 0:
                output_shape = ()
            else:
                output_shape = standardize_shape(output_shape, f"{op}: output_shape")
        self.function = function
        self.arguments = dict(arguments)
        self.mask = None
        self.backward_function = backward
        self._declared_output_shape = output_shape
        self._probed = {}
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):   # some builtins have no signature
            params = {}
        self._fn_expects_training_arg = "training" in params
        self._derivative = backward
        if backward is None and _is_activation(function):
            self._derivative = _activations.derivative_of(function)

    # -- calls on one input or on a list ------------------------------------------------------
    def __call__(self, inputs, training=None, **kwargs):
        if not self._inbound_nodes and not self.built:
            self._multi_input = isinstance(inputs, (list, tuple))
        return super().__call__(inputs, training=training, **kwargs)

    def compute_output_shape(self, input_shape):
        declared = self._declared_output_shape
        if callable(declared):
            return tuple(declared(input_shape))
        batch = input_shape[0][0] if self._multi_input else input_shape[0]
        if declared is not None:
            return (batch,) + tuple(declared)
        return (batch,) + self._probed_shape(input_shape)[1:]

    def _probed_shape(self, input_shape):
        """The output shape found by running the function on zeros (batch of 2), once per input
        shape."""
        key = repr(input_shape)
        if key not in self._probed:
            self._probed[key] = self._probe(input_shape)
        return self._probed[key]

    def _probe(self, input_shape):
        shapes = input_shape if self._multi_input else [input_shape]
        if any(d is None for s in shapes for d in s[1:]):
            raise ValueError(f"Lambda '{self.name}': cannot infer the output shape for an input shape "
                             f"with unknown sizes {input_shape}; pass output_shape=")
        probes = [np.zeros((2,) + tuple(s[1:]), np.float32) for s in shapes]
        y = self._apply(probes if self._multi_input else probes[0], False)
        return y.shape

    def _apply(self, x, training):
        kwargs = dict(self.arguments)
        if self._fn_expects_training_arg:
            kwargs["training"] = training
        y = self.function(x, **kwargs)
        if isinstance(y, (list, tuple)) or np.ndim(y) == 0:
            raise ValueError(f"Lambda '{self.name}': the function must return one array with a batch "
                             f"axis, got {type(y).__name__}")
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"Lambda '{self.name}': the function returned an array of dtype {y.dtype}, "
                            "expected numbers")
        return np.ascontiguousarray(y, dtype=np.float32)

    # -- training face -------------------------------------------------------------------------
    def forward(self, x, training, ctx):
        y = self._apply(x, training)
        expected = self._output_shape
        if expected is not None and (len(y.shape) != len(expected) or any(
                e is not None and e != g for e, g in zip(expected[1:], y.shape[1:]))):
            raise ValueError(f"Lambda '{self.name}': the function returned shape {y.shape}, but the layer's "
                             f"output shape is {expected}")
        ctx.update(x=x, y=y)
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if self._derivative is None:
            raise NotImplementedError(
                f"Lambda '{self.name}': cannot compute the gradient through this layer: cnnfast has no "
                "automatic differentiation, so a Lambda is inference-only (predict, evaluate) unless "
                "its function is a cnnfast.activations function or it is given "
                "backward=fn(dy, x, y, **arguments) -> dx")
        dx = self._derivative(dy, ctx["x"], ctx["y"], **self.arguments)
        if self._multi_input:
            if not isinstance(dx, (list, tuple)) or len(dx) != len(ctx["x"]):
                raise ValueError(f"Lambda '{self.name}': backward must return one gradient per input "
                                 f"({len(ctx['x'])})")
            return [self._checked_grad(g, x) for g, x in zip(dx, ctx["x"])]
        return self._checked_grad(dx, ctx["x"])

    def _checked_grad(self, g, x):
        g = np.ascontiguousarray(g, dtype=np.float32)
        if g.shape != x.shape:
            raise ValueError(f"Lambda '{self.name}': backward returned a gradient of shape {g.shape} "
                             f"for an input of shape {x.shape}")
        return g

    # -- config --------------------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config["function"] = _function_config(self.function, self.name, "function")
        declared = self._declared_output_shape
        if declared is not None:
            config["output_shape"] = _function_config(declared, self.name, "output_shape function") \
                if callable(declared) else list(declared)
        if not _is_json_data(self.arguments):
            raise ValueError(f"Lambda '{self.name}': cannot save arguments {self.arguments!r}: only "
                             "numbers, strings, booleans, None, lists and dicts of them can be saved")
        config["arguments"] = dict(self.arguments)
        if self.backward_function is not None:
            config["backward"] = _function_config(self.backward_function, self.name, "backward function")
        if self._multi_input:
            config["list_input"] = True
        return config
