"""The Keras-shaped NumPy functions of cnnfast.ops (and cnnfast.ops.image) against keras.ops.

Keras 3 with the torch backend is the oracle for values, shapes and dtypes (skipped when keras is
not importable); the NumPy-only tests check the dtype rules, edge cases and error messages.
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cnnfast import ops  # noqa: E402
from cnnfast.ops import _dtypes  # noqa: E402

# Keras's torch backend warns about NumPy 2's copy keyword and 0-D .T; those are not cnnfast's
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:keras"),
              pytest.mark.filterwarnings("ignore::UserWarning:keras")]


def _leaves(value):
    if isinstance(value, (list, tuple)) or type(value).__name__ == "topk":
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def assert_like_keras(keras, name, *args, module=None, rtol=1e-6, atol=1e-6, check_dtype=True, int_atol=0,
                      **kwargs):
    """cnnfast.ops.<name> and keras.ops.<name> agree in values, shapes and dtypes (``check_dtype``
    False: values only; ``int_atol``: integer results may differ by that much)."""
    ours = getattr(module or ops, name)(*args, **kwargs)
    theirs = getattr(keras.ops if module is None else keras.ops.image, name)(*args, **kwargs)
    ours_leaves, theirs_leaves = _leaves(ours), _leaves(theirs)
    assert len(ours_leaves) == len(theirs_leaves), name
    for mine, ref in zip(ours_leaves, theirs_leaves):
        ref_np = keras.ops.convert_to_numpy(ref)
        ref_dtype = keras.backend.standardize_dtype(ref.dtype) if hasattr(ref, "dtype") else None
        assert isinstance(mine, np.ndarray), (name, type(mine))
        assert mine.shape == np.shape(ref_np), (name, mine.shape, np.shape(ref_np))
        if ref_dtype is not None and check_dtype:
            assert _dtypes.standardize_dtype(mine.dtype) == ref_dtype, (name, mine.dtype, ref_dtype)
        if mine.dtype.kind in "fc":
            tol = 2e-3 if mine.dtype == np.float16 else rtol
            np.testing.assert_allclose(mine, ref_np, rtol=tol, atol=max(atol, tol if mine.dtype == np.float16 else 0),
                                       err_msg=name)
        elif int_atol:
            np.testing.assert_allclose(mine.astype(np.float64), ref_np.astype(np.float64), rtol=0, atol=int_atol,
                                       err_msg=name)
        else:
            np.testing.assert_array_equal(mine, ref_np, err_msg=name)
    return ours


RNG = np.random.default_rng(7)
VALUES = {
    "float32": RNG.uniform(0.5, 3.0, (2, 3, 4)).astype(np.float32),
    "float64": RNG.uniform(0.5, 3.0, (2, 3, 4)),
    "float16": RNG.uniform(0.5, 3.0, (2, 3, 4)).astype(np.float16),
    "int32": RNG.integers(1, 9, (2, 3, 4)).astype(np.int32),
    "int8": RNG.integers(1, 9, (2, 3, 4)).astype(np.int8),
    "uint8": RNG.integers(1, 9, (2, 3, 4)).astype(np.uint8),
    "bool": RNG.integers(0, 2, (2, 3, 4)).astype(bool),
}
SIGNED = RNG.normal(size=(2, 3, 4)).astype(np.float32)

FLOAT_UNARY = ["sqrt", "exp", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "arctan",
               "sinh", "cosh", "arcsinh", "reciprocal", "floor", "ceil", "rsqrt"]
SAME_UNARY = ["abs", "sign", "square", "trunc", "round", "copy", "ravel", "isnan", "isinf", "isfinite",
              "logical_not", "nan_to_num"]


# Keras's torch backend narrows some float64 results to float32 (floor, var, floor_divide: the
# ops it routes through keras.backend.result_type) and keeps others (add, sqrt, mean): cnnfast keeps
# float64 throughout, so float64 cases compare values here and dtypes in the NumPy-only tests.
NARROWED = {"float64"}


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int8", "uint8", "bool"])
def test_unary_functions_match_keras(keras, dtype):
    x = VALUES[dtype]
    for name in FLOAT_UNARY + SAME_UNARY:
        if dtype == "bool" and name in ("round",):
            continue  # torch has no bool round
        ours = assert_like_keras(keras, name, x, rtol=2e-6, check_dtype=dtype not in NARROWED)
        if dtype == "float64" and ours.dtype.kind == "f":
            assert ours.dtype == np.float64, name
    if dtype != "bool":
        assert_like_keras(keras, "negative", x)
    assert_like_keras(keras, "arcsin", x / 10 if dtype.startswith("float") else x * 0)
    assert_like_keras(keras, "arccosh", x + 1 if dtype != "bool" else x.astype(np.int32) + 1)


BINARY = ["add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "mod", "power",
          "maximum", "minimum", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
          "logical_and", "logical_or", "logical_xor", "divide_no_nan"]
PAIRS = [("float32", "float32"), ("float64", "float64"), ("int32", "int32"), ("int8", "int8"),
         ("int8", "uint8"), ("uint8", "int32"), ("int32", "float32"), ("float16", "int32"),
         ("int8", 2), ("int8", 3.5), ("float16", 2.5), ("int32", 2.0), ("bool", "bool"), ("bool", 1)]


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_binary_functions_match_keras_dtype_rules(keras, pair):
    a = VALUES[pair[0]]
    b = VALUES[pair[1]] if isinstance(pair[1], str) else pair[1]
    for name in BINARY:
        if pair[0] == "bool" and name in ("subtract", "floor_divide", "mod", "power"):
            continue  # undefined for booleans in torch and NumPy
        assert_like_keras(keras, name, a, b, rtol=2e-6, check_dtype=pair[0] not in NARROWED)
    if pair[1] != 2.5:  # torch computes a float16 array with a Python float in float32
        assert_like_keras(keras, "arctan2", a, b, rtol=2e-6, check_dtype=pair[0] not in NARROWED)
        assert_like_keras(keras, "logaddexp", a, b, rtol=2e-6, check_dtype=pair[0] not in NARROWED)


def test_divide_no_nan_and_python_scalars(keras):
    x = np.array([1.0, 0.0, -2.0], np.float32)
    y = np.array([0.0, 0.0, 4.0], np.float32)
    np.testing.assert_array_equal(assert_like_keras(keras, "divide_no_nan", x, y), [0, 0, -0.5])
    assert ops.add(np.float16(1), 1.5).dtype == np.float16
    assert ops.multiply(2, 3).dtype == np.int32
    assert ops.divide(np.arange(4, dtype=np.uint8), 255).dtype == np.float32  # the x / 255 idiom


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int8", "uint8", "bool"])
def test_reductions_match_keras(keras, dtype):
    x = VALUES[dtype]
    for axis in (None, 1, (0, 2), -1):
        for keepdims in (False, True):
            if axis is None and keepdims:
                continue  # Keras's torch backend drops keepdims without an axis (checked below)
            for name in ("sum", "mean", "max", "min", "amax", "amin", "all", "any", "std", "var"):
                if dtype == "uint8" and name == "sum":
                    continue  # torch has no uint32: Keras's rule is uint32 (checked below)
                assert_like_keras(keras, name, x, axis=axis, keepdims=keepdims, rtol=3e-6,
                                  check_dtype=dtype not in NARROWED)
            if dtype not in ("uint8", "bool") and not isinstance(axis, tuple):
                assert_like_keras(keras, "prod", x, axis=axis, keepdims=keepdims, rtol=3e-6,
                                  check_dtype=dtype not in NARROWED)
        if not isinstance(axis, tuple):
            for name in ("argmax", "argmin"):
                assert_like_keras(keras, name, x, axis=axis)
                assert_like_keras(keras, name, x, axis=axis, keepdims=True)
            for name in ("cumsum", "cumprod"):
                if dtype != "uint8":
                    assert_like_keras(keras, name, x, axis=axis, check_dtype=dtype not in NARROWED)
            assert_like_keras(keras, "count_nonzero", x[0], axis=axis)  # torch transposes 3-D results
            if dtype != "bool":
                assert_like_keras(keras, "median", x, axis=axis, check_dtype=dtype not in NARROWED)
        if dtype.startswith("float"):
            assert_like_keras(keras, "logsumexp", x, axis=axis, keepdims=True, rtol=3e-6)
    assert ops.sum(VALUES["uint8"]).dtype == np.uint32
    assert ops.sum(VALUES["int8"]).dtype == np.int32
    for name in ("sum", "max", "mean", "var", "all"):
        assert getattr(ops, name)(x, keepdims=True).shape == (1,) * x.ndim  # as NumPy and Keras's spec


def test_norms_match_keras(keras):
    x = SIGNED
    for kwargs in ({}, {"axis": -1}, {"axis": 1, "keepdims": True}, {"ord": 1, "axis": 0},
                   {"ord": np.inf, "axis": 2}, {"ord": "fro", "axis": (1, 2)}, {"ord": 2, "axis": (0, 1)}):
        assert_like_keras(keras, "norm", x, rtol=3e-6, **kwargs)
    assert_like_keras(keras, "norm", VALUES["int32"], rtol=3e-6)


def test_shape_functions_match_keras(keras):
    x = VALUES["float32"]
    i = VALUES["int8"]
    assert_like_keras(keras, "reshape", x, (4, -1))
    assert_like_keras(keras, "reshape", x, 24)
    assert_like_keras(keras, "transpose", x)
    assert_like_keras(keras, "transpose", x, (2, 0, 1))
    assert_like_keras(keras, "expand_dims", x, 1)
    assert_like_keras(keras, "expand_dims", x, (0, -1))
    assert_like_keras(keras, "squeeze", x[:, :1])
    assert_like_keras(keras, "squeeze", x[:1, :1], axis=1)
    assert_like_keras(keras, "moveaxis", x, 0, -1)
    assert_like_keras(keras, "swapaxes", x, 0, 2)
    assert_like_keras(keras, "broadcast_to", x[:, :1], (2, 3, 4))
    assert_like_keras(keras, "concatenate", [x, i, VALUES["uint8"]], axis=1)
    assert_like_keras(keras, "concatenate", [i, VALUES["uint8"]], axis=-1)
    assert_like_keras(keras, "stack", [x, x], axis=2)
    assert_like_keras(keras, "stack", [i, VALUES["int32"]])
    assert_like_keras(keras, "hstack", [x, x])
    assert_like_keras(keras, "vstack", [x, x])
    assert_like_keras(keras, "split", x, 2, axis=2)
    assert_like_keras(keras, "split", x, [1, 3], axis=-1)
    assert_like_keras(keras, "tile", i, (2, 1, 3))
    assert_like_keras(keras, "repeat", x, 2, axis=1)
    assert_like_keras(keras, "repeat", i, 3)
    assert_like_keras(keras, "flip", x, axis=(0, 2))
    assert_like_keras(keras, "flip", x)
    assert_like_keras(keras, "roll", x, 2, axis=1)
    assert_like_keras(keras, "roll", i, -3)
    assert_like_keras(keras, "rot90", x, k=3, axes=(1, 2))
    assert_like_keras(keras, "append", x, i, axis=0)
    for name in ("tril", "triu"):
        assert_like_keras(keras, name, x[0], k=1)
        assert_like_keras(keras, name, x, k=-1)
    assert_like_keras(keras, "diag", x[0], k=1)
    assert_like_keras(keras, "diag", x[0, 0], k=-1)
    assert_like_keras(keras, "diagonal", x, offset=1, axis1=1, axis2=2)
    assert_like_keras(keras, "trace", i[0])
    assert_like_keras(keras, "pad", x, ((0, 1), (2, 1), (1, 0)))
    for mode in ("reflect", "circular"):  # torch pads only trailing axes in these modes
        assert_like_keras(keras, "pad", x[None], ((0, 0), (0, 0), (2, 1), (1, 0)), mode=mode)
    np.testing.assert_array_equal(ops.pad(x, 1, mode="edge"), np.pad(x, 1, mode="edge"))
    np.testing.assert_array_equal(ops.pad(x, 2, mode="symmetric"), np.pad(x, 2, mode="symmetric"))
    assert_like_keras(keras, "pad", i, ((1, 1), (1, 1), (1, 1)), constant_values=5)
    np.testing.assert_array_equal(ops.pad(i, 1), np.pad(i, 1))  # an int pads every axis, as NumPy
    assert ops.shape(x) == keras.ops.shape(x) == (2, 3, 4)
    assert ops.ndim(x) == 3 and ops.size(x) == 24


def test_indexing_and_sorting_match_keras(keras):
    x = SIGNED
    ties = np.array([[3, 1, 3, 2, 1, 3], [0, 0, 0, 0, 0, 0]], np.float32)
    assert_like_keras(keras, "take", x, np.array([2, 0, -1]), axis=1)
    assert_like_keras(keras, "take", x, np.array([[5, 0], [23, 7]]))
    np.testing.assert_array_equal(ops.take(x, np.array([-1, -24])), x.reshape(-1)[[-1, -24]])
    assert_like_keras(keras, "take_along_axis", x, np.argsort(x, axis=-1)[..., :2], axis=-1)
    assert_like_keras(keras, "take_along_axis", x, np.array([[[0, 2, 1, 2]]] * 2), axis=1)
    assert_like_keras(keras, "argsort", ties)
    assert_like_keras(keras, "argsort", x, axis=0)
    assert_like_keras(keras, "sort", x, axis=1)
    # Keras declares int32 indices (its torch backend returns torch's int64): values compared here
    assert_like_keras(keras, "top_k", x, 2, check_dtype=False)
    assert ops.top_k(x, 2)[1].dtype == np.int32
    # ties: torch's order among equal values is unspecified; cnnfast puts the lower index first, as
    # JAX's and TensorFlow's top_k document
    for data, k in ((ties, 3), (VALUES["int8"], 4)):
        values, indices = ops.top_k(data, k)
        np.testing.assert_array_equal(values, keras.ops.convert_to_numpy(keras.ops.top_k(data, k)[0]))
        assert values.dtype == data.dtype
    np.testing.assert_array_equal(ops.top_k(ties, 3)[1], [[0, 2, 5], [0, 1, 2]])
    values, indices = ops.top_k(ties, 3, sorted=False)
    np.testing.assert_array_equal(indices, [[0, 2, 5], [0, 1, 2]])
    assert_like_keras(keras, "searchsorted", np.array([1.0, 2.0, 2.0, 5.0]), np.array([2.0, 0.0, 6.0]))
    assert_like_keras(keras, "searchsorted", np.array([1, 2, 2, 5]), np.array([2, 3]), side="right")
    assert_like_keras(keras, "digitize", x, np.array([-1.0, 0.0, 1.0]))
    assert_like_keras(keras, "bincount", np.array([0, 1, 1, 4]), minlength=6)
    assert_like_keras(keras, "bincount", np.array([0, 1, 1, 4]), weights=np.array([0.5, 1.0, 2.0, 3.0], np.float32))
    # a tuple of int32 index arrays, as Keras declares (its torch backend stacks them in one tensor)
    mine = ops.nonzero(x > 0)
    assert isinstance(mine, tuple) and all(i.dtype == np.int32 for i in mine)
    np.testing.assert_array_equal(np.stack(mine), keras.ops.convert_to_numpy(keras.ops.nonzero(x > 0)))
    assert_like_keras(keras, "where", x > 0, x, VALUES["int32"])
    assert_like_keras(keras, "where", x > 0, VALUES["int8"], 0)
    assert_like_keras(keras, "where", x > 0, 1.0, 0.0)
    assert_like_keras(keras, "clip", x, -0.5, 0.5)
    assert_like_keras(keras, "clip", VALUES["int32"], 2, 5)
    assert_like_keras(keras, "clip", VALUES["bool"], 0, 1)
    assert_like_keras(keras, "in_top_k", np.array([0, 3]), ties, 2)
    assert_like_keras(keras, "in_top_k", np.array([1, 5]), ties, 1)


def test_creation_functions_match_keras(keras):
    assert_like_keras(keras, "arange", 5)
    assert_like_keras(keras, "arange", 1, 7, 2)
    assert_like_keras(keras, "arange", 0, 2, 0.25)
    assert_like_keras(keras, "arange", 0.5, 3)
    assert_like_keras(keras, "arange", 4, dtype="float32")
    assert_like_keras(keras, "linspace", 0, 1, 7)
    assert_like_keras(keras, "linspace", 0, 10, 5, endpoint=False)
    assert_like_keras(keras, "linspace", 0, 8, 5, dtype="int32")
    assert_like_keras(keras, "logspace", 0, 2, 3, rtol=1e-5)
    for name in ("zeros", "ones"):
        assert_like_keras(keras, name, (2, 3))
        assert_like_keras(keras, name, (2,), dtype="int32")
    assert_like_keras(keras, "full", (2, 2), 3)
    assert_like_keras(keras, "full", (2, 2), 3, dtype="int8")
    assert_like_keras(keras, "eye", 3)
    assert_like_keras(keras, "eye", 3, 4, k=1, dtype="int32")
    assert_like_keras(keras, "identity", 2)
    assert_like_keras(keras, "tri", 3, 4, k=-1)
    for name in ("zeros_like", "ones_like"):
        assert_like_keras(keras, name, VALUES["int8"])
        assert_like_keras(keras, name, VALUES["int8"], dtype="float32")
    assert_like_keras(keras, "full_like", VALUES["uint8"], 7)
    assert_like_keras(keras, "meshgrid", np.arange(3.0), np.arange(2.0), indexing="ij")
    assert_like_keras(keras, "meshgrid", np.arange(3), np.arange(4))
    for value in (3, 2.5, True, [1, 2], [1, 2.5], [[True, False]], [[1, 2], [3, 4]], VALUES["float64"],
                  VALUES["int8"], np.int64(3)):
        assert_like_keras(keras, "convert_to_tensor", value)
    assert_like_keras(keras, "convert_to_tensor", [1, 2], dtype="float16")
    assert_like_keras(keras, "array", [1, 2])
    for dtype in ("int32", "uint8", "float16", "bool", "float64"):
        assert_like_keras(keras, "cast", SIGNED * 3, dtype)
    assert_like_keras(keras, "saturate_cast", np.array([-300.0, 1.7, 300.0]), "uint8")
    assert_like_keras(keras, "saturate_cast", np.array([-300, 7, 300], np.int32), "int8")


def test_products_match_keras(keras):
    a, b = SIGNED[0], SIGNED[1].T
    assert_like_keras(keras, "dot", a, b, rtol=1e-5)
    assert_like_keras(keras, "dot", a[0], b[:, 0], rtol=1e-5)
    assert_like_keras(keras, "tensordot", SIGNED, SIGNED, axes=([1, 2], [1, 2]), rtol=1e-5)
    assert_like_keras(keras, "tensordot", a, b, axes=1, rtol=1e-5)
    assert_like_keras(keras, "einsum", "bij,bkj->bik", SIGNED, SIGNED, rtol=1e-5)
    assert_like_keras(keras, "einsum", "ij,jk", VALUES["int8"][0], VALUES["int8"][1].T)
    assert_like_keras(keras, "outer", a[0], VALUES["int32"][0, 0])
    assert_like_keras(keras, "inner", a[0], a[1], rtol=1e-5)
    assert_like_keras(keras, "vdot", a[0], a[1], rtol=1e-5)
    assert_like_keras(keras, "matmul", a, b, rtol=1e-5)  # the float32 kernel, for 2-D float32


def test_nn_functions_match_keras(keras):
    x = (SIGNED * 4).astype(np.float32)
    for name in ("relu6", "silu", "swish", "elu", "selu", "softplus", "softsign", "hard_sigmoid",
                 "hard_silu", "hard_swish", "log_sigmoid", "hard_tanh", "gelu"):
        assert_like_keras(keras, name, x, rtol=2e-6, atol=1e-6)
        assert_like_keras(keras, name, x.astype(np.float64), rtol=1e-12, atol=1e-12)
    assert_like_keras(keras, "gelu", x, approximate=False, rtol=2e-6, atol=1e-6)
    assert_like_keras(keras, "elu", x, alpha=0.5, rtol=2e-6)
    assert_like_keras(keras, "celu", x, alpha=2.0, rtol=2e-6)
    assert_like_keras(keras, "log_softmax", x, rtol=2e-6, atol=1e-6)
    assert_like_keras(keras, "log_softmax", x.astype(np.float64), axis=1, rtol=1e-12)
    assert_like_keras(keras, "softmax", x, axis=1, rtol=2e-6, atol=1e-7)  # the kernel, Keras's signature
    assert_like_keras(keras, "relu", x)
    assert_like_keras(keras, "sigmoid", x, rtol=2e-6)
    assert_like_keras(keras, "tanh", x, rtol=2e-6)
    assert_like_keras(keras, "leaky_relu", x, 0.2)
    assert_like_keras(keras, "erf", x, rtol=2e-6, atol=1e-7)


def test_encodings_and_crossentropies_match_keras(keras):
    labels = np.array([[0, 2, -1], [3, 1, 1]])
    for axis in (-1, 0, 1, 2):
        assert_like_keras(keras, "one_hot", labels, 4, axis=axis)
    assert_like_keras(keras, "one_hot", labels, 4, dtype="int32")
    assert_like_keras(keras, "one_hot", [1, 0], 2)
    assert_like_keras(keras, "multi_hot", np.array([[0, 2], [3, 3]]), 5)
    assert_like_keras(keras, "multi_hot", np.array([1, 2]), 4)
    logits = SIGNED.reshape(6, 4) * 3
    probs = ops.softmax(logits)
    y = np.array([0, 3, 1, 1, 2, 0])
    onehot = ops.one_hot(y, 4)
    for from_logits, out in ((True, logits), (False, probs), (False, probs * 2.0)):
        assert_like_keras(keras, "categorical_crossentropy", onehot, out, from_logits=from_logits, rtol=2e-6)
        assert_like_keras(keras, "sparse_categorical_crossentropy", y, out, from_logits=from_logits, rtol=2e-6)
        assert_like_keras(keras, "sparse_categorical_crossentropy", y[:, None], out, from_logits=from_logits,
                          rtol=2e-6)
    assert_like_keras(keras, "categorical_crossentropy", onehot.T, logits.T, from_logits=True, axis=0, rtol=2e-6)
    assert_like_keras(keras, "sparse_categorical_crossentropy", y, logits.T, from_logits=True, axis=0, rtol=2e-6)
    target = (SIGNED > 0).astype(np.float32)
    assert_like_keras(keras, "binary_crossentropy", target, SIGNED * 30, from_logits=True, rtol=2e-6, atol=1e-6)
    assert_like_keras(keras, "binary_crossentropy", target, ops.sigmoid(SIGNED), rtol=2e-6)
    assert_like_keras(keras, "binary_crossentropy", target, np.array(0.0, np.float32) * SIGNED, rtol=2e-6)


def test_statistics_and_normalisation_match_keras(keras):
    x = (SIGNED * 2 + 1).astype(np.float32)
    assert_like_keras(keras, "moments", x, axes=(0, 1), rtol=1e-5, atol=1e-6)
    assert_like_keras(keras, "moments", x, axes=[2], keepdims=True, rtol=1e-5, atol=1e-6)
    mean, var = np.mean(x, axis=(0, 1)), np.var(x, axis=(0, 1))
    gamma, beta = np.linspace(0.5, 2, 4, dtype=np.float32), np.linspace(-1, 1, 4, dtype=np.float32)
    assert_like_keras(keras, "batch_normalization", x, mean, var, axis=-1, offset=beta, scale=gamma, rtol=2e-6,
                      atol=1e-6)
    assert_like_keras(keras, "batch_normalization", x, mean[:3], var[:3], axis=1, rtol=2e-6, atol=1e-6)
    for order in (1, 2, 3):
        assert_like_keras(keras, "normalize", x, axis=-1, order=order, rtol=2e-6)
    assert_like_keras(keras, "normalize", np.zeros((2, 3), np.float32))


def test_core_functions_match_keras(keras):
    x = SIGNED
    assert_like_keras(keras, "slice", x, (0, 1, 1), (2, 2, 2))
    assert_like_keras(keras, "slice_update", x, (1, 0, 2), np.ones((1, 2, 2), np.float32))
    idx = np.array([[0, 1], [2, 3], [0, 1]])
    assert_like_keras(keras, "scatter", idx, np.array([1.0, 2.0, 3.0], np.float32), (3, 4))
    assert_like_keras(keras, "scatter_update", np.zeros((3, 4), np.float32), idx[:2], np.array([5.0, 6.0], np.float32))
    for mine, ref in zip(ops.unstack(x, axis=1), keras.ops.unstack(keras.ops.convert_to_tensor(x), axis=1)):
        np.testing.assert_array_equal(mine, keras.ops.convert_to_numpy(ref))
    assert_like_keras(keras, "segment_sum", x[0], np.array([0, 0, 2]))
    assert_like_keras(keras, "segment_max", x[0], np.array([1, 0, 1]), num_segments=2)
    assert ops.dtype(VALUES["uint8"]) == keras.ops.dtype(VALUES["uint8"]) == "uint8"
    assert ops.is_tensor(x) and not ops.is_tensor([1.0])
    assert ops.convert_to_numpy(x) is x
    assert ops.stop_gradient(x) is x
    assert ops.cond(True, lambda: 1, lambda: 2) == 1
    assert ops.fori_loop(0, 4, lambda i, v: v + i, 0) == 6
    assert ops.while_loop(lambda a, b: a < 5, lambda a, b: (a + 1, b * 2), (0, 1)) == (5, 32)
    assert ops.while_loop(lambda a: a < 100, lambda a: a + 1, 0, maximum_iterations=7) == 7
    np.testing.assert_array_equal(ops.map(lambda r: r.sum(), np.arange(6).reshape(3, 2)), [1, 5, 9])


# ----------------------------------------------------------------------------- image.resize

RESIZE_SIZES = [((8, 8), (4, 4)), ((5, 7), (11, 3)), ((10, 10), (3, 6)), ((6, 4), (6, 9)), ((3, 3), (7, 7)),
                ((20, 13), (6, 5))]


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resize_matches_keras(keras, interpolation):
    for (h, w), size in RESIZE_SIZES:
        x = RNG.uniform(0, 1, (2, h, w, 3)).astype(np.float32)
        assert_like_keras(keras, "resize", x, size, interpolation=interpolation, module=ops.image, rtol=1e-5,
                          atol=1e-6)
        assert_like_keras(keras, "resize", x[0].transpose(2, 0, 1), size, interpolation=interpolation,
                          data_format="channels_first", module=ops.image, rtol=1e-5, atol=1e-6)
    # integer images: the float32 value is rounded, and torch's float32 arithmetic can put a value
    # that is exactly k + 0.5 on either side of it, so integers may differ by 1
    img = RNG.integers(0, 256, (9, 12, 3)).astype(np.uint8)
    assert_like_keras(keras, "resize", img, (5, 7), interpolation=interpolation, module=ops.image, int_atol=1)
    assert_like_keras(keras, "resize", img.astype(np.float64), (14, 5), interpolation=interpolation,
                      module=ops.image, rtol=1e-12)
    for flag in ("crop_to_aspect_ratio", "pad_to_aspect_ratio"):
        for size in ((4, 4), (3, 8), (9, 2)):
            assert_like_keras(keras, "resize", img, size, interpolation=interpolation, module=ops.image,
                              int_atol=1, **{flag: True})
    assert_like_keras(keras, "resize", img.astype(np.float32), (6, 2), interpolation=interpolation,
                      pad_to_aspect_ratio=True, fill_value=0.5, module=ops.image, rtol=1e-5)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_antialiased_resize_matches_keras(keras, interpolation):
    # with antialias, torch (and so Keras's torch backend) uses the same separable kernels
    for (h, w), size in RESIZE_SIZES:
        x = RNG.uniform(0, 1, (1, h, w, 2)).astype(np.float32)
        assert_like_keras(keras, "resize", x, size, interpolation=interpolation, antialias=True,
                          module=ops.image, rtol=1e-4, atol=2e-6)


def test_resize_kernel_path_matches_the_weight_matrices():
    from cnnfast.ops import image

    x = RNG.uniform(-1, 1, (3, 13, 9, 5)).astype(np.float32)
    for size in ((13, 9), (26, 4), (5, 30), (1, 1)):
        fast = ops.image.resize(x, size)  # float32 NHWC: the C kernel
        slow = image._resize_axis(image._resize_axis(x, 1, size[0], "bilinear", False), 2, size[1], "bilinear", False)
        np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ops.image.resize(x[0], size), fast[0])
        np.testing.assert_allclose(ops.image.resize(x.astype(np.float64), size), slow, rtol=1e-6, atol=1e-6)


def test_resize_follows_jax_for_bicubic_and_lanczos():
    # an affine ramp is reproduced exactly in the interior by the Keys cubic kernel (a = -0.5)
    ramp = np.tile(np.arange(16, dtype=np.float64)[None, :, None], (4, 1, 1))
    out = ops.image.resize(ramp, (4, 32), interpolation="bicubic")
    centres = (np.arange(32) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(out[0, 4:-4, 0], centres[4:-4], atol=1e-12)
    for name in ("lanczos3", "lanczos5"):
        out = ops.image.resize(np.ones((5, 6, 1), np.float32), (9, 4), interpolation=name)
        np.testing.assert_allclose(out, 1.0, rtol=1e-6)
    assert ops.image.resize(np.ones((4, 4, 1), np.uint8) * 200, (9, 9), interpolation="bicubic").dtype == np.uint8


def test_resize_arguments():
    x = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"resize: size must be a pair"):
        ops.image.resize(x, (2,))
    with pytest.raises(ValueError, match=r"resize: size must have a positive"):
        ops.image.resize(x, (0, 2))
    with pytest.raises(ValueError, match=r"resize: interpolation must be one of"):
        ops.image.resize(x, (2, 2), interpolation="area")
    with pytest.raises(ValueError, match=r"resize: fill_mode must be 'constant'"):
        ops.image.resize(x, (2, 2), fill_mode="reflect")
    with pytest.raises(ValueError, match=r"resize: only one of crop_to_aspect_ratio"):
        ops.image.resize(x, (2, 2), crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)
    with pytest.raises(ValueError, match=r"resize: images must be 3-D .* or 4-D"):
        ops.image.resize(x[0], (2, 2))
    with pytest.raises(ValueError, match=r"resize: data_format must be one of"):
        ops.image.resize(x, (2, 2), data_format="NHWC")
    assert ops.image.resize(x, (4, 4)) is not x  # same size: a copy


def test_rgb_to_grayscale_matches_keras(keras):
    img = RNG.integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)
    assert_like_keras(keras, "rgb_to_grayscale", img.astype(np.float32), module=ops.image, rtol=1e-6)
    assert_like_keras(keras, "rgb_to_grayscale", img.transpose(0, 3, 1, 2).astype(np.float32),
                      data_format="channels_first", module=ops.image, rtol=1e-6)


# ----------------------------------------------------------------------------- NumPy only

def test_result_type_follows_the_keras_lattice():
    rt = _dtypes.result_type
    assert rt("int8", int) == "int8"
    assert rt("int8", float) == "float32"
    assert rt("uint8", "int8") == "int16"
    assert rt("uint32", "int32") == "int64"
    assert rt("int64", "uint64") == "float32"
    assert rt("int32", "float16") == "float16"
    assert rt("bool", int) == "int32"
    assert rt("bool", "bool") == "bool"
    assert rt(int, float) == "float32"
    assert rt(int) == "int32"
    assert rt("float64", "float32") == "float64"  # 64-bit inputs stay 64-bit
    assert rt("float16", float) == "float16"
    assert rt() == "float32"
    assert _dtypes.standardize_dtype(np.float32) == "float32"
    assert _dtypes.standardize_dtype(np.dtype("int8")) == "int8"
    assert _dtypes.standardize_dtype(int) == "int32"
    with pytest.raises(ValueError, match="bfloat16"):
        _dtypes.standardize_dtype("bfloat16")


def test_default_dtypes():
    assert ops.convert_to_tensor([1, 2]).dtype == np.int32
    assert ops.convert_to_tensor([1, 2.5]).dtype == np.float32
    assert ops.convert_to_tensor(np.arange(3)).dtype == np.int64  # NumPy arrays keep their dtype
    assert ops.arange(3).dtype == np.int32
    assert ops.zeros(3).dtype == ops.full((2,), 1).dtype == ops.eye(2).dtype == np.float32
    assert ops.mean(np.arange(4)).dtype == np.float32
    assert ops.argmax(np.ones(3)).dtype == np.int32
    assert ops.one_hot(np.array([1]), 3).dtype == np.float32
    assert ops.sum(np.ones(3)).shape == () and isinstance(ops.sum(np.ones(3)), np.ndarray)
    with pytest.raises(ValueError, match="outside the int32 range"):
        ops.convert_to_tensor([2 ** 40])
    assert ops.convert_to_tensor([2 ** 40], dtype="int64")[0] == 2 ** 40


def test_one_hot_errors():
    with pytest.raises(ValueError, match=r"one_hot: x must hold integer class indices"):
        ops.one_hot(np.array([0.5, 1.0]), 3)
    with pytest.raises(TypeError, match=r"one_hot: x must be integer class indices, got dtype bool"):
        ops.one_hot(np.array([True]), 3)
    with pytest.raises(ValueError, match=r"one_hot: x holds class 3, but num_classes is 3"):
        ops.one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match=r"one_hot: num_classes must be a positive integer"):
        ops.one_hot(np.array([0]), 0)
    with pytest.raises(ValueError, match=r"one_hot: sparse=True is not supported"):
        ops.one_hot(np.array([0]), 2, sparse=True)
    np.testing.assert_array_equal(ops.one_hot(np.array([1.0, -1.0]), 2), [[0, 1], [0, 0]])


def test_errors_name_the_function():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape an array of shape \(2, 3\) \(6 elements\) "
                                         r"to \(4,\) \(4 elements\)"):
        ops.reshape(x, (4,))
    with pytest.raises(ValueError, match=r"reshape: cannot reshape"):
        ops.reshape(x, (4, -1))
    with pytest.raises(ValueError, match=r"reshape: newshape may hold one -1"):
        ops.reshape(x, (-1, -1))
    with pytest.raises(ValueError, match=r"squeeze: cannot squeeze axis 1 of shape \(2, 3\)"):
        ops.squeeze(x, axis=1)
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of range for an array of 2 dimension"):
        ops.sum(x, axis=2)
    with pytest.raises(TypeError, match=r"mean: axis must be an integer or a tuple of integers"):
        ops.mean(x, axis=1.5)
    with pytest.raises(IndexError, match=r"take: indices must be in \[-3, 3\)"):
        ops.take(x, np.array([3]), axis=1)
    with pytest.raises(TypeError, match=r"take: indices must be integers"):
        ops.take(x, np.array([0.5]))
    with pytest.raises(ValueError, match=r"transpose: axes must be a permutation"):
        ops.transpose(x, (0, 0))
    with pytest.raises(ValueError, match=r"concatenate: axis cannot be None"):
        ops.concatenate([x, x], axis=None)
    with pytest.raises(ValueError, match=r"add: operands could not be broadcast"):
        ops.add(x, np.zeros(4))
    with pytest.raises(ValueError, match=r"split: 3 elements along axis 1 cannot be split into 2"):
        ops.split(x, 2, axis=1)
    with pytest.raises(ValueError, match=r"pad: constant_values can only be given with mode='constant'"):
        ops.pad(x, 1, mode="reflect", constant_values=1)
    with pytest.raises(ValueError, match=r"top_k: k must be in \[0, 3\]"):
        ops.top_k(x, 4)
    with pytest.raises(ValueError, match=r"categorical_crossentropy: target and output must have the same shape"):
        ops.categorical_crossentropy(x, x[:, :2])
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: target must hold classes in \[0, 3\)"):
        ops.sparse_categorical_crossentropy(np.array([0, 3]), x)
    with pytest.raises(ValueError, match=r"slice: the window \[2, 4\) on axis 0 is outside"):
        ops.slice(x, (2, 0), (2, 1))
    with pytest.raises(TypeError, match=r"convert_to_tensor: x must be a numeric or boolean array"):
        ops.convert_to_tensor(np.array(["a"]))
    with pytest.raises(ValueError, match=r"cast: dtype must be one of"):
        ops.cast(x, "float8")
    with pytest.raises(ValueError, match=r"argmax: x is empty"):
        ops.argmax(np.zeros((0,)))


def test_kernel_ops_keep_their_contracts():
    # the Keras names that were already kernel ops still are, with their signatures
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(ops.softmax(x, axis=0).sum(axis=0), 1, rtol=1e-6)
    assert ops.matmul(x, x.T).dtype == np.float32
    with pytest.raises(ValueError, match=r"matmul: a must be 2-D"):
        ops.matmul(np.ones(3, np.float32), x)
    assert callable(ops.conv2d) and callable(ops.max_pool2d) and callable(ops.softmax_cross_entropy)


def test_cumulative_and_windows():
    np.testing.assert_array_equal(ops.cumsum(np.array([[1, 2], [3, 4]])), [1, 3, 6, 10])
    assert ops.cumsum(np.array([True, True])).dtype == np.int32
    assert ops.cumsum(np.array([1, 2], np.int8), dtype="float32").dtype == np.float32
    np.testing.assert_array_equal(ops.scatter_update(np.zeros(3), np.array([[1], [1]]), np.array([2.0, 3.0]),
                                                     reduction="add"), [0, 5, 0])
    y = np.zeros((2, 2))
    ops.slice_update(y, (0, 0), np.ones((1, 1)))
    assert y.sum() == 0  # functional: the input is not written


def test_float64_stays_float64_and_float16_stays_float16():
    for dtype in (np.float64, np.float16):
        x = np.linspace(0.5, 2.0, 12, dtype=dtype).reshape(3, 4)
        for fn in (ops.sqrt, ops.exp, ops.floor, ops.log_softmax, ops.silu, ops.gelu, ops.logsumexp,
                   ops.norm, ops.mean, ops.var, ops.median, ops.cumsum, lambda v: ops.add(v, 1.5),
                   lambda v: ops.divide(v, 3), lambda v: ops.image.resize(v[..., None], (5, 2))):
            assert fn(x).dtype == dtype, fn
    assert ops.add(np.ones(2, np.int64), 1).dtype == np.int64
    assert ops.sqrt(np.ones(2, np.int64)).dtype == np.float32


def test_resize_reference_values():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    # downsampling by 2 without antialias samples halfway between pixel pairs
    np.testing.assert_allclose(ops.image.resize(x, (2, 2))[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    # with antialias (8 -> 2) the triangle kernel is 4 times wider: output 0 is centred on 1.5 and
    # weighs pixels 0..5 by 1 - |1.5 - j| / 4 = (5, 7, 7, 5, 3, 1) / 8, renormalised
    row = np.arange(8, dtype=np.float64)[None, :, None]
    aa = ops.image.resize(np.repeat(row, 2, axis=0), (2, 2), antialias=True)[0, :, 0]
    weights = np.array([5, 7, 7, 5, 3, 1]) / 8
    first = np.dot(weights, np.arange(6)) / weights.sum()
    np.testing.assert_allclose(aa, [first, 7 - first], rtol=1e-12)
    # nearest picks floor((i + 0.5) * in / out); upsampling clamps the bilinear edges
    np.testing.assert_array_equal(ops.image.resize(x, (4, 2), interpolation="nearest")[0, 0, :, 0], [1, 3])
    up = ops.image.resize(np.array([[[0.0], [1.0]]]), (1, 4))[0, :, 0]
    np.testing.assert_allclose(up, [0, 0.25, 0.75, 1])
    # crop to a square keeps the centre; pad to a square adds fill_value rows on both sides
    wide = np.arange(12, dtype=np.float32).reshape(2, 6, 1)
    np.testing.assert_array_equal(ops.image.resize(wide, (2, 2), interpolation="nearest",
                                                   crop_to_aspect_ratio=True)[..., 0], [[2, 3], [8, 9]])
    padded = ops.image.resize(wide, (6, 6), interpolation="nearest", pad_to_aspect_ratio=True, fill_value=-1)
    np.testing.assert_array_equal(padded[[0, 1, 4, 5], :, 0], -1)
    np.testing.assert_array_equal(padded[2:4, :, 0], wide[..., 0])
    u8 = ops.image.resize(np.full((3, 3, 1), 255, np.uint8), (7, 5), interpolation="bicubic")
    assert u8.dtype == np.uint8 and (u8 == 255).all()  # saturated, not wrapped


def test_signatures_are_keras_signatures(keras):
    """Every function of these modules that Keras has takes Keras 3's parameters and defaults."""
    import inspect

    from cnnfast import random
    from cnnfast.ops import _core, _math, _nn, _numpy

    def parameters(fn):
        return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]

    checked = 0
    for module, keras_module in ((_numpy, keras.ops), (_core, keras.ops), (_math, keras.ops), (_nn, keras.ops),
                                 (ops.image, keras.ops.image), (random, keras.random)):
        for name in module.__all__:
            theirs = getattr(keras_module, name)
            ours = getattr(module, name)
            if inspect.isclass(theirs):
                ours, theirs = ours.__init__, theirs.__init__
            assert parameters(ours) == parameters(theirs), name
            checked += 1
    assert checked > 180
