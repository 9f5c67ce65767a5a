"""Keras 3's NumPy-like ops (``keras.ops.numpy`` and ``keras.ops.linalg.norm``) on NumPy arrays.

Signatures and defaults are those of Keras 3.15.1, and so are the result dtypes (see
``_dtypes.py``): Python numbers are weak, integer inputs to floating functions give float32,
``sum`` of int8/int16/bool accumulates in int32, index results (``argmax``, ``argsort``, ``top_k``
indices, ``nonzero``...) are int32, ``zeros``/``ones``/``full``/``eye`` default to float32 and
``arange(3)`` is int32. Every function takes array-likes and returns ``np.ndarray`` (0-D for a
scalar result). Errors name the function.

``matmul``, ``tanh`` (and ``relu``, ``sigmoid``, ``softmax`` of ``keras.ops.nn``) are the float32
kernels of this package, documented with the kernel ops.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from . import _dtypes
from ._keras_args import as_array, as_output, axis_arg, keras_op, promote, shape_arg

__all__ = [
    # creation
    "array", "arange", "linspace", "logspace", "zeros", "ones", "full", "empty", "zeros_like",
    "ones_like", "full_like", "empty_like", "eye", "identity", "tri", "meshgrid",
    # element-wise, one operand
    "abs", "absolute", "negative", "sign", "square", "sqrt", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh",
    "arccosh", "arctanh", "reciprocal", "floor", "ceil", "round", "trunc", "isnan", "isinf",
    "isfinite", "nan_to_num", "logical_not", "copy",
    # element-wise, two operands
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "mod", "power",
    "maximum", "minimum", "arctan2", "logaddexp", "divide_no_nan", "equal", "not_equal", "less",
    "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_xor", "isclose",
    "allclose", "clip", "where",
    # reductions
    "sum", "mean", "max", "min", "amax", "amin", "prod", "std", "var", "median", "all", "any",
    "argmax", "argmin", "count_nonzero", "average", "cumsum", "cumprod",
    # shapes
    "reshape", "transpose", "expand_dims", "squeeze", "ravel", "moveaxis", "swapaxes",
    "broadcast_to", "concatenate", "stack", "hstack", "vstack", "split", "array_split", "tile",
    "repeat", "pad", "flip", "fliplr", "flipud", "rot90", "roll", "append", "tril", "triu", "diag",
    "diagonal", "trace", "ndim", "size",
    # indexing and sorting
    "take", "take_along_axis", "nonzero", "argsort", "sort", "searchsorted", "digitize",
    "bincount", "get_item",
    # products
    "dot", "tensordot", "einsum", "outer", "inner", "vdot", "norm",
]


# ----------------------------------------------------------------------------- creation

def _dtype_or(dtype, default: str, op: str) -> str:
    return default if dtype is None else _dtypes.standardize_dtype(dtype, op)


@keras_op
def array(x, dtype=None):
    """A new array holding ``x`` (Keras dtype rules: Python ints int32, floats float32)."""
    arr = as_array(x, dtype)
    return arr.copy() if arr is x else arr


@keras_op
def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in ``[start, stop)``; ``arange(n)`` counts from 0. The dtype, unless
    given, is that of the arguments: int32 for Python ints, float32 if any is a float."""
    if dtype is None:
        parts = [start, 1 if step is None else step] + ([] if stop is None else [stop])
        dtype = _dtypes.result_type(*(_dtypes.dtype_of(p) for p in parts))
    else:
        dtype = _dtypes.standardize_dtype(dtype, "arange")
    step = 1 if step is None else step
    if step == 0:
        raise ValueError("step must not be 0")
    if stop is None:
        start, stop = 0, start
    return np.arange(start, stop, step).astype(dtype)


@keras_op
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``num`` evenly spaced values from ``start`` to ``stop`` (float32 unless ``dtype``)."""
    if dtype is None:
        dtype = _dtypes.result_type(_dtypes.dtype_of(start), _dtypes.dtype_of(stop), float)
    else:
        dtype = _dtypes.standardize_dtype(dtype, "linspace")
    num = int(num)
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    values, step = np.linspace(start, stop, num=num, endpoint=endpoint, retstep=True, axis=axis)
    values = values.astype(dtype)
    return (values, step) if retstep else values


@keras_op
def logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0):
    """``base ** linspace(start, stop, num)`` (float32 unless ``dtype``)."""
    if dtype is None:
        dtype = _dtypes.result_type(_dtypes.dtype_of(start), _dtypes.dtype_of(stop), float)
    else:
        dtype = _dtypes.standardize_dtype(dtype, "logspace")
    return np.logspace(start, stop, num=int(num), endpoint=endpoint, base=base, axis=axis).astype(dtype)


@keras_op
def zeros(shape, dtype=None):
    """An array of zeros (float32 unless ``dtype``)."""
    return np.zeros(shape_arg(shape), dtype=_dtype_or(dtype, _dtypes.FLOATX, "zeros"))


@keras_op
def ones(shape, dtype=None):
    """An array of ones (float32 unless ``dtype``)."""
    return np.ones(shape_arg(shape), dtype=_dtype_or(dtype, _dtypes.FLOATX, "ones"))


@keras_op
def full(shape, fill_value, dtype=None):
    """An array filled with ``fill_value`` (float32 unless ``dtype``, whatever the fill value)."""
    return np.full(shape_arg(shape), as_array(fill_value), dtype=_dtype_or(dtype, _dtypes.FLOATX, "full"))


@keras_op
def empty(shape, dtype=None):
    """An uninitialised array (float32 unless ``dtype``)."""
    return np.empty(shape_arg(shape), dtype=_dtype_or(dtype, _dtypes.FLOATX, "empty"))


def _like_dtype(x: np.ndarray, dtype, op: str) -> str:
    return _dtypes.standardize_dtype(x.dtype) if dtype is None else _dtypes.standardize_dtype(dtype, op)


@keras_op
def zeros_like(x, dtype=None):
    """Zeros of ``x``'s shape and (unless ``dtype``) dtype."""
    x = as_array(x)
    return np.zeros(x.shape, dtype=_like_dtype(x, dtype, "zeros_like"))


@keras_op
def ones_like(x, dtype=None):
    """Ones of ``x``'s shape and (unless ``dtype``) dtype."""
    x = as_array(x)
    return np.ones(x.shape, dtype=_like_dtype(x, dtype, "ones_like"))


@keras_op
def full_like(x, fill_value, dtype=None):
    """``fill_value`` broadcast to ``x``'s shape, in ``x``'s dtype unless ``dtype``."""
    x = as_array(x)
    return np.full(x.shape, as_array(fill_value), dtype=_like_dtype(x, dtype, "full_like"))


@keras_op
def empty_like(x, dtype=None):
    """An uninitialised array of ``x``'s shape and (unless ``dtype``) dtype."""
    x = as_array(x)
    return np.empty(x.shape, dtype=_like_dtype(x, dtype, "empty_like"))


@keras_op
def eye(N, M=None, k=0, dtype=None):
    """An ``N x M`` array with ones on diagonal ``k`` (float32 unless ``dtype``)."""
    return np.eye(int(N), None if M is None else int(M), k=int(k), dtype=_dtype_or(dtype, _dtypes.FLOATX, "eye"))


@keras_op
def identity(n, dtype=None):
    """The ``n x n`` identity matrix (float32 unless ``dtype``)."""
    return np.identity(int(n), dtype=_dtype_or(dtype, _dtypes.FLOATX, "identity"))


@keras_op
def tri(N, M=None, k=0, dtype=None):
    """Ones at and below diagonal ``k`` of an ``N x M`` array (float32 unless ``dtype``)."""
    return np.tri(int(N), None if M is None else int(M), k=int(k), dtype=_dtype_or(dtype, _dtypes.FLOATX, "tri"))


@keras_op
def meshgrid(*x, indexing="xy"):
    """Coordinate arrays from 1-D coordinate vectors (``indexing`` ``"xy"`` or ``"ij"``)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"indexing must be 'xy' or 'ij', got {indexing!r}")
    arrays = [as_array(v) for v in x]
    dtype = _dtypes.result_type(*(a.dtype for a in arrays)) if arrays else _dtypes.FLOATX
    return [g.astype(dtype) for g in np.meshgrid(*arrays, indexing=indexing)]


# ----------------------------------------------------------------------------- element-wise ops

def _make(name: str, fn, doc: str):
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    fn.__module__ = __name__
    return keras_op(fn)


def _floating_unary(name: str, ufunc, doc: str):
    """A function of one array computed in floating point: float inputs keep their dtype, integer
    and bool inputs give float32."""
    def fn(x):
        x = as_array(x)
        dtype = _dtypes.float_result(_dtypes.standardize_dtype(x.dtype))
        return as_output(ufunc(x.astype(dtype, copy=False)))
    return _make(name, fn, doc + " Integer and bool inputs give float32.")


sqrt = _floating_unary("sqrt", np.sqrt, "Square root, element-wise.")
exp = _floating_unary("exp", np.exp, "``e ** x``, element-wise.")
exp2 = _floating_unary("exp2", np.exp2, "``2 ** x``, element-wise.")
expm1 = _floating_unary("expm1", np.expm1, "``exp(x) - 1``, accurate near 0.")
log = _floating_unary("log", np.log, "Natural logarithm, element-wise.")
log2 = _floating_unary("log2", np.log2, "Base-2 logarithm, element-wise.")
log10 = _floating_unary("log10", np.log10, "Base-10 logarithm, element-wise.")
log1p = _floating_unary("log1p", np.log1p, "``log(1 + x)``, accurate near 0.")
sin = _floating_unary("sin", np.sin, "Sine, element-wise.")
cos = _floating_unary("cos", np.cos, "Cosine, element-wise.")
tan = _floating_unary("tan", np.tan, "Tangent, element-wise.")
arcsin = _floating_unary("arcsin", np.arcsin, "Inverse sine, element-wise.")
arccos = _floating_unary("arccos", np.arccos, "Inverse cosine, element-wise.")
arctan = _floating_unary("arctan", np.arctan, "Inverse tangent, element-wise.")
sinh = _floating_unary("sinh", np.sinh, "Hyperbolic sine, element-wise.")
cosh = _floating_unary("cosh", np.cosh, "Hyperbolic cosine, element-wise.")
arcsinh = _floating_unary("arcsinh", np.arcsinh, "Inverse hyperbolic sine, element-wise.")
arccosh = _floating_unary("arccosh", np.arccosh, "Inverse hyperbolic cosine, element-wise.")
arctanh = _floating_unary("arctanh", np.arctanh, "Inverse hyperbolic tangent, element-wise.")
reciprocal = _floating_unary("reciprocal", np.reciprocal, "``1 / x``, element-wise.")
floor = _floating_unary("floor", np.floor, "The largest integer <= x, element-wise, as a float.")
ceil = _floating_unary("ceil", np.ceil, "The smallest integer >= x, element-wise, as a float.")


def _same_dtype_unary(name: str, ufunc, doc: str, bool_as=None, identity_for_integers=False):
    """A function of one array that keeps its dtype (bool becomes ``bool_as`` when given;
    ``identity_for_integers``: integer and bool inputs are returned as a copy)."""
    def fn(x):
        x = as_array(x)
        if bool_as is not None and x.dtype == np.bool_:
            x = x.astype(bool_as)
        if identity_for_integers and x.dtype.kind in "biu":
            return x.copy()
        return as_output(ufunc(x)).astype(x.dtype, copy=False)
    return _make(name, fn, doc)


abs = _same_dtype_unary("abs", np.abs, "Absolute value, element-wise, in the input's dtype.")
absolute = _same_dtype_unary("absolute", np.abs, "Absolute value, element-wise (``abs``).")
negative = _same_dtype_unary("negative", np.negative, "``-x``, element-wise.")
square = _same_dtype_unary("square", np.square, "``x * x``, element-wise (bool gives int32).", bool_as="int32")
trunc = _same_dtype_unary("trunc", np.trunc, "Rounds toward zero, element-wise, in the input's dtype.",
                         identity_for_integers=True)
copy = _same_dtype_unary("copy", np.copy, "A copy of ``x``.")


@keras_op
def sign(x):
    """-1, 0 or 1 by the sign of each element, in the input's dtype (bool is returned as is)."""
    x = as_array(x)
    return x.copy() if x.dtype == np.bool_ else as_output(np.sign(x))


@keras_op
def round(x, decimals=0):
    """Rounds half to even to ``decimals`` places, in the input's dtype."""
    x = as_array(x)
    return as_output(np.round(x, int(decimals))).astype(x.dtype, copy=False)


def _predicate_unary(name: str, ufunc, doc: str):
    def fn(x):
        return as_output(ufunc(as_array(x)))
    return _make(name, fn, doc + " Returns bool.")


isnan = _predicate_unary("isnan", np.isnan, "True where ``x`` is NaN.")
isinf = _predicate_unary("isinf", np.isinf, "True where ``x`` is +-Inf.")
isfinite = _predicate_unary("isfinite", np.isfinite, "True where ``x`` is neither NaN nor Inf.")
logical_not = _predicate_unary("logical_not", np.logical_not, "``not x``, element-wise.")


@keras_op
def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN replaced by ``nan`` and +-Inf by ``posinf``/``neginf`` (default: the dtype's extremes)."""
    x = as_array(x)
    return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


def _arithmetic(name: str, ufunc, doc: str, extra=(), bool_as=None):
    """A function of two arrays computed in their Keras result dtype (``extra`` joins the
    promotion: ``float`` makes integer results float32)."""
    def fn(x1, x2):
        a, b, dtype = promote(x1, x2, extra=extra)
        if bool_as is not None and dtype == "bool":
            a, b, dtype = a.astype(bool_as), b.astype(bool_as), bool_as
        return as_output(ufunc(a, b)).astype(dtype, copy=False)
    return _make(name, fn, doc)


add = _arithmetic("add", np.add, "``x1 + x2`` with broadcasting, in the Keras result dtype.")
subtract = _arithmetic("subtract", np.subtract, "``x1 - x2`` with broadcasting.")
multiply = _arithmetic("multiply", np.multiply, "``x1 * x2`` with broadcasting.")
divide = _arithmetic("divide", np.true_divide, "``x1 / x2``; integer operands give float32.", extra=(float,))
true_divide = _arithmetic("true_divide", np.true_divide, "``x1 / x2`` (``divide``).", extra=(float,))
floor_divide = _arithmetic("floor_divide", np.floor_divide, "``x1 // x2``, in the result dtype.")
mod = _arithmetic("mod", np.mod, "``x1 % x2`` with the sign of ``x2`` (bool operands give int32).",
                  bool_as="int32")
power = _arithmetic("power", np.power, "``x1 ** x2``, in the result dtype.")
maximum = _arithmetic("maximum", np.maximum, "The larger of ``x1`` and ``x2``, element-wise (NaN wins).")
minimum = _arithmetic("minimum", np.minimum, "The smaller of ``x1`` and ``x2``, element-wise (NaN wins).")
arctan2 = _arithmetic("arctan2", np.arctan2, "The angle of the point ``(x2, x1)``, element-wise.",
                      extra=(float,))
logaddexp = _arithmetic("logaddexp", np.logaddexp, "``log(exp(x1) + exp(x2))`` without overflow.",
                        extra=(float,))


@keras_op
def divide_no_nan(x1, x2):
    """``x1 / x2``, with 0 wherever ``x2`` is 0 (even for ``0 / 0``)."""
    a, b, dtype = promote(x1, x2, extra=(float,))
    safe = np.where(b == 0, np.ones((), dtype), b)
    return np.where(b == 0, np.zeros((), dtype), np.true_divide(a, safe)).astype(dtype, copy=False)


def _comparison(name: str, ufunc, doc: str):
    def fn(x1, x2):
        a, b, _ = promote(x1, x2)
        return as_output(ufunc(a, b))
    return _make(name, fn, doc + " Returns bool.")


equal = _comparison("equal", np.equal, "``x1 == x2``, element-wise.")
not_equal = _comparison("not_equal", np.not_equal, "``x1 != x2``, element-wise.")
less = _comparison("less", np.less, "``x1 < x2``, element-wise.")
less_equal = _comparison("less_equal", np.less_equal, "``x1 <= x2``, element-wise.")
greater = _comparison("greater", np.greater, "``x1 > x2``, element-wise.")
greater_equal = _comparison("greater_equal", np.greater_equal, "``x1 >= x2``, element-wise.")
logical_and = _comparison("logical_and", np.logical_and, "``x1 and x2``, element-wise.")
logical_or = _comparison("logical_or", np.logical_or, "``x1 or x2``, element-wise.")
logical_xor = _comparison("logical_xor", np.logical_xor, "``x1 xor x2``, element-wise.")


@keras_op
def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """``|x1 - x2| <= atol + rtol * |x2|``, element-wise. Returns bool."""
    a, b, _ = promote(x1, x2)
    return as_output(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


@keras_op
def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Whether ``isclose`` holds everywhere, as a 0-D bool array."""
    a, b, _ = promote(x1, x2)
    return np.asarray(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


@keras_op
def clip(x, x_min, x_max):
    """``x`` limited to ``[x_min, x_max]``, in ``x``'s dtype (bool gives int32)."""
    x = as_array(x)
    dtype = "int32" if x.dtype == np.bool_ else _dtypes.standardize_dtype(x.dtype)
    low = None if x_min is None else as_array(x_min, name="x_min")
    high = None if x_max is None else as_array(x_max, name="x_max")
    return as_output(np.clip(x.astype(dtype, copy=False), low, high)).astype(dtype, copy=False)


@keras_op
def where(condition, x1=None, x2=None):
    """``x1`` where ``condition`` holds, else ``x2`` (in their result dtype). With only
    ``condition``, the indices of its non-zero entries (as ``nonzero``)."""
    if x1 is None and x2 is None:
        return nonzero(condition)
    if x1 is None or x2 is None:
        raise ValueError("x1 and x2 must both be given, or neither")
    cond = as_array(condition).astype(bool, copy=False)
    a, b, dtype = promote(x1, x2)
    return as_output(np.where(cond, a, b)).astype(dtype, copy=False)


# ----------------------------------------------------------------------------- reductions

def _reduce_axis(x: np.ndarray, axis):
    return axis_arg(axis, x.ndim)


@keras_op
def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes by default). bool/int8/int16 sum in int32, uint8/uint16 in uint32."""
    x = as_array(x)
    dtype = _dtypes.widened_for_sum(_dtypes.standardize_dtype(x.dtype))
    return as_output(np.sum(x, axis=_reduce_axis(x, axis), keepdims=keepdims, dtype=dtype))


@keras_op
def prod(x, axis=None, keepdims=False, dtype=None):
    """Product over ``axis``; accumulates as ``sum`` unless ``dtype`` is given."""
    x = as_array(x)
    dtype = _dtypes.widened_for_sum(_dtypes.standardize_dtype(x.dtype)) if dtype is None \
        else _dtypes.standardize_dtype(dtype, "prod")
    return as_output(np.prod(x, axis=_reduce_axis(x, axis), keepdims=keepdims, dtype=dtype))


@keras_op
def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis``; integer and bool inputs give float32."""
    x = as_array(x)
    dtype = _dtypes.float_result(_dtypes.standardize_dtype(x.dtype))
    return as_output(np.mean(x, axis=_reduce_axis(x, axis), keepdims=keepdims)).astype(dtype, copy=False)


def _moment_dtypes(x: np.ndarray) -> tuple[str, str]:
    """(compute, result) dtypes of var/std: float16 is computed in float32 (too little range)."""
    result = _dtypes.float_result(_dtypes.standardize_dtype(x.dtype))
    return ("float32" if result == "float16" else result), result


@keras_op
def var(x, axis=None, keepdims=False):
    """Population variance (divisor N) over ``axis``; integer inputs give float32."""
    x = as_array(x)
    compute, result = _moment_dtypes(x)
    return as_output(np.var(x, axis=_reduce_axis(x, axis), keepdims=keepdims, dtype=compute)).astype(result)


@keras_op
def std(x, axis=None, keepdims=False):
    """Population standard deviation (divisor N) over ``axis``; integer inputs give float32."""
    x = as_array(x)
    compute, result = _moment_dtypes(x)
    return as_output(np.std(x, axis=_reduce_axis(x, axis), keepdims=keepdims, dtype=compute)).astype(result)


@keras_op
def median(x, axis=None, keepdims=False):
    """Median over ``axis``; integer inputs give float32."""
    x = as_array(x)
    dtype = _dtypes.float_result(_dtypes.standardize_dtype(x.dtype))
    return as_output(np.median(x, axis=_reduce_axis(x, axis), keepdims=keepdims)).astype(dtype)


@keras_op
def max(x, axis=None, keepdims=False, initial=None):
    """Maximum over ``axis`` in ``x``'s dtype; ``initial`` is the result of an empty reduction."""
    x = as_array(x)
    kwargs = {} if initial is None else {"initial": initial}
    return as_output(np.max(x, axis=_reduce_axis(x, axis), keepdims=keepdims, **kwargs))


@keras_op
def min(x, axis=None, keepdims=False, initial=None):
    """Minimum over ``axis`` in ``x``'s dtype; ``initial`` is the result of an empty reduction."""
    x = as_array(x)
    kwargs = {} if initial is None else {"initial": initial}
    return as_output(np.min(x, axis=_reduce_axis(x, axis), keepdims=keepdims, **kwargs))


@keras_op
def amax(x, axis=None, keepdims=False):
    """Maximum over ``axis`` (``max``)."""
    x = as_array(x)
    return as_output(np.max(x, axis=_reduce_axis(x, axis), keepdims=keepdims))


@keras_op
def amin(x, axis=None, keepdims=False):
    """Minimum over ``axis`` (``min``)."""
    x = as_array(x)
    return as_output(np.min(x, axis=_reduce_axis(x, axis), keepdims=keepdims))


@keras_op
def all(x, axis=None, keepdims=False):
    """Whether every element over ``axis`` is non-zero (bool)."""
    x = as_array(x)
    return as_output(np.all(x, axis=_reduce_axis(x, axis), keepdims=keepdims))


@keras_op
def any(x, axis=None, keepdims=False):
    """Whether some element over ``axis`` is non-zero (bool)."""
    x = as_array(x)
    return as_output(np.any(x, axis=_reduce_axis(x, axis), keepdims=keepdims))


def _single_axis(x: np.ndarray, axis):
    if isinstance(axis, (list, tuple)):
        raise TypeError(f"axis must be None or an integer, got {axis!r}")
    return _reduce_axis(x, axis)


@keras_op
def argmax(x, axis=None, keepdims=False):
    """Index of the first maximum along ``axis`` (of the flattened array when None), int32."""
    x = as_array(x)
    ax = _single_axis(x, axis)
    if x.size == 0:
        raise ValueError(f"x is empty (shape {x.shape}): there is no maximum")
    out = np.argmax(x, axis=ax)
    if keepdims:
        out = np.expand_dims(out, ax) if ax is not None else np.reshape(out, (1,) * x.ndim)
    return as_output(out).astype(np.int32)


@keras_op
def argmin(x, axis=None, keepdims=False):
    """Index of the first minimum along ``axis`` (of the flattened array when None), int32."""
    x = as_array(x)
    ax = _single_axis(x, axis)
    if x.size == 0:
        raise ValueError(f"x is empty (shape {x.shape}): there is no minimum")
    out = np.argmin(x, axis=ax)
    if keepdims:
        out = np.expand_dims(out, ax) if ax is not None else np.reshape(out, (1,) * x.ndim)
    return as_output(out).astype(np.int32)


@keras_op
def count_nonzero(x, axis=None):
    """Number of non-zero elements over ``axis``, int32."""
    x = as_array(x)
    return as_output(np.count_nonzero(x, axis=_reduce_axis(x, axis))).astype(np.int32)


@keras_op
def average(x, axis=None, weights=None):
    """Weighted mean over ``axis`` (``weights`` of ``x``'s shape, or 1-D along ``axis``)."""
    x = as_array(x)
    kinds = [x.dtype, float] + ([] if weights is None else [as_array(weights).dtype])
    dtype = _dtypes.result_type(*kinds)
    w = None if weights is None else as_array(weights).astype(dtype)
    return as_output(np.average(x.astype(dtype), axis=_single_axis(x, axis), weights=w)).astype(dtype)


def _cumulative(name: str, ufunc, doc: str):
    def fn(x, axis=None, dtype=None):
        x = as_array(x)
        out_dtype = _dtypes.standardize_dtype(x.dtype) if dtype is None else _dtypes.standardize_dtype(dtype, name)
        if out_dtype == "bool":
            out_dtype = "int32"
        ax = _single_axis(x, axis)
        return ufunc(x.reshape(-1) if ax is None else x, axis=0 if ax is None else ax, dtype=out_dtype)
    return _make(name, fn, doc + " Flattens first when ``axis`` is None; in ``x``'s dtype unless "
                 "``dtype`` (bool gives int32).")


cumsum = _cumulative("cumsum", np.cumsum, "Cumulative sum along ``axis``.")
cumprod = _cumulative("cumprod", np.cumprod, "Cumulative product along ``axis``.")


# ----------------------------------------------------------------------------- shapes

@keras_op
def reshape(x, newshape):
    """``x`` with a new shape of the same size; one entry may be -1 (inferred)."""
    x = as_array(x)
    dims = (newshape,) if isinstance(newshape, (int, np.integer)) else tuple(newshape)
    dims = tuple(-1 if d is None else int(d) for d in dims)
    if builtins.sum(d == -1 for d in dims) > 1 or builtins.any(d < -1 for d in dims):
        raise ValueError(f"newshape may hold one -1 and otherwise sizes >= 0, got {dims}")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or x.size % known:
            raise ValueError(f"cannot reshape an array of shape {x.shape} ({x.size} elements) to {dims}")
    elif known != x.size:
        raise ValueError(f"cannot reshape an array of shape {x.shape} ({x.size} elements) to {dims} "
                         f"({known} elements)")
    return np.reshape(x, dims)


@keras_op
def transpose(x, axes=None):
    """``x`` with its axes permuted (reversed by default)."""
    x = as_array(x)
    if axes is not None:
        axes = tuple(axis_arg(a, x.ndim, allow_none=False) % x.ndim for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"axes must be a permutation of range({x.ndim}), got {axes}")
    return np.transpose(x, axes)


@keras_op
def expand_dims(x, axis):
    """``x`` with new size-1 axes at ``axis`` (an int or a tuple of ints)."""
    x = as_array(x)
    axes = axis if isinstance(axis, (list, tuple)) else (axis,)
    axis_arg(tuple(axes), x.ndim + len(axes), allow_none=False)
    return np.expand_dims(x, tuple(axes))


@keras_op
def squeeze(x, axis=None):
    """``x`` without its size-1 axes (only those in ``axis`` when given; they must have size 1)."""
    x = as_array(x)
    ax = axis_arg(axis, x.ndim)
    if ax is not None:
        for a in (ax if isinstance(ax, tuple) else (ax,)):
            if x.shape[a] != 1:
                raise ValueError(f"cannot squeeze axis {a} of shape {x.shape}: its size is {x.shape[a]}, not 1")
    return np.squeeze(x, axis=ax)


@keras_op
def ravel(x):
    """``x`` flattened to 1-D."""
    return np.ravel(as_array(x))


@keras_op
def moveaxis(x, source, destination):
    """``x`` with axes ``source`` moved to ``destination`` (ints or tuples)."""
    return np.moveaxis(as_array(x), source, destination)


@keras_op
def swapaxes(x, axis1, axis2):
    """``x`` with axes ``axis1`` and ``axis2`` exchanged."""
    return np.swapaxes(as_array(x), axis1, axis2)


@keras_op
def broadcast_to(x, shape):
    """``x`` broadcast to ``shape`` (a copy, so it can be written)."""
    return np.array(np.broadcast_to(as_array(x), shape_arg(shape)))


def _common(xs) -> tuple[list, str]:
    if isinstance(xs, np.ndarray):
        xs = list(xs)
    if not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise ValueError(f"xs must be a non-empty list or tuple of arrays, got {type(xs).__name__}")
    arrays = [as_array(v) if not isinstance(v, (int, float, bool)) else v for v in xs]
    dtype = _dtypes.result_type(*(_dtypes.dtype_of(a) for a in arrays))
    return [np.asarray(a, dtype=dtype) for a in arrays], dtype


@keras_op
def concatenate(xs, axis=0):
    """The arrays of ``xs`` joined along an existing ``axis`` (in their Keras result dtype)."""
    if axis is None:
        raise ValueError("axis cannot be None")
    arrays, _ = _common(xs)
    return np.concatenate(arrays, axis=axis)


@keras_op
def stack(x, axis=0):
    """The arrays of ``x`` (one shape) joined along a new ``axis``."""
    arrays, _ = _common(x)
    return np.stack(arrays, axis=axis)


@keras_op
def hstack(xs):
    """The arrays joined column-wise (along axis 1; axis 0 for 1-D)."""
    arrays, _ = _common(xs)
    return np.hstack(arrays)


@keras_op
def vstack(xs):
    """The arrays joined row-wise (along axis 0, 1-D arrays as rows)."""
    arrays, _ = _common(xs)
    return np.vstack(arrays)


@keras_op
def split(x, indices_or_sections, axis=0):
    """``x`` cut along ``axis`` into equal sections, or at the given indices (a list of arrays)."""
    x = as_array(x)
    if isinstance(indices_or_sections, (int, np.integer)):
        n = x.shape[axis_arg(axis, x.ndim, allow_none=False)]
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise ValueError(f"{n} elements along axis {axis} cannot be split into {indices_or_sections} "
                             f"equal sections")
    return np.split(x, indices_or_sections, axis=axis)


@keras_op
def array_split(x, indices_or_sections, axis=0):
    """``split`` that allows unequal sections (the first ones one element longer)."""
    return np.array_split(as_array(x), indices_or_sections, axis=axis)


@keras_op
def tile(x, repeats):
    """``x`` repeated ``repeats`` times along each axis."""
    return np.tile(as_array(x), repeats)


@keras_op
def repeat(x, repeats, axis=None):
    """Each element repeated ``repeats`` times along ``axis`` (of the flattened array when None)."""
    return np.repeat(as_array(x), as_array(repeats), axis=axis)


_PAD_MODES = ("constant", "edge", "linear_ramp", "maximum", "mean", "median", "minimum", "reflect",
              "symmetric", "wrap", "empty", "circular")


@keras_op
def pad(x, pad_width, mode="constant", constant_values=None):
    """``x`` padded by ``pad_width`` (``((before, after), ...)``, one pair per axis, or one pair or
    int for all). ``constant_values`` only with ``mode="constant"``; ``"circular"`` is ``"wrap"``."""
    x = as_array(x)
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {list(_PAD_MODES)}, got {mode!r}")
    if constant_values is not None and mode != "constant":
        raise ValueError(f"constant_values can only be given with mode='constant', got mode={mode!r}")
    widths = np.asarray(pad_width)
    if widths.dtype.kind not in "iu" or (widths < 0).any():
        raise ValueError(f"pad_width must hold non-negative integers, got {pad_width!r}")
    kwargs = {} if constant_values is None else {"constant_values": constant_values}
    return np.pad(x, widths, mode="wrap" if mode == "circular" else mode, **kwargs)


@keras_op
def flip(x, axis=None):
    """``x`` reversed along ``axis`` (every axis by default)."""
    x = as_array(x)
    return np.flip(x, axis=axis_arg(axis, x.ndim))


@keras_op
def fliplr(x):
    """``x`` reversed along axis 1."""
    return np.fliplr(as_array(x))


@keras_op
def flipud(x):
    """``x`` reversed along axis 0."""
    return np.flipud(as_array(x))


@keras_op
def rot90(array, k=1, axes=(0, 1)):
    """``array`` rotated by ``k`` quarter turns in the plane of ``axes``."""
    x = as_array(array, name="array")
    if x.ndim < 2:
        raise ValueError(f"array must have at least 2 dimensions, got shape {x.shape}")
    if len(axes) != 2 or axes[0] % x.ndim == axes[1] % x.ndim:
        raise ValueError(f"axes must be two different axes, got {axes}")
    return np.rot90(x, k=int(k), axes=tuple(axes))


@keras_op
def roll(x, shift, axis=None):
    """``x`` shifted cyclically by ``shift`` along ``axis`` (of the flattened array when None)."""
    return np.roll(as_array(x), shift, axis=axis)


@keras_op
def append(x1, x2, axis=None):
    """``x2`` appended to ``x1`` along ``axis`` (both flattened when None)."""
    arrays, _ = _common([x1, x2])
    return np.append(arrays[0], arrays[1], axis=axis)


@keras_op
def tril(x, k=0):
    """``x`` with the entries above diagonal ``k`` zeroed."""
    return np.tril(as_array(x), k=int(k))


@keras_op
def triu(x, k=0):
    """``x`` with the entries below diagonal ``k`` zeroed."""
    return np.triu(as_array(x), k=int(k))


@keras_op
def diag(x, k=0):
    """The ``k``-th diagonal of a 2-D ``x``, or a 2-D array with a 1-D ``x`` on that diagonal."""
    x = as_array(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"x must be 1-D or 2-D, got shape {x.shape}")
    return np.diag(x, k=int(k))


@keras_op
def diagonal(x, offset=0, axis1=0, axis2=1):
    """The diagonal at ``offset`` of the ``(axis1, axis2)`` planes of ``x`` (a copy)."""
    return np.diagonal(as_array(x), offset=int(offset), axis1=axis1, axis2=axis2).copy()


@keras_op
def trace(x, offset=0, axis1=0, axis2=1):
    """Sum of the diagonal at ``offset`` of the ``(axis1, axis2)`` planes (dtype as ``sum``)."""
    x = as_array(x)
    dtype = _dtypes.widened_for_sum(_dtypes.standardize_dtype(x.dtype))
    return as_output(np.trace(x, offset=int(offset), axis1=axis1, axis2=axis2, dtype=dtype))


def ndim(x) -> int:
    """Number of dimensions of ``x``."""
    return int(np.ndim(x))


def size(x) -> int:
    """Number of elements of ``x``."""
    return int(np.size(x))


# ----------------------------------------------------------------------------- indexing and sorting

def _indices(indices, name: str = "indices") -> np.ndarray:
    idx = as_array(indices, name=name)
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind == "f" and idx.size and np.all(idx == np.round(idx)):
            return idx.astype(np.int64)
        if idx.size:
            raise TypeError(f"{name} must be integers, got dtype {idx.dtype}")
        return idx.astype(np.int64)
    return idx


@keras_op
def take(x, indices, axis=None):
    """Elements of ``x`` at ``indices`` along ``axis`` (of the flattened array when None);
    negative indices count from the end."""
    x = as_array(x)
    idx = _indices(indices)
    n = x.size if axis is None else x.shape[axis_arg(axis, x.ndim, allow_none=False)]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"indices must be in [{-n}, {n}) for {'x.size' if axis is None else f'axis {axis}'} "
                         f"of {n}, got values from {int(idx.min())} to {int(idx.max())}")
    return np.take(x, idx, axis=axis)


@keras_op
def take_along_axis(x, indices, axis=None):
    """``x`` gathered at ``indices`` (``x``'s rank, broadcastable) along ``axis`` (flattened when None)."""
    x = as_array(x)
    idx = _indices(indices)
    if axis is None:
        x, axis = x.reshape(-1), 0
        idx = idx.reshape(-1)
    axis = axis_arg(axis, x.ndim, allow_none=False)
    if idx.ndim != x.ndim:
        raise ValueError(f"indices must have the rank of x ({x.ndim}), got shape {idx.shape}")
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"indices must be in [{-n}, {n}) along axis {axis}, got values from "
                         f"{int(idx.min())} to {int(idx.max())}")
    return np.take_along_axis(x, idx, axis=axis)  # other axes broadcast; negative indices wrap


@keras_op
def nonzero(x):
    """The indices of the non-zero elements, one int32 array per dimension."""
    return tuple(i.astype(np.int32) for i in np.nonzero(as_array(x)))


@keras_op
def argsort(x, axis=-1):
    """Indices that sort ``x`` ascending along ``axis`` (stable: ties keep their order), int32."""
    x = as_array(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return np.argsort(x, axis=axis, kind="stable").astype(np.int32)


@keras_op
def sort(x, axis=-1):
    """``x`` sorted ascending along ``axis`` (NaN last)."""
    x = as_array(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return np.sort(x, axis=axis, kind="stable")


@keras_op
def searchsorted(sorted_sequence, values, side="left"):
    """Where ``values`` would be inserted into the 1-D ascending ``sorted_sequence``, int32."""
    seq = as_array(sorted_sequence, name="sorted_sequence")
    if seq.ndim != 1:
        raise ValueError(f"sorted_sequence must be 1-D, got shape {seq.shape}")
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return as_output(np.searchsorted(seq, as_array(values, name="values"), side=side)).astype(np.int32)


@keras_op
def digitize(x, bins):
    """The index of the bin of each element (``bins`` 1-D and monotonic), int32."""
    return as_output(np.digitize(as_array(x), as_array(bins, name="bins"))).astype(np.int32)


@keras_op
def bincount(x, weights=None, minlength=0, sparse=False):
    """Occurrences of each value of the non-negative integer ``x`` (1-D, or 2-D counted per row),
    summed ``weights`` when given (int32 without weights)."""
    if sparse:
        raise ValueError("sparse=True is not supported: cnnfast works on dense NumPy arrays")
    x = _indices(x, "x")
    if x.size and x.min() < 0:
        raise ValueError(f"x must be non-negative, got {int(x.min())}")
    if x.ndim not in (1, 2):
        raise ValueError(f"x must be 1-D or 2-D, got shape {x.shape}")
    if weights is None:
        dtype, w = "int32", None
    else:
        w = as_array(weights, name="weights")
        if w.shape != x.shape:
            raise ValueError(f"weights must have x's shape {x.shape}, got {w.shape}")
        dtype = _dtypes.result_type(x.dtype, w.dtype)
    if x.ndim == 1:
        return np.bincount(x, w, minlength=int(minlength)).astype(dtype)
    length = builtins.max(int(minlength), int(x.max()) + 1 if x.size else 0)
    rows = [np.bincount(r, None if w is None else w[i], minlength=length) for i, r in enumerate(x)]
    return np.stack(rows).astype(dtype) if rows else np.zeros((0, length), dtype)


def get_item(x, key):
    """``x[key]`` (NumPy indexing)."""
    return as_output(as_array(x)[key])


# ----------------------------------------------------------------------------- products

def _product_dtype(a: np.ndarray, b: np.ndarray) -> str:
    """Keras's dtype of a product: the result type, except int8 x int8 gives int32."""
    if a.dtype == np.int8 and b.dtype == np.int8:
        return "int32"
    return _dtypes.result_type(a.dtype, b.dtype)


@keras_op
def dot(x1, x2):
    """NumPy's ``dot``: inner product of vectors, matrix product, or a sum over the last axis of
    ``x1`` and the second-to-last of ``x2``."""
    a, b = as_array(x1), as_array(x2)
    dtype = _product_dtype(a, b)
    return as_output(np.dot(a.astype(dtype), b.astype(dtype)))


@keras_op
def tensordot(x1, x2, axes=2):
    """Sum of products over ``axes`` (an int: the last/first ``axes`` axes; or two sequences)."""
    a, b = as_array(x1), as_array(x2)
    dtype = _product_dtype(a, b)
    return as_output(np.tensordot(a.astype(dtype), b.astype(dtype), axes=axes))


@keras_op
def einsum(subscripts, *operands, **kwargs):
    """Einstein summation (``einsum("bij,bjk->bik", a, b)``), in the operands' result dtype
    (int8 operands only: int32)."""
    arrays = [as_array(o) for o in operands]
    kinds = {a.dtype for a in arrays}
    dtype = "int32" if kinds == {np.dtype(np.int8)} else _dtypes.result_type(*kinds)
    return as_output(np.einsum(subscripts, *(a.astype(dtype) for a in arrays), **kwargs)).astype(dtype, copy=False)


@keras_op
def outer(x1, x2):
    """``x1[i] * x2[j]`` of the flattened operands."""
    a, b, _ = promote(x1, x2)
    return np.outer(a, b)


@keras_op
def inner(x1, x2):
    """Sum of products over the last axes."""
    a, b = as_array(x1), as_array(x2)
    dtype = _product_dtype(a, b)
    return as_output(np.inner(a.astype(dtype), b.astype(dtype)))


@keras_op
def vdot(x1, x2):
    """Dot product of the flattened operands (the first conjugated)."""
    a, b, _ = promote(x1, x2)
    return as_output(np.vdot(a, b))


@keras_op
def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm (``keras.ops.norm``, NumPy's ``linalg.norm``): the 2-norm of the
    flattened array by default; ``axis`` an int for vector norms, a pair for matrix norms.
    Integer inputs give float32."""
    x = as_array(x)
    dtype = _dtypes.float_result(_dtypes.standardize_dtype(x.dtype))
    ax = axis_arg(axis, x.ndim)
    if isinstance(ax, tuple) and len(ax) not in (1, 2):
        raise ValueError(f"axis must be an int or a pair of ints, got {axis!r}")
    if ax is None and ord is not None and x.ndim not in (1, 2):
        raise ValueError(f"ord={ord!r} needs axis, or a 1-D or 2-D x; got shape {x.shape}")
    return as_output(np.linalg.norm(x.astype(dtype, copy=False), ord=ord, axis=ax,
                                    keepdims=keepdims)).astype(dtype, copy=False)
