"""cnnfast.ops optimiser updates: in-place SGD / Adam / AdamW / AMSGrad / RMSprop steps.

Checked against the Keras formulas in float64 (tests/reference/optim.py) over several steps on
every ISA path and 1 and 2 threads, against torch.optim where the two rules coincide, and on
bad input.
"""
from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import ops
from reference import optim as ref

SIZES = [0, 1, 15, 17, 1000, 100_003]  # tails of every vector width; the last one runs on 2 threads
STEPS = 4


def _problem(rng, n):
    w = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) * (0.1 + k) for k in range(STEPS)]
    return w, grads


def _close(a, b, rtol=2e-5, atol=1e-6):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("variant", ["plain", "momentum", "nesterov", "decay"])
def test_sgd_matches_keras_formula(isa, threads, rng, n, variant):
    w, grads = _problem(rng, n)
    momentum = 0.0 if variant in ("plain", "decay") else 0.9
    vel = None if variant in ("plain", "decay") else np.zeros(n, np.float32)
    wd = 0.004 if variant == "decay" else 0.0
    rw, rv = w.astype(np.float64), None if vel is None else np.zeros(n)
    for g in grads:
        ops.sgd_update(w, g, vel, learning_rate=0.05, momentum=momentum, nesterov=variant == "nesterov", weight_decay=wd)
        rw, rv = ref.sgd(rw, g, rv, 0.05, momentum, variant == "nesterov", wd)
    _close(w, rw)
    if vel is not None:
        _close(vel, rv)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("variant", ["adam", "amsgrad", "adamw"])
def test_adam_matches_keras_formula(isa, threads, rng, n, variant):
    w, grads = _problem(rng, n)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    v_hat = np.zeros(n, np.float32) if variant == "amsgrad" else None
    wd = 0.004 if variant == "adamw" else 0.0
    rw, rm, rv, rh = w.astype(np.float64), np.zeros(n), np.zeros(n), None if v_hat is None else np.zeros(n)
    for t, g in enumerate(grads, start=1):
        ops.adam_update(w, g, m, v, step=t, learning_rate=0.01, v_hat=v_hat, weight_decay=wd)
        rw, rm, rv, rh = ref.adam(rw, g, rm, rv, t, 0.01, v_hat=rh, wd=wd)
    _close(w, rw)
    _close(m, rm)
    _close(v, rv, rtol=1e-5, atol=1e-10)
    if v_hat is not None:
        _close(v_hat, rh, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("centered,momentum", [(False, 0.0), (True, 0.0), (False, 0.9), (True, 0.5)])
def test_rmsprop_matches_keras_formula(isa, threads, rng, n, centered, momentum):
    w, grads = _problem(rng, n)
    vel = np.zeros(n, np.float32)
    avg = np.zeros(n, np.float32) if centered else None
    buf = np.zeros(n, np.float32) if momentum else None
    rw, rvel, ravg, rbuf = w.astype(np.float64), np.zeros(n), np.zeros(n), np.zeros(n)
    for g in grads:
        ops.rmsprop_update(w, g, vel, learning_rate=0.01, momentum=momentum, centered=centered,
                           average_grad=avg, momentum_buffer=buf, weight_decay=0.01)
        rw, rvel, ravg, rbuf = ref.rmsprop(rw, g, rvel, 0.01, 0.9, momentum, 1e-7, centered, ravg, rbuf, wd=0.01)
    _close(w, rw)
    _close(vel, rvel)
    if centered:
        _close(avg, ravg)
    if momentum:
        _close(buf, rbuf)


def test_keras_docstring_examples():
    # keras/src/optimizers/rmsprop.py: RMSprop(0.1), var 10, loss var^2/2 -> 9.683772 after one step
    w = np.array([10.0], np.float32)
    ops.rmsprop_update(w, w.copy(), np.zeros(1, np.float32), learning_rate=0.1)
    np.testing.assert_allclose(w, [9.683772], rtol=1e-6)


def test_weight_decay_folded_equals_separate(isa, rng):
    w, grads = _problem(rng, 1000)
    a, b = w.copy(), w.copy()
    ma, va, mb, vb = (np.zeros(1000, np.float32) for _ in range(4))
    ops.adam_update(a, grads[0], ma, va, step=1, learning_rate=0.01, weight_decay=0.004)
    ops.apply_weight_decay(b, learning_rate=0.01, weight_decay=0.004)
    ops.adam_update(b, grads[0], mb, vb, step=1, learning_rate=0.01)
    np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    c = w.copy()
    ops.apply_weight_decay(c, learning_rate=0.5, weight_decay=0.1)
    np.testing.assert_allclose(c, w.astype(np.float64) * (1 - 0.05), rtol=1e-7)


def test_updates_views_of_a_flat_buffer_in_place(rng):
    flat = rng.standard_normal(300).astype(np.float32)
    before = flat.copy()
    kernel = flat[100:200].reshape(10, 10)  # a layer's weights inside the model's flat buffer
    vel = np.zeros((10, 10), np.float32)
    assert ops.sgd_update(kernel, np.ones((10, 10)), vel, learning_rate=0.1, momentum=0.5) is None
    np.testing.assert_allclose(flat[100:200], before[100:200] - 0.1, rtol=1e-6)
    np.testing.assert_array_equal(flat[:100], before[:100])
    np.testing.assert_array_equal(flat[200:], before[200:])
    np.testing.assert_allclose(vel, -0.1)


# ---------------------------------------------------------------------------------------------
# torch.optim, where the update rules coincide: SGD (momentum, Nesterov) exactly; Adam, AdamW,
# AMSGrad and RMSprop with epsilon = 0 (Keras puts epsilon elsewhere).
# ---------------------------------------------------------------------------------------------

def _torch_run(torch, opt_cls, w0, grads, **kw):
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("case", ["sgd", "momentum", "nesterov", "adam", "adamw", "amsgrad", "rmsprop",
                                  "rmsprop_centered_momentum"])
def test_matches_torch_optim(rng, case):
    torch = pytest.importorskip("torch")
    n = 1000
    w, grads = _problem(rng, n)
    ours = w.copy()
    z = lambda: np.zeros(n, np.float32)  # noqa: E731
    if case in ("sgd", "momentum", "nesterov"):
        mom = 0.0 if case == "sgd" else 0.9
        vel = None if case == "sgd" else z()
        for g in grads:
            ops.sgd_update(ours, g, vel, learning_rate=0.05, momentum=mom, nesterov=case == "nesterov")
        theirs = _torch_run(torch, torch.optim.SGD, w, grads, lr=0.05, momentum=mom, nesterov=case == "nesterov")
    elif case in ("adam", "adamw", "amsgrad"):
        m, v, vh = z(), z(), z() if case == "amsgrad" else None
        wd = 0.01 if case == "adamw" else 0.0
        for t, g in enumerate(grads, start=1):
            ops.adam_update(ours, g, m, v, step=t, learning_rate=0.01, epsilon=0.0, v_hat=vh, weight_decay=wd)
        cls = torch.optim.AdamW if case == "adamw" else torch.optim.Adam
        theirs = _torch_run(torch, cls, w, grads, lr=0.01, eps=0.0, amsgrad=case == "amsgrad", weight_decay=wd,
                            foreach=True)
    else:
        centered = case != "rmsprop"
        mom = 0.5 if centered else 0.0
        vel, avg, buf = z(), z() if centered else None, z() if mom else None
        for g in grads:
            ops.rmsprop_update(ours, g, vel, learning_rate=0.01, rho=0.9, momentum=mom, epsilon=0.0,
                               centered=centered, average_grad=avg, momentum_buffer=buf)
        theirs = _torch_run(torch, torch.optim.RMSprop, w, grads, lr=0.01, alpha=0.9, eps=0.0, momentum=mom,
                            centered=centered)
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-6)


# ---------------------------------------------------------------------------------------------
# global_norm
# ---------------------------------------------------------------------------------------------

def test_global_norm(isa, rng):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(3, 3, 1, 32), (32,), (1600, 128), (7,)]]
    expected = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in arrays))
    np.testing.assert_allclose(ops.global_norm(arrays), expected, rtol=1e-7)
    flat = np.concatenate([a.reshape(-1) for a in arrays])
    np.testing.assert_allclose(ops.global_norm(flat), expected, rtol=1e-7)
    norms = []
    for nt in (1, 2):
        cnnfast.set_num_threads(nt)
        try:
            norms.append(ops.global_norm(flat))
        finally:
            cnnfast.set_num_threads(cnnfast.runtime.default_num_threads())
    assert norms[0] == norms[1]
    assert ops.global_norm([]) == 0.0
    assert ops.global_norm(np.zeros(0)) == 0.0


# ---------------------------------------------------------------------------------------------
# Bad input and zero sizes
# ---------------------------------------------------------------------------------------------

def test_state_arrays_are_never_converted(rng):
    w = rng.standard_normal(8).astype(np.float32)
    g = np.ones(8)
    with pytest.raises(TypeError, match="sgd_update: param must have dtype float32"):
        ops.sgd_update(w.astype(np.float64), g, learning_rate=0.1)
    with pytest.raises(TypeError, match="sgd_update: param must be a numpy.ndarray"):
        ops.sgd_update(list(w), g, learning_rate=0.1)
    with pytest.raises(ValueError, match="param must be C-contiguous"):
        ops.sgd_update(np.zeros(16, np.float32)[::2], g, learning_rate=0.1)
    ro = w.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="adam_update: param is read-only"):
        ops.adam_update(ro, g, np.zeros(8, np.float32), np.zeros(8, np.float32), step=1, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"adam_update: v must have shape \(8,\)"):
        ops.adam_update(w, g, np.zeros(8, np.float32), np.zeros(9, np.float32), step=1, learning_rate=0.1)
    m = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="adam_update: v overlaps m"):
        ops.adam_update(w, g, m, m, step=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="adam_update: m overlaps param"):
        ops.adam_update(w, g, w, np.zeros(8, np.float32), step=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="sgd_update: grad overlaps param"):
        ops.sgd_update(w, w, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"grad must have the shape of param \(8,\)"):
        ops.sgd_update(w, np.ones(7), learning_rate=0.1)
    with pytest.raises(TypeError, match="grad must be a real numeric array"):
        ops.sgd_update(w, np.ones(8, complex), learning_rate=0.1)


def test_bad_hyper_parameters(rng):
    w, g = rng.standard_normal(4).astype(np.float32), np.ones(4)
    z = lambda: np.zeros(4, np.float32)  # noqa: E731
    with pytest.raises(ValueError, match="adam_update: step must be >= 1"):
        ops.adam_update(w, g, z(), z(), step=0, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"adam_update: beta_1 must be in \[0.0, 1.0\)"):
        ops.adam_update(w, g, z(), z(), step=1, learning_rate=0.1, beta_1=1.0)
    with pytest.raises(ValueError, match="learning_rate must be finite"):
        ops.adam_update(w, g, z(), z(), step=1, learning_rate=float("nan"))
    with pytest.raises(TypeError, match="learning_rate"):
        ops.sgd_update(w, g)  # learning_rate is required
    with pytest.raises(ValueError, match="sgd_update: momentum=0.9 needs a velocity buffer"):
        ops.sgd_update(w, g, learning_rate=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"sgd_update: momentum must be in \[0.0, 1.0\]"):
        ops.sgd_update(w, g, z(), learning_rate=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="centered=True needs an average_grad buffer"):
        ops.rmsprop_update(w, g, z(), learning_rate=0.1, centered=True)
    with pytest.raises(ValueError, match="momentum=0.5 needs a momentum_buffer"):
        ops.rmsprop_update(w, g, z(), learning_rate=0.1, momentum=0.5)
    with pytest.raises(ValueError, match="rmsprop_update: epsilon must be >= 0.0"):
        ops.rmsprop_update(w, g, z(), learning_rate=0.1, epsilon=-1.0)
    with pytest.raises(TypeError, match="rmsprop_update: velocity is a required float32 array"):
        ops.rmsprop_update(w, g, None, learning_rate=0.1)
    with pytest.raises(TypeError, match="adam_update: step must be an integer"):
        ops.adam_update(w, g, z(), z(), step=1.0, learning_rate=0.1)


def test_zero_sized_updates_are_no_ops():
    e = np.zeros((0, 3), np.float32)
    ops.sgd_update(e, e.copy(), e.copy(), learning_rate=0.1, momentum=0.9)
    ops.adam_update(e, e.copy(), e.copy(), e.copy(), step=1, learning_rate=0.1, v_hat=e.copy())
    ops.rmsprop_update(e, e.copy(), e.copy(), learning_rate=0.1, centered=True, average_grad=e.copy(),
                       momentum=0.5, momentum_buffer=e.copy())
    ops.apply_weight_decay(e, learning_rate=0.1, weight_decay=0.1)
