"""Bad input, swept systematically over every public op and every layer.

For each name in ``cnnfast.ops`` a table below gives one valid call and says what each argument
is: a float input (converted to float32, any layout), an integer index array, a state array
updated in place (never converted), or ``out=``. The generic tests then break each argument in
every way the policy in ``cnnfast/ops/_checks.py`` covers: bool / complex / object / string
dtypes, wrong rank, float64 and non-contiguous inputs (must give the float32 result), read-only,
non-contiguous, mistyped, misshaped and overlapping ``out=`` and state arrays, zero sizes and
NaN. Every refusal must be a Python exception naming the op; nothing may crash.

The second half holds one test per bug found by probing (huge hyper-parameters, wrapped integer
labels, unclear errors). Tests for bugs not fixed yet are ``xfail(strict=True)`` and name the bug;
code that could crash the interpreter runs in a subprocess (``_hardening.run_python``).
"""
from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, models, ops

from _hardening import describe, run_python

F32 = np.float32

# --------------------------------------------------------------------------------------------
# The registry: one valid call per public op.
#
# Each entry: name -> (builder, roles). builder(rng) returns the keyword arguments of a valid call;
# roles maps argument names to "f" (float input), "i" (integer index array), "s" (state array
# updated in place: float32, C-contiguous, writeable, never converted) or "out".


def _img(rng, shape=(2, 6, 5, 3)):
    return rng.standard_normal(shape).astype(F32)


def _state(shape):
    return np.zeros(shape, F32)


def _pos(rng, shape):
    return (np.abs(rng.standard_normal(shape)) + 0.5).astype(F32)


def _maxpool_argmax(rng):
    x = _img(rng, (2, 6, 6, 3))
    y, am = ops.max_pool2d(x, return_argmax=True)
    return dict(dy=rng.standard_normal(y.shape).astype(F32), argmax=am, input_shape=x.shape)


def _gmax_argmax(rng):
    x = _img(rng, (2, 4, 5, 3))
    y, am = ops.global_max_pool2d(x, return_argmax=True)
    return dict(dy=rng.standard_normal(y.shape).astype(F32), argmax=am, input_shape=x.shape)


def _bn_stats(rng):
    x = _img(rng, (4, 3, 3, 5))
    _, mean, inv_std = ops.batch_norm_forward(x, None, None, _state(5), np.ones(5, F32), training=True)
    return dict(dy=_img(rng, x.shape), x=x, gamma=_pos(rng, 5), mean=mean, inv_std=inv_std)


REGISTRY = {
    "matmul": (lambda r: dict(a=r.standard_normal((5, 4)).astype(F32), b=r.standard_normal((4, 3)).astype(F32),
                              bias=r.standard_normal(3).astype(F32), out=None),
               {"a": "f", "b": "f", "bias": "f", "out": "out"}),
    "conv2d": (lambda r: dict(x=_img(r), w=r.standard_normal((3, 2, 3, 4)).astype(F32),
                              bias=r.standard_normal(4).astype(F32), padding="same", out=None),
               {"x": "f", "w": "f", "bias": "f", "out": "out"}),
    "conv2d_max_pool2d": (lambda r: dict(x=_img(r), w=r.standard_normal((3, 2, 3, 4)).astype(F32),
                                         bias=r.standard_normal(4).astype(F32), padding="same",
                                         activation="relu", return_argmax=True),
                          {"x": "f", "w": "f", "bias": "f"}),
    "conv2d_backward": (lambda r: dict(dy=_img(r, (2, 4, 4, 4)), x=_img(r), w=r.standard_normal((3, 2, 3, 4)).astype(F32)),
                        {"dy": "f", "x": "f", "w": "f"}),
    "conv2d_output_shape": (lambda r: dict(input_shape=(2, 6, 5, 3), kernel_shape=(3, 2, 3, 4)), {}),
    "conv2d_transpose": (lambda r: dict(x=_img(r), w=r.standard_normal((3, 3, 2, 3)).astype(F32),
                                        bias=r.standard_normal(2).astype(F32), strides=2),
                         {"x": "f", "w": "f", "bias": "f"}),
    "conv2d_transpose_backward": (lambda r: dict(dy=_img(r, (2, 13, 11, 2)), x=_img(r),
                                                 w=r.standard_normal((3, 3, 2, 3)).astype(F32), strides=2),
                                  {"dy": "f", "x": "f", "w": "f"}),
    "conv2d_transpose_output_shape": (lambda r: dict(input_shape=(2, 6, 5, 3), kernel_shape=(3, 3, 2, 3)), {}),
    "correlate2d": (lambda r: dict(image=r.standard_normal((7, 6)).astype(F32), kernel=r.standard_normal((3, 2)).astype(F32)),
                    {"image": "f", "kernel": "f"}),
    "convolve2d": (lambda r: dict(image=r.standard_normal((7, 6)).astype(F32), kernel=r.standard_normal((3, 2)).astype(F32),
                                  mode="same"),
                   {"image": "f", "kernel": "f"}),
    "pool2d_output_shape": (lambda r: dict(input_shape=(2, 6, 5, 3), pool_size=2), {}),
    "max_pool2d": (lambda r: dict(x=_img(r), pool_size=2), {"x": "f"}),
    "max_pool2d_backward": (_maxpool_argmax, {"dy": "f", "argmax": "i"}),
    "avg_pool2d": (lambda r: dict(x=_img(r), pool_size=(2, 3), padding="same"), {"x": "f"}),
    "avg_pool2d_backward": (lambda r: dict(dy=_img(r, (2, 3, 2, 3)), input_shape=(2, 6, 5, 3), pool_size=(2, 3),
                                           padding="same"),
                            {"dy": "f"}),
    "global_avg_pool2d": (lambda r: dict(x=_img(r)), {"x": "f"}),
    "global_avg_pool2d_backward": (lambda r: dict(dy=_img(r, (2, 3)), input_shape=(2, 6, 5, 3)), {"dy": "f"}),
    "global_max_pool2d": (lambda r: dict(x=_img(r)), {"x": "f"}),
    "global_max_pool2d_backward": (_gmax_argmax, {"dy": "f", "argmax": "i"}),
    "relu": (lambda r: dict(x=_img(r), out=None), {"x": "f", "out": "out"}),
    "relu_backward": (lambda r: dict(dy=_img(r), y=_img(r), out=None), {"dy": "f", "y": "f", "out": "out"}),
    "capped_relu": (lambda r: dict(x=_img(r), max_value=6.0, out=None), {"x": "f", "out": "out"}),
    "capped_relu_backward": (lambda r: dict(dy=_img(r), y=_img(r), max_value=6.0, out=None),
                             {"dy": "f", "y": "f", "out": "out"}),
    "resize_bilinear": (lambda r: dict(x=_img(r), size=(9, 7)), {"x": "f"}),
    "resize_bilinear_backward": (lambda r: dict(dy=_img(r, (2, 9, 7, 3)), input_shape=(2, 6, 5, 3)), {"dy": "f"}),
    "leaky_relu": (lambda r: dict(x=_img(r)), {"x": "f"}),
    "leaky_relu_backward": (lambda r: dict(dy=_img(r), x=_img(r)), {"dy": "f", "x": "f"}),
    "sigmoid": (lambda r: dict(x=_img(r)), {"x": "f"}),
    "sigmoid_backward": (lambda r: dict(dy=_img(r), y=_img(r)), {"dy": "f", "y": "f"}),
    "tanh": (lambda r: dict(x=_img(r)), {"x": "f"}),
    "tanh_backward": (lambda r: dict(dy=_img(r), y=_img(r)), {"dy": "f", "y": "f"}),
    "softmax": (lambda r: dict(x=_img(r), axis=-1), {"x": "f"}),
    "softmax_backward": (lambda r: dict(dy=_img(r), y=_img(r)), {"dy": "f", "y": "f"}),
    "bias_add": (lambda r: dict(x=_img(r), bias=r.standard_normal(3).astype(F32), out=None),
                 {"x": "f", "bias": "f", "out": "out"}),
    "bias_add_backward": (lambda r: dict(dy=_img(r)), {"dy": "f"}),
    "softmax_cross_entropy": (lambda r: dict(logits=r.standard_normal((6, 4)).astype(F32),
                                             labels=np.array([0, 3, 1, 2, 2, 0]),
                                             sample_weight=_pos(r, 6)),
                              {"logits": "f", "labels": "i", "sample_weight": "f"}),
    "dropout": (lambda r: dict(x=_img(r), rate=0.5, seed=3, step=1), {"x": "f"}),
    "dropout_backward": (lambda r: dict(dy=_img(r), rate=0.5, seed=3, step=1), {"dy": "f"}),
    "batch_norm_forward": (lambda r: dict(x=_img(r), gamma=_pos(r, 3), beta=r.standard_normal(3).astype(F32),
                                          moving_mean=_state(3), moving_var=np.ones(3, F32), training=True),
                           {"x": "f", "gamma": "f", "beta": "f", "moving_mean": "s", "moving_var": "s"}),
    "batch_norm_backward": (_bn_stats, {"dy": "f", "x": "f", "gamma": "f", "mean": "f", "inv_std": "f"}),
    "sgd_update": (lambda r: dict(param=r.standard_normal(7).astype(F32), grad=r.standard_normal(7).astype(F32),
                                  velocity=_state(7), learning_rate=0.1, momentum=0.9),
                   {"param": "s", "grad": "f", "velocity": "s"}),
    "adam_update": (lambda r: dict(param=r.standard_normal(7).astype(F32), grad=r.standard_normal(7).astype(F32),
                                   m=_state(7), v=_state(7), v_hat=_state(7), step=1, learning_rate=0.01),
                    {"param": "s", "grad": "f", "m": "s", "v": "s", "v_hat": "s"}),
    "rmsprop_update": (lambda r: dict(param=r.standard_normal(7).astype(F32), grad=r.standard_normal(7).astype(F32),
                                      velocity=_state(7), average_grad=_state(7), momentum_buffer=_state(7),
                                      learning_rate=0.01, centered=True, momentum=0.5),
                       {"param": "s", "grad": "f", "velocity": "s", "average_grad": "s", "momentum_buffer": "s"}),
    "apply_weight_decay": (lambda r: dict(param=r.standard_normal(7).astype(F32), learning_rate=0.1, weight_decay=0.01),
                           {"param": "s"}),
    "global_norm": (lambda r: dict(arrays_or_flat=r.standard_normal((3, 4)).astype(F32)), {"arrays_or_flat": "f"}),
}

# The kernel ops (the modules that call cnnfast._kernels); the Keras-shaped NumPy functions of
# cnnfast.ops (_numpy, _core, _math, _nn, image) have their own tests (tests/test_ops_numpy.py).
KERNEL_MODULES = {f"cnnfast.ops.{m}" for m in ("_gemm", "_conv", "_pool", "_eltwise", "_optim", "_resize")}
PUBLIC_OPS = sorted(n for n in dir(ops) if not n.startswith("_") and callable(getattr(ops, n))
                    and getattr(getattr(ops, n), "__module__", "") in KERNEL_MODULES)


def _call(name, kwargs):
    """Run the op; in-place ops work on copies so the caller's arrays stay intact."""
    kwargs = {k: (v.copy() if isinstance(v, np.ndarray) and REGISTRY[name][1].get(k) == "s" else v)
              for k, v in kwargs.items()}
    result = getattr(ops, name)(**kwargs)
    if result is None:  # in-place update: the state arrays are the result
        result = tuple(v for k, v in kwargs.items() if REGISTRY[name][1].get(k) == "s")
    return result


def _flat_results(result):
    if isinstance(result, (tuple, list)):
        return [np.asarray(r) for r in result if r is not None]
    return [np.asarray(result)]


def _args_with(role):
    return [(name, arg) for name, (_, roles) in REGISTRY.items() for arg, r in roles.items() if r == role]


def test_registry_covers_every_public_op():
    """A new public op must be added to REGISTRY, so the sweeps below cover it."""
    assert sorted(REGISTRY) == PUBLIC_OPS


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_valid_call_runs_and_is_repeatable(name):
    kwargs = REGISTRY[name][0](np.random.default_rng(0))
    first = _flat_results(_call(name, kwargs))
    second = _flat_results(_call(name, kwargs))
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


BAD_DTYPES = {"bool": np.bool_, "complex": np.complex64, "object": object, "str": np.str_}


@pytest.mark.parametrize("name,arg", _args_with("f") + _args_with("s"))
@pytest.mark.parametrize("kind", sorted(BAD_DTYPES))
def test_non_real_dtypes_are_refused(name, arg, kind):
    kwargs = REGISTRY[name][0](np.random.default_rng(0))
    kwargs[arg] = np.asarray(kwargs[arg]).astype(BAD_DTYPES[kind])
    with pytest.raises(TypeError) as info:
        _call(name, kwargs)
    msg = str(info.value)
    assert name in msg and arg.split("_")[0] in msg and "dtype" in msg, msg


@pytest.mark.parametrize("name,arg", _args_with("i"))
@pytest.mark.parametrize("kind", ["float", "bool", "complex", "object", "str"])
def test_index_arrays_refuse_non_integer_dtypes(name, arg, kind):
    kwargs = REGISTRY[name][0](np.random.default_rng(0))
    arr = np.asarray(kwargs[arg])
    if kind == "float" and name == "softmax_cross_entropy":
        # whole floats are valid class indices there; a fraction is not
        kwargs[arg] = arr.astype(np.float64) + 0.5
        expected = ValueError
    else:
        kwargs[arg] = arr.astype({"float": np.float64, "bool": np.bool_, "complex": np.complex64,
                                  "object": object, "str": np.str_}[kind])
        expected = (TypeError, ValueError)
    with pytest.raises(expected) as info:
        _call(name, kwargs)
    assert name in str(info.value)


@pytest.mark.parametrize("name,arg", _args_with("f"))
def test_float64_and_integer_inputs_are_converted(name, arg):
    """float64 / int inputs holding float32-representable values give the float32 result exactly."""
    rng = np.random.default_rng(1)
    kwargs = REGISTRY[name][0](rng)
    if name == "global_norm":
        kwargs[arg] = np.round(kwargs[arg] * 8).astype(F32)
    base = _flat_results(_call(name, kwargs))
    variants = [np.asarray(kwargs[arg]).astype(np.float64)]
    if np.array_equal(np.asarray(kwargs[arg]), np.round(kwargs[arg])):
        variants.append(np.asarray(kwargs[arg]).astype(np.int64))
    for v in variants:
        other = _flat_results(_call(name, {**kwargs, arg: v}))
        for a, b in zip(base, other):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}({arg} as {v.dtype})")


def _non_contiguous(arr):
    """The same values as a strided (non-contiguous) view."""
    arr = np.asarray(arr)
    if arr.ndim == 0:
        return arr
    big = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],), arr.dtype)
    big[..., ::2] = arr
    view = big[..., ::2]
    assert arr.size <= 1 or not view.flags.c_contiguous
    return view


@pytest.mark.parametrize("name,arg", _args_with("f") + _args_with("i"))
def test_non_contiguous_and_fortran_inputs_give_the_same_result(name, arg):
    kwargs = REGISTRY[name][0](np.random.default_rng(2))
    base = _flat_results(_call(name, kwargs))
    for variant in (_non_contiguous(kwargs[arg]), np.asfortranarray(kwargs[arg]), np.asarray(kwargs[arg])[::-1][::-1]):
        other = _flat_results(_call(name, {**kwargs, arg: variant}))
        for a, b in zip(base, other):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}({arg} strides {np.asarray(variant).strides})")


# Ops whose arrays may have any rank (element-wise, or channels on the last axis of any rank).
ANY_RANK = {"relu", "relu_backward", "capped_relu", "capped_relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward", "tanh",
            "tanh_backward", "softmax", "softmax_backward", "bias_add_backward", "dropout", "dropout_backward",
            "global_norm"}
# (op, argument) pairs of any rank in otherwise fixed-rank ops
ANY_RANK_ARGS = {("bias_add", "x"), ("batch_norm_forward", "x")}


@pytest.mark.parametrize("name,arg", [(n, a) for n, a in _args_with("f") if n not in ANY_RANK])
def test_wrong_rank_is_refused_naming_the_op(name, arg):
    kwargs = REGISTRY[name][0](np.random.default_rng(3))
    arr = np.asarray(kwargs[arg])
    for bad in (arr[None], arr.reshape(-1)[:1].reshape(()) if arr.ndim > 1 else arr[None, None]):
        if (name, arg) in ANY_RANK_ARGS and bad.ndim > 0:
            continue
        with pytest.raises((ValueError, TypeError)) as info:
            _call(name, {**kwargs, arg: bad})
        assert name in str(info.value), str(info.value)


OUT_OPS = [n for n, a in _args_with("out")]
IN_PLACE_OPS = {"relu", "relu_backward", "capped_relu", "capped_relu_backward"}   # out may be the input


def _expected_out(name, kwargs):
    return _flat_results(_call(name, kwargs))[0]


@pytest.mark.parametrize("name", OUT_OPS)
def test_out_is_written_and_returned(name):
    kwargs = REGISTRY[name][0](np.random.default_rng(4))
    expected = _expected_out(name, kwargs)
    out = np.full(expected.shape, np.nan, F32)
    result = getattr(ops, name)(**{**kwargs, "out": out})
    assert result is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name", OUT_OPS)
@pytest.mark.parametrize("bad", ["float64", "big-endian", "read-only", "non-contiguous", "fortran", "shape", "list",
                                 "overlap"])
def test_bad_out_is_refused_and_left_untouched(name, bad):
    kwargs = REGISTRY[name][0](np.random.default_rng(4))
    shape = _expected_out(name, kwargs).shape
    first_input = next(k for k, r in REGISTRY[name][1].items() if r == "f")
    if bad == "float64":
        out = np.zeros(shape)
    elif bad == "big-endian":
        out = np.zeros(shape, ">f4")
    elif bad == "read-only":
        out = np.zeros(shape, F32)
        out.setflags(write=False)
    elif bad == "non-contiguous":
        out = _non_contiguous(np.zeros(shape, F32))
    elif bad == "fortran":
        out = np.zeros(shape[::-1], F32).T
        if out.flags.c_contiguous:
            pytest.skip("1-D output: every layout is C-contiguous")
    elif bad == "shape":
        out = np.zeros(shape + (1,), F32)
    elif bad == "list":
        out = np.zeros(shape, F32).tolist()
    elif name in IN_PLACE_OPS:   # exactly the input is allowed: a partial overlap is not
        x = np.asarray(kwargs[first_input], F32)
        buf = np.zeros(x.size + 1, F32)
        buf[:x.size] = x.reshape(-1)
        kwargs = {**kwargs, first_input: buf[:x.size].reshape(x.shape)}
        out = buf[1:].reshape(x.shape)
    else:  # out is the input itself
        out = kwargs[first_input]
        if np.asarray(out).shape != shape:
            pytest.skip("the input and the output differ in shape")
    before = np.array(out, copy=True)
    with pytest.raises((TypeError, ValueError)) as info:
        getattr(ops, name)(**{**kwargs, "out": out})
    assert name in str(info.value) and "out" in str(info.value), str(info.value)
    np.testing.assert_array_equal(np.asarray(out), before)


STATE_ARGS = _args_with("s")


@pytest.mark.parametrize("name,arg", STATE_ARGS)
@pytest.mark.parametrize("bad", ["float64", "read-only", "non-contiguous", "list", "shape", "alias"])
def test_state_arrays_are_never_converted(name, arg, bad):
    """Arrays updated in place must be exactly right: a converted copy would lose the update."""
    kwargs = REGISTRY[name][0](np.random.default_rng(5))
    good = np.asarray(kwargs[arg])
    if bad == "float64":
        value = good.astype(np.float64)
    elif bad == "read-only":
        value = good.copy()
        value.setflags(write=False)
    elif bad == "non-contiguous":
        value = _non_contiguous(good)
    elif bad == "list":
        value = good.tolist()
    elif bad == "shape":
        if name == "apply_weight_decay":
            pytest.skip("the parameter alone defines the shape")
        value = np.zeros(good.size + 1, F32)
    else:  # the same array passed as two different state arguments
        others = [a for n, a in STATE_ARGS if n == name and a != arg]
        if not others:
            pytest.skip("one state array only")
        value = kwargs[others[0]]
    with pytest.raises((TypeError, ValueError)) as info:
        getattr(ops, name)(**{**kwargs, arg: value})
    assert name in str(info.value), str(info.value)


def _zero_batch(name, kwargs):
    """The same call with a batch (first) axis of 0 on every batched array, when that is meaningful."""
    roles = REGISTRY[name][1]
    if name in ("global_norm", "sgd_update", "adam_update", "rmsprop_update", "apply_weight_decay", "matmul",
                "correlate2d", "convolve2d", "bias_add", "softmax_cross_entropy", "batch_norm_backward"):
        return None
    out = dict(kwargs)
    for k, r in roles.items():
        if k != "w" and r in ("f", "i") and isinstance(kwargs[k], np.ndarray) and kwargs[k].ndim == 4 or \
                (k == "dy" and name.startswith("global")) or (k == "argmax" and name.startswith("global")):
            out[k] = kwargs[k][:0]
    if "input_shape" in out:
        out["input_shape"] = (0,) + tuple(out["input_shape"][1:])
    if name.endswith("_output_shape"):
        out["input_shape"] = (0,) + tuple(kwargs["input_shape"][1:])
    if name == "batch_norm_forward":
        out["training"] = False
    if name in ("conv2d", "conv2d_transpose"):
        pass  # w and bias keep their shapes
    return out


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_zero_batch_gives_empty_results(name):
    kwargs = REGISTRY[name][0](np.random.default_rng(6))
    empty = _zero_batch(name, kwargs)
    if empty is None:
        pytest.skip("no batch axis")
    full = _flat_results(_call(name, kwargs))
    result = _call(name, empty)
    if isinstance(result, tuple) and name.endswith("_output_shape"):
        assert result[0] == 0 and result[1:] == _call(name, kwargs)[1:]
        return
    for i, (a, b) in enumerate(zip(full, _flat_results(result))):
        batched = i == 0 if name.startswith("conv2d") and name.endswith("backward") else \
            (a.ndim == 4 or (name.startswith("global") and a.ndim == 2))
        if batched:
            assert b.shape == (0,) + a.shape[1:], (name, a.shape, b.shape)
        else:  # per-channel outputs (weight and bias gradients) keep their shape and are zero
            assert b.shape == a.shape
            if name.endswith("backward") and b.ndim in (1, 4):
                np.testing.assert_array_equal(b, 0)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_nan_inputs_do_not_crash(name):
    kwargs = REGISTRY[name][0](np.random.default_rng(7))
    for k, r in REGISTRY[name][1].items():
        if r == "f" and isinstance(kwargs[k], np.ndarray) and k not in ("mean", "inv_std"):
            kwargs[k] = np.full(np.shape(kwargs[k]), np.nan, F32)
    for result in _flat_results(_call(name, kwargs)):
        assert result.dtype in (np.float32, np.float64, np.int32, np.uint8, np.int64)


# --- sizes whose products overflow or exceed memory ---------------------------------------------

HUGE_SHAPE_CALLS = {
    "conv2d_output_shape": lambda: ops.conv2d_output_shape((2**40, 2**40, 2**40, 3), (3, 3, 3, 4)),
    "pool2d_output_shape": lambda: ops.pool2d_output_shape((2**40, 2**40, 2**40, 3), 2),
}

HUGE_ALLOCATIONS = {  # outputs of 2**63 elements and more from small inputs
    "max_pool2d_backward": lambda: ops.max_pool2d_backward(np.ones((2, 1, 1, 3), F32), np.zeros((2, 1, 1, 3), np.int32),
                                                            (2, 2**40, 2**40, 3), 1, strides=2**40),
    "avg_pool2d_backward": lambda: ops.avg_pool2d_backward(np.ones((2, 1, 1, 3), F32), (2, 2**40, 2**40, 3), 1,
                                                            strides=2**40),
    "global_avg_pool2d_backward": lambda: ops.global_avg_pool2d_backward(np.ones((2, 3), F32), (2, 2**40, 2**40, 3)),
    "global_max_pool2d_backward": lambda: ops.global_max_pool2d_backward(np.ones((2, 3), F32), np.zeros((2, 3), np.int32),
                                                                          (2, 2**40, 2**40, 3)),
    "conv2d": lambda: ops.conv2d(np.ones((1, 2, 2, 1), F32), np.ones((1, 1, 1, 1), F32), padding=2**30),
    "conv2d_max_pool2d": lambda: ops.conv2d_max_pool2d(np.ones((1, 2, 2, 1), F32), np.ones((1, 1, 1, 1), F32),
                                                       padding=2**30, pool_size=1),
}


@pytest.mark.parametrize("name", sorted(HUGE_SHAPE_CALLS))
def test_shape_helpers_handle_huge_sizes(name):
    shape = HUGE_SHAPE_CALLS[name]()
    assert shape[0] == 2**40 and all(isinstance(s, int) for s in shape)


@pytest.mark.parametrize("name", sorted(HUGE_ALLOCATIONS))
def test_overflowing_sizes_raise_before_allocating(name):
    with pytest.raises(MemoryError) as info:
        HUGE_ALLOCATIONS[name]()
    assert name in str(info.value)


# --------------------------------------------------------------------------------------------
# Layers: the same sweep over every layer class.

X4 = np.random.default_rng(8).standard_normal((2, 6, 6, 3)).astype(F32)

LAYERS = {
    "Dense": lambda: layers.Dense(4), "Conv2D": lambda: layers.Conv2D(4, 3),
    "DepthwiseConv2D": lambda: layers.DepthwiseConv2D(3), "Conv2DTranspose": lambda: layers.Conv2DTranspose(4, 3),
    "MaxPooling2D": lambda: layers.MaxPooling2D(), "AveragePooling2D": lambda: layers.AveragePooling2D(2),
    "GlobalAveragePooling2D": lambda: layers.GlobalAveragePooling2D(),
    "GlobalMaxPooling2D": lambda: layers.GlobalMaxPooling2D(), "Flatten": lambda: layers.Flatten(),
    "Reshape": lambda: layers.Reshape((-1,)), "UpSampling2D": lambda: layers.UpSampling2D(),
    "ZeroPadding2D": lambda: layers.ZeroPadding2D(), "Cropping2D": lambda: layers.Cropping2D(1),
    "ReLU": lambda: layers.ReLU(), "LeakyReLU": lambda: layers.LeakyReLU(), "Softmax": lambda: layers.Softmax(),
    "BatchNormalization": lambda: layers.BatchNormalization(), "Activation": lambda: layers.Activation("tanh"),
    "Dropout": lambda: layers.Dropout(0.5), "Rescaling": lambda: layers.Rescaling(1 / 255.0),
    "Normalization": lambda: layers.Normalization(),
    "SeparableConv2D": lambda: layers.SeparableConv2D(4, 3), "Permute": lambda: layers.Permute((2, 1, 3)),
    "LayerNormalization": lambda: layers.LayerNormalization(),
    "GroupNormalization": lambda: layers.GroupNormalization(groups=3),
    "UnitNormalization": lambda: layers.UnitNormalization(),
    "SpatialDropout2D": lambda: layers.SpatialDropout2D(0.5),
    "GaussianNoise": lambda: layers.GaussianNoise(0.1, seed=1), "GaussianDropout": lambda: layers.GaussianDropout(0.2, seed=1),
    "AlphaDropout": lambda: layers.AlphaDropout(0.2, seed=1),
    "ActivityRegularization": lambda: layers.ActivityRegularization(l2=0.01),
    "Identity": lambda: layers.Identity(), "PReLU": lambda: layers.PReLU(), "ELU": lambda: layers.ELU(),
    "RandomFlip": lambda: layers.RandomFlip(seed=1), "RandomRotation": lambda: layers.RandomRotation(0.1, seed=1),
    "RandomZoom": lambda: layers.RandomZoom(0.1, seed=1),
    "RandomTranslation": lambda: layers.RandomTranslation(0.1, 0.1, seed=1),
    "RandomCrop": lambda: layers.RandomCrop(4, 4, seed=1), "RandomContrast": lambda: layers.RandomContrast(0.2, seed=1),
    "RandomBrightness": lambda: layers.RandomBrightness(0.2, seed=1), "Resizing": lambda: layers.Resizing(4, 5),
    "CenterCrop": lambda: layers.CenterCrop(4, 4),
}
# Volumes (N, D, H, W, C): the same sweep on X5 below.
VOLUME_LAYERS = {
    "Conv3D": lambda: layers.Conv3D(4, 3), "Conv3DTranspose": lambda: layers.Conv3DTranspose(4, 3, strides=2),
    "MaxPooling3D": lambda: layers.MaxPooling3D(), "AveragePooling3D": lambda: layers.AveragePooling3D(2),
    "GlobalAveragePooling3D": lambda: layers.GlobalAveragePooling3D(),
    "GlobalMaxPooling3D": lambda: layers.GlobalMaxPooling3D(), "UpSampling3D": lambda: layers.UpSampling3D(),
    "ZeroPadding3D": lambda: layers.ZeroPadding3D(), "Cropping3D": lambda: layers.Cropping3D(1),
}
# Inputs of another rank than X4's: their own bad-input tests are in tests/test_layers_more.py.
# The sequence layers' sweep is in tests/test_layers_1d.py, the text layers' in their own files.
OTHER_RANK = {"SpatialDropout1D": lambda: layers.SpatialDropout1D(0.5),
              "SpatialDropout3D": lambda: layers.SpatialDropout3D(0.5)}
OTHER_RANK.update({name: None for name in (
    "Conv1D", "SeparableConv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D",
    "GlobalAveragePooling1D", "UpSampling1D", "ZeroPadding1D", "Cropping1D", "RepeatVector", "Lambda",
    "Embedding", "TextVectorization")})
# A new random draw at each training call.
RANDOM_IN_TRAINING = {"Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                      "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop",
                      "RandomContrast", "RandomBrightness"}
FOUR_D_ONLY = {"Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "MaxPooling2D", "AveragePooling2D",
               "SeparableConv2D", "Permute",
               "GlobalAveragePooling2D", "GlobalMaxPooling2D", "UpSampling2D", "ZeroPadding2D", "Cropping2D"}


MERGES = {"InputLayer", "Add", "Subtract", "Multiply", "Average", "Concatenate", "Maximum", "Minimum", "Dot"}


def test_layer_table_covers_every_serializable_layer():
    assert set(LAYERS) | set(VOLUME_LAYERS) | set(OTHER_RANK) | MERGES == set(layers.SERIALIZABLE)


X5 = np.random.default_rng(9).standard_normal((2, 5, 6, 6, 3)).astype(F32)


@pytest.mark.parametrize("name", sorted(VOLUME_LAYERS))
def test_volume_layers_sweep(name):
    layer = VOLUME_LAYERS[name]()
    for kind in sorted(BAD_DTYPES):
        with pytest.raises(TypeError) as info:
            layer(X5.astype(BAD_DTYPES[kind]))
        assert layer.name in str(info.value) and "dtype" in str(info.value)
    with pytest.raises(ValueError, match="batch axis"):
        VOLUME_LAYERS[name]()(np.float32(1))
    with pytest.raises(ValueError, match="depth, height, width"):
        VOLUME_LAYERS[name]()(np.ones((2, 6, 6, 3), F32))
    for training in (False, True):
        ref = layer(X5, training=training)
        for variant in (X5.astype(np.float64), X5.tolist(), _non_contiguous(X5), np.asfortranarray(X5)):
            np.testing.assert_array_equal(layer(variant, training=training), ref)
    assert layer(np.full(X5.shape, np.nan, F32), training=True).dtype == F32
    assert layer(X5[:0]).shape == (0,) + ref.shape[1:]
    if layer.weights:
        with pytest.raises(ValueError) as info:
            layer(np.ones((2, 5, 6, 6, 5), F32))
        assert layer.name in str(info.value)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("kind", sorted(BAD_DTYPES))
def test_layers_refuse_non_real_dtypes(name, kind):
    layer = LAYERS[name]()
    with pytest.raises(TypeError) as info:
        layer(X4.astype(BAD_DTYPES[kind]))
    assert layer.name in str(info.value) and "dtype" in str(info.value)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_convert_float64_lists_and_strided_inputs(name):
    layer = LAYERS[name]()
    for training in (False,) if name in RANDOM_IN_TRAINING else (False, True):  # a new draw per call
        ref = layer(X4, training=training)
        for variant in (X4.astype(np.float64), X4.tolist(), _non_contiguous(X4), np.asfortranarray(X4)):
            np.testing.assert_array_equal(layer(variant, training=training), ref)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_refuse_wrong_rank_and_scalars(name):
    layer = LAYERS[name]()
    with pytest.raises(ValueError) as info:
        layer(np.float32(1))
    assert layer.name in str(info.value)
    if name in FOUR_D_ONLY:
        for bad in (np.ones((2, 3), F32), np.ones((2, 6, 6, 3, 1), F32)):
            with pytest.raises(ValueError) as info:
                LAYERS[name]()(bad)
            assert "4" in str(info.value) or "height" in str(info.value)


@pytest.mark.parametrize("name", sorted(n for n in LAYERS if n not in ("Flatten", "Reshape")))
def test_built_layers_refuse_another_channel_count(name):
    layer = LAYERS[name]()
    layer(X4)
    other = np.ones((2, 6, 6, 5), F32)
    if layer.weights:
        with pytest.raises(ValueError) as info:
            layer(other)
        assert layer.name in str(info.value)
    else:
        assert layer(other).shape[-1] in (5, 6 * 6 * 5)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_with_nan_inputs_do_not_crash(name):
    y = LAYERS[name]()(np.full(X4.shape, np.nan, F32), training=True)
    assert y.dtype == F32


@pytest.mark.parametrize("name", sorted(n for n in LAYERS if n not in ("Dense", "Flatten", "Reshape")))
def test_layers_accept_an_empty_batch(name):
    layer = LAYERS[name]()
    full = layer(X4)
    empty = layer(X4[:0])
    assert empty.shape == (0,) + full.shape[1:]


@pytest.mark.parametrize("name", ["Flatten", "Reshape"])
def test_flatten_and_reshape_accept_an_empty_batch(name):
    layer = LAYERS[name]()
    full = layer(X4)
    assert layer(X4[:0]).shape == (0,) + full.shape[1:]


def test_dense_on_zero_features_gives_the_bias():
    layer = layers.Dense(3, bias_initializer="ones")
    y = layer(np.ones((2, 0), F32))
    np.testing.assert_array_equal(y, np.ones((2, 3), F32))


@pytest.mark.parametrize("build", [
    lambda: models.Sequential([layers.Input((2**31, 2**31, 1)), layers.Flatten(), layers.Dense(3)]),
    lambda: models.Sequential([layers.Input((4, 4, 3)), layers.Conv2D(2**40, 3)]),
    lambda: layers.Dense(2**45)(np.ones((1, 3), F32)),
], ids=["flatten-dense", "conv-filters", "dense-units"])
def test_huge_weights_are_refused_naming_the_layer(build):
    with pytest.raises((MemoryError, ValueError)) as info:
        build()
    msg = str(info.value)
    assert ("dense" in msg or "conv2d" in msg) and "shape" in msg, msg


@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Concatenate"])
def test_merge_layers_refuse_mismatched_and_non_list_inputs(merge):
    layer = getattr(layers, merge)()
    a, b = np.ones((2, 3), F32), np.ones((3, 4), F32)
    with pytest.raises(ValueError) as info:
        layer([a, b])
    assert layer.name in str(info.value)
    with pytest.raises(ValueError):
        getattr(layers, merge)()(a)
    with pytest.raises(TypeError):
        getattr(layers, merge)()([a, a.astype(np.complex64)])


# --------------------------------------------------------------------------------------------
# Bugs found by probing. Crashers run in a subprocess.

CRASH_PRELUDE = """
import numpy as np, cnnfast
from cnnfast import ops
f32 = np.float32
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 5, 5, 3)).astype(f32)
w = rng.standard_normal((3, 3, 3, 4)).astype(f32)
"""


def _run_on_every_isa(body: str, timeout: float = 120.0):
    code = CRASH_PRELUDE + "for isa in cnnfast.available_isas():\n    with cnnfast.use_isa(isa):\n" + \
        "\n".join("        " + line for line in body.strip().splitlines()) + "\nprint('survived')\n"
    return run_python(code, timeout=timeout, threads=2)


@pytest.mark.parametrize("stride", [2**16, 2**30])
def test_conv_backward_with_a_stride_larger_than_the_input(stride):
    proc = _run_on_every_isa(f"""
dy = rng.standard_normal((2, 1, 1, 4)).astype(f32)
dx, dw, db = ops.conv2d_backward(dy, x, w, strides={stride})
rdx, rdw, rdb = ops.conv2d_backward(dy, x, w, strides=5)   # same geometry: one output pixel
assert np.array_equal(dx, rdx) and np.array_equal(dw, rdw) and np.array_equal(db, rdb), isa
""")
    assert proc.returncode == 0 and "survived" in proc.stdout, describe(proc)


@pytest.mark.parametrize("dilation", [2**30, 2**61])
def test_conv_with_huge_dilation_is_refused_or_correct(dilation):
    proc = _run_on_every_isa(f"""
center = ops.conv2d(x, w[1:2, 1:2])          # every other tap lands in the padding
for call in (lambda: ops.conv2d(x, w, dilation={dilation}, padding='same'),
             lambda: ops.conv2d_backward(np.ones((2, 5, 5, 4), f32), x, w, dilation={dilation}, padding='same'),
             lambda: ops.conv2d_transpose(x, np.ones((3, 3, 2, 3), f32), dilation={dilation}, padding='same')):
    try:
        y = call()
    except ValueError as exc:       # a clear refusal naming the op is fine
        assert 'conv2d' in str(exc), exc
""")
    assert proc.returncode == 0 and "survived" in proc.stdout, describe(proc)


@pytest.mark.parametrize("pool", [2**40, 2**62])
def test_avg_pool_with_a_pool_larger_than_the_input(pool):
    proc = _run_on_every_isa(f"""
big = ops.avg_pool2d(x, (2, {pool}), strides=1, padding='same')
small = ops.avg_pool2d(x, (2, 11), strides=1, padding='same')  # also covers every column
assert np.array_equal(big, small), isa
dy = rng.standard_normal(big.shape).astype(f32)
assert np.array_equal(ops.avg_pool2d_backward(dy, x.shape, (2, {pool}), strides=1, padding='same'),
                      ops.avg_pool2d_backward(dy, x.shape, (2, 11), strides=1, padding='same')), isa
""")
    assert proc.returncode == 0 and "survived" in proc.stdout, describe(proc)


@pytest.mark.parametrize("pool", [2**8 + 1, 2**30 + 1, 2**31 + 1, 2**62 + 1])
def test_max_pool_with_a_pool_larger_than_the_input_is_exact(pool):
    """Exact, or (for windows of 2**31 cells or more, which an int32 argmax cannot index) refused."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 5, 5, 3)).astype(F32)
    try:
        y, am = ops.max_pool2d(x, (2, pool), strides=1, padding="same", return_argmax=True)
    except ValueError as exc:
        assert 2 * pool > 2**31 and "max_pool2d" in str(exc) and "pool_size" in str(exc)
        with pytest.raises(ValueError, match="max_pool2d_backward.*pool_size"):  # the backward refuses too
            ops.max_pool2d_backward(np.ones((2, 5, 5, 3), F32), np.zeros((2, 5, 5, 3), np.int32), x.shape,
                                    (2, pool), strides=1, padding="same")
        np.testing.assert_array_equal(ops.max_pool2d(x, (2, pool), strides=1, padding="same"),
                                      ops.max_pool2d(x, (2, 11), strides=1, padding="same"))  # no argmax: exact
        return
    ys, ams = ops.max_pool2d(x, (2, 11), strides=1, padding="same", return_argmax=True)
    np.testing.assert_array_equal(y, ys)
    dy = rng.standard_normal(y.shape).astype(F32)
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy, am, x.shape, (2, pool), strides=1, padding="same"),
                                  ops.max_pool2d_backward(dy, ams, x.shape, (2, 11), strides=1, padding="same"))


@pytest.mark.parametrize("bad", [2**32, 2**32 + 1, -(2**32), 2**40 + 2])
def test_out_of_range_int64_labels_are_refused(bad):
    logits = np.zeros((2, 3), F32)
    with pytest.raises(ValueError, match="softmax_cross_entropy"):
        ops.softmax_cross_entropy(logits, np.array([bad, 1], np.int64))


def test_float_label_error_reports_the_value_given():
    with pytest.raises(ValueError, match="4294967296"):
        ops.softmax_cross_entropy(np.zeros((2, 3), F32), np.array([2.0**32, 1.0]))


def test_max_pool_backward_int64_argmax_out_of_range():
    x = np.random.default_rng(10).standard_normal((1, 4, 4, 1)).astype(F32)
    y = ops.max_pool2d(x)
    argmax = np.full(y.shape, 2**40, np.int64)
    try:
        dx = ops.max_pool2d_backward(np.ones_like(y), argmax, x.shape)
    except ValueError as exc:
        assert "max_pool2d_backward" in str(exc)
    else:
        np.testing.assert_array_equal(dx, 0)


def test_global_max_pool_backward_int64_argmax_out_of_range():
    with pytest.raises(ValueError, match="global_max_pool2d_backward"):
        ops.global_max_pool2d_backward(np.ones((1, 2), F32), np.full((1, 2), 2**32, np.int64), (1, 3, 3, 2))


def test_conv_transpose_huge_output_is_refused_naming_the_op():
    with pytest.raises((MemoryError, ValueError), match="conv2d_transpose"):
        ops.conv2d_transpose(np.ones((2, 3, 3, 4), F32), np.ones((3, 3, 2, 4), F32), strides=2**40)


def test_conv_transpose_backward_with_zero_filters():
    dx, dw, db = ops.conv2d_transpose_backward(np.ones((2, 5, 5, 0), F32), np.ones((2, 3, 3, 4), F32),
                                               np.ones((3, 3, 0, 4), F32))
    np.testing.assert_array_equal(dx, np.zeros((2, 3, 3, 4), F32))
    assert dw.shape == (3, 3, 0, 4) and db.shape == (0,)


@pytest.mark.parametrize("call", [
    lambda: ops.conv2d(np.ones((1, 3, 3, 1), F32), np.ones((1, 1, 1, 1), F32), strides=2**63),
    lambda: ops.adam_update(np.ones(3, F32), np.ones(3, F32), np.zeros(3, F32), np.zeros(3, F32), step=2**63,
                            learning_rate=0.1),
    lambda: ops.max_pool2d(np.ones((1, 3, 3, 1), F32), 2**64, padding="same"),
], ids=["conv2d-strides", "adam-step", "max_pool2d-pool"])
def test_integers_beyond_int64_are_refused_naming_the_op(call):
    with pytest.raises((ValueError, OverflowError)) as info:
        call()
    assert any(op in str(info.value) for op in ("conv2d", "adam_update", "max_pool2d")), str(info.value)


def test_uint64_seeds_and_steps_stay_accepted_where_the_kernel_takes_uint64():
    x = np.ones(64, F32)
    top = 2**64 - 1  # beyond int64: only dropout's seed/step take the whole uint64 range
    np.testing.assert_array_equal(ops.dropout(x, 0.5, top, top), ops.dropout(x, 0.5, top, top))
    assert layers.Dropout(0.5, seed=top).seed == top
    with pytest.raises(ValueError, match="dropout: seed must be < 2"):
        ops.dropout(x, 0.5, 2**64, 0)


def test_input_copy_too_large_for_memory_names_the_op():
    huge = np.broadcast_to(F32(1), (2**20, 2**20))  # a 0-byte view of 4 TiB
    with pytest.raises(MemoryError, match="matmul"):
        ops.matmul(huge, np.ones((2**20, 1), F32))


def test_zero_dimensional_parameters_can_be_updated():
    param = np.array(1.0, F32)
    ops.sgd_update(param, np.array(0.5), learning_rate=0.1)
    assert param == np.float32(0.95)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_matrix_out_is_refused_naming_the_op():
    with pytest.raises((TypeError, ValueError), match="relu"):
        ops.relu(np.ones((2, 3), F32), out=np.asmatrix(np.empty((2, 3), F32)))


def test_huge_integer_hyperparameter_names_the_op():
    with pytest.raises((ValueError, TypeError), match="dropout"):
        ops.dropout(np.ones(3, F32), 10**400, 0, 0)


def test_nan_in_hyperparameters_is_refused():
    x = np.ones((1, 4, 4, 1), F32)
    for call, name in ((lambda: ops.dropout(x, float("nan"), 0, 0), "dropout"),
                       (lambda: ops.leaky_relu(x, float("inf")), "leaky_relu"),
                       (lambda: ops.sgd_update(np.ones(3, F32), np.ones(3), learning_rate=float("nan")), "sgd_update"),
                       (lambda: ops.batch_norm_forward(x, None, None, np.zeros(1, F32), np.ones(1, F32),
                                                       training=True, epsilon=float("nan")), "batch_norm_forward")):
        with pytest.raises(ValueError, match=name):
            call()


def test_negative_and_zero_hyperparameters_are_refused():
    x = np.ones((1, 5, 5, 2), F32)
    w = np.ones((3, 3, 2, 2), F32)
    for kwargs, arg in ((dict(strides=0), "strides"), (dict(strides=(1, -1)), "strides"),
                        (dict(dilation=0), "dilation"), (dict(padding=-1), "padding"),
                        (dict(padding=((0, -1), (0, 0))), "padding"), (dict(groups=0), "groups"),
                        (dict(groups=3), "groups")):
        with pytest.raises((ValueError, TypeError), match=f"conv2d.*{arg}|{arg}.*conv2d"):
            ops.conv2d(x, w, **kwargs)
    for kwargs, arg in ((dict(pool_size=0), "pool_size"), (dict(strides=-2), "strides"),
                        (dict(padding="full"), "padding")):
        with pytest.raises(ValueError, match=arg):
            ops.max_pool2d(x, **kwargs)


def test_bool_is_not_an_integer_hyperparameter():
    x = np.ones((1, 5, 5, 2), F32)
    with pytest.raises(TypeError, match="strides"):
        ops.conv2d(x, np.ones((3, 3, 2, 2), F32), strides=True)
    with pytest.raises(TypeError, match="axis"):
        ops.softmax(x, axis=True)
    with pytest.raises(TypeError, match="trans_a"):
        ops.matmul(np.ones((2, 2)), np.ones((2, 2)), trans_a=1)


def test_isa_and_thread_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="set_num_threads"):
        cnnfast.set_num_threads(0)
    with pytest.raises(ValueError, match="set_num_threads"):
        cnnfast.set_num_threads(True)
    with pytest.raises(ValueError, match="set_isa"):
        cnnfast.set_isa("sse9")


@pytest.mark.parametrize("case", ["igemm", "few-outputs", "depthwise", "winograd", "transpose"])
def test_fused_conv_relu_propagates_nan(case, isa):
    """A diverged Conv2D(activation='relu') must stay visible to TerminateOnNaN (BUG-W4)."""
    from cnnfast.ops import _conv
    rng = np.random.default_rng(12)
    cin, cout, groups, algo = {"igemm": (8, 24, 1, "igemm"), "few-outputs": (16, 2, 1, "igemm"),
                               "depthwise": (8, 8, 8, "depthwise"), "winograd": (16, 16, 1, "winograd"),
                               "transpose": (8, 8, 1, "auto")}[case]
    x = rng.standard_normal((1, 8, 8, cin)).astype(F32)
    x[0, 3, 4, :] = np.nan
    with _conv.force_algorithm(algo):
        if case == "transpose":
            w = rng.standard_normal((3, 3, cout, cin)).astype(F32)
            fused = ops.conv2d_transpose(x, w, strides=2, activation="relu")
            plain = ops.conv2d_transpose(x, w, strides=2)
        else:
            w = rng.standard_normal((3, 3, cin // groups, cout)).astype(F32)
            fused = ops.conv2d(x, w, padding="same", groups=groups, activation="relu")
            plain = ops.conv2d(x, w, padding="same", groups=groups)
    assert np.isnan(plain).any()
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(plain))
    np.testing.assert_array_equal(fused, ops.relu(plain))


def test_nan_inputs_in_training_are_caught_by_terminate_on_nan(capsys):
    from cnnfast import callbacks
    cnnfast.utils.set_random_seed(0)
    model = models.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3), layers.Flatten(),
                               layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(11).standard_normal((32, 6, 6, 1)).astype(F32)
    x[5, 2, 2, 0] = np.nan  # in the first batch
    history = model.fit(x, np.zeros(32, int), batch_size=8, epochs=3, shuffle=False, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN()])
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert len(history.history["loss"]) == 1 and not np.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations == 1
