"""Property-based tests (hypothesis): the kernels against the float64 references in
``tests/reference`` over random shapes, strides, paddings, dilations, groups, algorithms, memory
layouts, ISA paths and thread counts.

Accuracy is checked against the standard float32 summation bound rather than a fixed tolerance:
an output that sums ``K`` products may differ from the exact value by about ``K * 2**-24`` times
the same sum taken over absolute values (computed by the reference on ``|x|`` and ``|w|``), so a
bound of ``(K + 2) * 2**-23 * sum|x||w|`` never fails for a correct kernel and catches any wrong
tap, channel or pixel (an error the size of one term). Winograd transforms get 16x that.

``derandomize=True`` makes every run draw the same examples, so CI is reproducible; run with
``--hypothesis-seed=random`` (or the fuzz campaigns in ``fuzz/``) to explore further.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cnnfast  # noqa: E402
from cnnfast import ops  # noqa: E402
from cnnfast.ops import _conv  # noqa: E402

from reference import conv as conv_ref  # noqa: E402
from reference import gemm as gemm_ref  # noqa: E402
from reference import pool as pool_ref  # noqa: E402

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(hypothesis.HealthCheck))
EPS = 2.0**-23


@contextlib.contextmanager
def running_on(isa: str, threads: int):
    previous = cnnfast.get_num_threads()
    cnnfast.set_num_threads(threads)
    try:
        with cnnfast.use_isa(isa):
            yield
    finally:
        cnnfast.set_num_threads(previous)


def within_bound(actual, expected, abs_sum, terms, factor=1.0, what=""):
    """|actual - expected| <= factor * (terms + 2) * 2**-23 * abs_sum (+ a denormal-sized floor)."""
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    bound = factor * (terms + 2) * EPS * np.asarray(abs_sum, np.float64) + 1e-30
    err = np.abs(actual - expected)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), (f"{what}: error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst} "
                                  f"(value {expected[worst]:.6g})")


def layout(arr, kind: str):
    """The same values in another memory layout: C, Fortran, strided (every other element) or reversed."""
    if kind == "C":
        return arr
    if kind == "F":
        return np.asfortranarray(arr)
    if kind == "strided":
        big = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1] + 1,), arr.dtype)
        big[..., 1::2] = arr
        return big[..., 1::2]
    rev = np.ascontiguousarray(arr[::-1])
    return rev[::-1]  # negative strides


ISAS = st.sampled_from(cnnfast.available_isas())
THREADS = st.sampled_from([1, 2])
LAYOUTS = st.sampled_from(["C", "F", "strided", "reversed"])


@st.composite
def conv_problems(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cig = draw(st.integers(1, 4))
    cog = draw(st.integers(1, 5))
    depthwise = groups > 1 and cig == 1 and draw(st.booleans())
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    kind = draw(st.sampled_from(["valid", "same", "full", "int", "pair", "explicit"]))
    if kind in ("valid", "same", "full"):
        padding = kind
    elif kind == "int":
        padding = draw(st.integers(0, 3))
    elif kind == "pair":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    else:
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    pads = conv_ref.pads_for(padding if not isinstance(padding, int) else padding, (n, h, w, groups * cig),
                             (kh, kw), (sh, sw), (dh, dw))
    ho = conv_ref._out_size(h, kh, sh, dh, *pads[0])
    wo = conv_ref._out_size(w, kw, sw, dw, *pads[1])
    assume(ho >= 1 and wo >= 1)
    algo = "depthwise" if depthwise else draw(st.sampled_from(["auto", "igemm"]))
    if (kh, kw, sh, sw, dh, dw, groups) == (3, 3, 1, 1, 1, 1, 1) and draw(st.booleans()):
        algo = "winograd"
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, groups * cig)).astype(np.float32)
    wt = rng.standard_normal((kh, kw, cig, groups * cog)).astype(np.float32)
    bias = rng.standard_normal(groups * cog).astype(np.float32) if draw(st.booleans()) else None
    return dict(x=x, w=wt, bias=bias, strides=(sh, sw), padding=padding, pads=pads, dilation=(dh, dw),
                groups=groups, relu=draw(st.booleans()), algo=algo, out=(n, ho, wo, groups * cog))


@settings(max_examples=70, **SETTINGS)
@given(conv_problems(), ISAS, THREADS, LAYOUTS)
def test_conv2d_forward_matches_reference(p, isa, threads, memory_layout):
    with running_on(isa, threads), _conv.force_algorithm(p["algo"]):
        y = ops.conv2d(layout(p["x"], memory_layout), p["w"], bias=p["bias"], strides=p["strides"],
                       padding=p["padding"], dilation=p["dilation"], groups=p["groups"],
                       activation="relu" if p["relu"] else None)
    args = (p["strides"], p["pads"], p["dilation"], p["groups"])
    expected = conv_ref.conv2d(p["x"], p["w"], p["bias"], *args, relu=p["relu"])
    abs_sum = conv_ref.conv2d(np.abs(p["x"]), np.abs(p["w"]), None if p["bias"] is None else np.abs(p["bias"]), *args)
    terms = p["w"].shape[0] * p["w"].shape[1] * p["w"].shape[2]
    within_bound(y, expected, abs_sum, terms, 16.0 if p["algo"] == "winograd" else 1.0, "conv2d")


@settings(max_examples=50, **SETTINGS)
@given(conv_problems(), ISAS, THREADS)
def test_conv2d_backward_matches_reference(p, isa, threads):
    rng = np.random.default_rng(int(abs(p["x"]).sum() * 1000) % 2**32)
    dy = rng.standard_normal(p["out"]).astype(np.float32)
    with running_on(isa, threads), _conv.force_algorithm(p["algo"]):
        dx, dw, db = ops.conv2d_backward(dy, p["x"], p["w"], strides=p["strides"], padding=p["padding"],
                                         dilation=p["dilation"], groups=p["groups"])
    args = (p["strides"], p["pads"], p["dilation"], p["groups"])
    rdx, rdw, rdb = conv_ref.conv2d_backward(dy, p["x"], p["w"], *args)
    adx, adw, adb = conv_ref.conv2d_backward(np.abs(dy), np.abs(p["x"]), np.abs(p["w"]), *args)
    kh, kw, cig, cout = p["w"].shape
    factor = 16.0 if p["algo"] == "winograd" else 1.0
    within_bound(dx, rdx, adx, kh * kw * cout // p["groups"], factor, "dx")
    within_bound(dw, rdw, adw, dy.shape[0] * dy.shape[1] * dy.shape[2], factor, "dw")
    within_bound(db, rdb, adb, dy.shape[0] * dy.shape[1] * dy.shape[2], 1.0, "db")


@st.composite
def transpose_problems(draw):
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    cin, filters = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = (1, 1) if (sh, sw) != (1, 1) else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["valid", "same"]))
    output_padding = None
    if draw(st.booleans()):
        output_padding = (draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return dict(x=rng.standard_normal((n, h, w, cin)).astype(np.float32),
                w=rng.standard_normal((kh, kw, filters, cin)).astype(np.float32),
                bias=rng.standard_normal(filters).astype(np.float32) if draw(st.booleans()) else None,
                strides=(sh, sw), dilation=(dh, dw), padding=padding, output_padding=output_padding)


@settings(max_examples=40, **SETTINGS)
@given(transpose_problems(), ISAS, THREADS)
def test_conv2d_transpose_matches_reference(p, isa, threads):
    kwargs = dict(strides=p["strides"], padding=p["padding"], output_padding=p["output_padding"],
                  dilation=p["dilation"])
    try:
        expected = conv_ref.conv2d_transpose(p["x"], p["w"], p["bias"], **kwargs)
    except ValueError:
        assume(False)  # the reference cannot build this geometry (an output size <= 0)
    assume(expected.size > 0)
    with running_on(isa, threads):
        y = ops.conv2d_transpose(p["x"], p["w"], bias=p["bias"], **kwargs)
    abs_sum = conv_ref.conv2d_transpose(np.abs(p["x"]), np.abs(p["w"]),
                                        None if p["bias"] is None else np.abs(p["bias"]), **kwargs)
    kh, kw, _, cin = p["w"].shape
    within_bound(y, expected, abs_sum, kh * kw * cin, 1.0, "conv2d_transpose")


@st.composite
def pool_problems(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 19))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = None if draw(st.booleans()) else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = draw(st.sampled_from(["valid", "same"]))
    sh, sw = strides or (ph, pw)
    if padding == "valid":
        assume(h >= ph and w >= pw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    if draw(st.booleans()):  # ties: small integers repeat inside windows
        x = np.round(x * 2).astype(np.float32)
    return dict(x=x, pool=(ph, pw), strides=strides, steps=(sh, sw), padding=padding)


@settings(max_examples=60, **SETTINGS)
@given(pool_problems(), ISAS, THREADS, LAYOUTS)
def test_pooling_matches_reference(p, isa, threads, memory_layout):
    x = p["x"]
    args = (p["pool"], p["steps"], p["padding"])
    with running_on(isa, threads):
        y, am = ops.max_pool2d(layout(x, memory_layout), p["pool"], p["strides"], p["padding"], return_argmax=True)
        ya = ops.avg_pool2d(layout(x, memory_layout), p["pool"], p["strides"], p["padding"])
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        dxm = ops.max_pool2d_backward(dy, am, x.shape, p["pool"], p["strides"], p["padding"])
        dxa = ops.avg_pool2d_backward(dy, x.shape, p["pool"], p["strides"], p["padding"])
    ry, ram = pool_ref.max_pool2d(x, *args)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ram)
    cells = p["pool"][0] * p["pool"][1]
    within_bound(ya, pool_ref.avg_pool2d(x, *args), pool_ref.avg_pool2d(np.abs(x), *args), cells, 1.0, "avg")
    within_bound(dxm, pool_ref.max_pool2d_backward(dy, ram, x.shape, *args),
                 pool_ref.max_pool2d_backward(np.abs(dy), ram, x.shape, *args), cells, 1.0, "max backward")
    within_bound(dxa, pool_ref.avg_pool2d_backward(dy, x.shape, *args),
                 pool_ref.avg_pool2d_backward(np.abs(dy), x.shape, *args), cells, 2.0, "avg backward")


@settings(max_examples=50, **SETTINGS)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from([None, "relu"]), LAYOUTS, LAYOUTS, ISAS, THREADS, st.integers(0, 2**32 - 1))
def test_matmul_matches_reference(m, k, n, trans_a, trans_b, with_bias, act, la, lb, isa, threads, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    with running_on(isa, threads):
        y = ops.matmul(layout(a, la), layout(b, lb), trans_a=trans_a, trans_b=trans_b, bias=bias, activation=act)
    expected = gemm_ref.matmul_ref(a, b, trans_a=trans_a, trans_b=trans_b, bias=bias, activation=act)
    abs_sum = gemm_ref.matmul_ref(np.abs(a), np.abs(b), trans_a=trans_a, trans_b=trans_b,
                                  bias=None if bias is None else np.abs(bias))
    within_bound(y, expected, abs_sum, k, 1.0, "matmul")


@settings(max_examples=40, **SETTINGS)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=4), st.integers(-4, 3), ISAS, THREADS,
       st.integers(0, 2**32 - 1))
def test_softmax_and_cross_entropy_properties(shape, axis, isa, threads, seed):
    """Rows sum to 1, match the reference, and the fused loss gradient sums to 0 per row."""
    assume(-len(shape) <= axis < len(shape))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 10).astype(np.float32)
    from reference import eltwise as elt_ref
    with running_on(isa, threads):
        y = ops.softmax(x, axis=axis)
    assert y.shape == x.shape
    if x.size:
        np.testing.assert_allclose(y, elt_ref.softmax(x.astype(np.float64), axis=axis), rtol=2e-6, atol=1e-7)
    if len(shape) >= 2 and shape[-1] > 0:
        lead = int(np.prod(shape[:-1]))
        labels = rng.integers(0, shape[-1], size=shape[:-1])
        with running_on(isa, threads):
            loss, grad = ops.softmax_cross_entropy(x, labels)
        assert np.isfinite(loss)
        if lead:
            np.testing.assert_allclose(grad.reshape(lead, -1).sum(axis=1), 0.0, atol=1e-6)
