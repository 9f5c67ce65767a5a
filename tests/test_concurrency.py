"""Threads and processes: concurrent calls from Python threads (the kernels release the GIL),
``set_num_threads`` while kernels run, ``os.fork()`` / multiprocessing children, and the memory a
short-lived thread leaves behind.

Anything that could hang runs in a subprocess with a timeout, so a deadlock fails one test instead
of wedging the suite.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, models, ops

from _hardening import describe, rss_mib, run_python

F32 = np.float32


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        x=rng.standard_normal((6, 18, 17, 16)).astype(F32),
        w=rng.standard_normal((3, 3, 16, 24)).astype(F32),
        dy=rng.standard_normal((6, 16, 15, 24)).astype(F32),
        a=rng.standard_normal((257, 129)).astype(F32),
        b=rng.standard_normal((129, 65)).astype(F32),
        logits=rng.standard_normal((64, 10)).astype(F32),
        labels=rng.integers(0, 10, 64),
    )


def _work(d):
    """A mix of every kernel family, big enough to use both threads of a call."""
    mm, mv = np.zeros(16, F32), np.ones(16, F32)
    param = d["a"].reshape(-1).copy()
    m, v = np.zeros_like(param), np.zeros_like(param)
    ops.adam_update(param, param * 0.5, m, v, step=1, learning_rate=0.01)
    return [ops.conv2d(d["x"], d["w"], activation="relu"), *ops.conv2d_backward(d["dy"], d["x"], d["w"]),
            ops.conv2d(d["x"], d["w"][:, :, :, :16].reshape(3, 3, 1, 16 * 16)[..., :16], groups=16),
            ops.matmul(d["a"], d["b"], activation="relu"), ops.max_pool2d(d["x"], 3, 2, "same"),
            ops.avg_pool2d(d["x"], 2), ops.softmax(d["a"]), ops.softmax_cross_entropy(d["logits"], d["labels"])[1],
            ops.batch_norm_forward(d["x"], None, None, mm, mv, training=True)[0], mm, mv, param, m, v,
            ops.dropout(d["x"], 0.3, seed=5, step=2)]


def _same(results, expected):
    return all(np.array_equal(r, e) for r, e in zip(results, expected)) and len(results) == len(expected)


def test_concurrent_calls_from_python_threads_match_serial(threads):
    data = _inputs()
    expected = _work(data)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: _work(data), range(24)))
    assert all(_same(r, expected) for r in results)


def test_concurrent_calls_on_different_isas_do_not_mix(threads):
    """use_isa is process-wide; concurrent calls must still each give one path's exact result."""
    data = _inputs(1)
    per_isa = {}
    for isa in cnnfast.available_isas():
        with cnnfast.use_isa(isa):
            per_isa[isa] = _work(data)
    stop = threading.Event()
    errors = []

    def switcher():
        isas = cnnfast.available_isas()
        i = 0
        while not stop.is_set():
            try:
                cnnfast.set_isa(isas[i % len(isas)])
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            i += 1
    previous = cnnfast.get_isa()
    t = threading.Thread(target=switcher)
    t.start()
    try:
        results = [_work(data)[0] for _ in range(8)]  # the forward conv: one dispatch per call
    finally:
        stop.set()
        t.join()
        cnnfast.set_isa(previous)
    assert not errors
    for r in results:
        assert r.shape == per_isa[previous][0].shape and np.all(np.isfinite(r))
        np.testing.assert_allclose(r, per_isa[previous][0], rtol=1e-4, atol=1e-4)


def test_set_num_threads_during_a_run_is_safe():
    """Every call reads the thread count once: flipping it concurrently gives the 1- or the
    2-thread result exactly, never a mix, a crash or a hang."""
    data = _inputs(2)
    previous = cnnfast.get_num_threads()
    try:
        cnnfast.set_num_threads(1)
        one = _work(data)
        cnnfast.set_num_threads(2)
        two = _work(data)
        stop = threading.Event()

        def flipper():
            i = 0
            while not stop.is_set():
                cnnfast.set_num_threads(1 + i % 2)
                i += 1
        t = threading.Thread(target=flipper)
        t.start()
        try:
            with ThreadPoolExecutor(max_workers=3) as pool:
                runs = list(pool.map(lambda _: _work(data), range(12)))
        finally:
            stop.set()
            t.join()
    finally:
        cnnfast.set_num_threads(previous)
    for run in runs:
        for r, a, b in zip(run, one, two):
            assert np.array_equal(r, a) or np.array_equal(r, b)


def _small_model(seed, dropout=False):
    cnnfast.utils.set_random_seed(seed)
    stack = [layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
             layers.Flatten(), layers.Dense(8, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(0.5))
    m = models.Sequential(stack + [layers.Dense(3, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    return m


def _batch(seed=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((16, 8, 8, 1)).astype(F32), rng.integers(0, 3, 16)


def _step_with_another_thread_inside(model, layer, method, other):
    """One train step of ``model`` in which ``layer.<method>`` hands over to another thread that
    runs a whole train step of ``other`` (the interleaving two training threads produce whenever
    the scheduler switches inside a step), then resumes."""
    x, y = _batch()
    original = getattr(layer, method)

    def paused(*args, **kwargs):
        t = threading.Thread(target=lambda: other.train_on_batch(*_batch(4)))
        t.start()
        t.join()
        return original(*args, **kwargs)
    setattr(layer, method, paused)
    try:
        model.train_on_batch(x, y)
    finally:
        del layer.__dict__[method]
    return model.get_weights()


def test_models_train_in_threads_one_after_another(threads):
    """Training in a worker thread equals training in the main thread."""
    x, y = _batch()
    alone = _small_model(1)
    alone.train_on_batch(x, y)
    m = _small_model(1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(m.train_on_batch, x, y).result()
    assert all(np.array_equal(u, v) for u, v in zip(alone.get_weights(), m.get_weights()))


def test_another_threads_step_does_not_zero_this_steps_gradients():
    alone = _small_model(1)
    alone.train_on_batch(*_batch())
    model, other = _small_model(1), _small_model(2)
    dense_out = model.layers[-1]  # its backward runs first; the conv and the first dense run after
    weights = _step_with_another_thread_inside(model, dense_out, "backward", other)
    for u, v in zip(alone.get_weights(), weights):
        np.testing.assert_array_equal(u, v)


def test_another_threads_step_does_not_change_this_steps_dropout_mask():
    alone = _small_model(1, dropout=True)
    alone.train_on_batch(*_batch())
    model, other = _small_model(1, dropout=True), _small_model(2)
    dropout = next(l for l in model.layers if isinstance(l, layers.Dropout))
    weights = _step_with_another_thread_inside(model, dropout, "forward", other)
    for u, v in zip(alone.get_weights(), weights):
        np.testing.assert_array_equal(u, v)


def test_building_a_model_while_another_thread_loads_a_file():
    from cnnfast.layers.base import weight_budget
    entered, release = threading.Event(), threading.Event()

    def loader():  # what load_model does around rebuilding the saved layers
        with weight_budget(10, "some.keras"):
            entered.set()
            release.wait(30)
    t = threading.Thread(target=loader)
    t.start()
    try:
        entered.wait(30)
        layer = layers.Dense(8)
        layer(np.ones((1, 16), F32))
    finally:
        release.set()
        t.join()
    assert np.any(layer.kernel.numpy() != 0)


FORK_CODE = """
import os, sys, threading, numpy as np, cnnfast
from cnnfast import ops
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 24, 24, 16)).astype(np.float32)
w = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
dy = np.ones((8, 22, 22, 32), np.float32)
cnnfast.set_num_threads(1)
one = (ops.conv2d(x, w), *ops.conv2d_backward(dy, x, w), ops.matmul(x.reshape(-1, 144), w.reshape(144, 32)))
cnnfast.set_num_threads(2)
two = (ops.conv2d(x, w), *ops.conv2d_backward(dy, x, w), ops.matmul(x.reshape(-1, 144), w.reshape(144, 32)))
stop = threading.Event()
def busy():                      # a kernel may be running in another thread at fork time
    while not stop.is_set():
        ops.conv2d(x, w)
t = threading.Thread(target=busy); t.start()
for i in range(6):
    pid = os.fork()
    if pid == 0:
        ok = cnnfast.get_num_threads() == 1
        got = (ops.conv2d(x, w), *ops.conv2d_backward(dy, x, w), ops.matmul(x.reshape(-1, 144), w.reshape(144, 32)))
        ok = ok and all(np.array_equal(a, b) for a, b in zip(got, one))
        cnnfast.set_num_threads(2)          # the child stays on one thread: the pool did not survive
        ok = ok and cnnfast.get_num_threads() == 1 and np.array_equal(ops.conv2d(x, w), one[0])
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
stop.set(); t.join()
again = (ops.conv2d(x, w), *ops.conv2d_backward(dy, x, w), ops.matmul(x.reshape(-1, 144), w.reshape(144, 32)))
assert cnnfast.get_num_threads() == 2 and all(np.array_equal(a, b) for a, b in zip(again, two))
import multiprocessing as mp
def f(i):
    return float(ops.conv2d(x, w).sum())
with mp.get_context("fork").Pool(2) as p:
    sums = p.map(f, range(4))
assert sums == [float(one[0].sum())] * 4, sums
print("fork ok")
"""


def test_fork_children_work_and_do_not_hang():
    proc = run_python(FORK_CODE, timeout=240, threads=2)
    assert proc.returncode == 0 and "fork ok" in proc.stdout, describe(proc)


SPAWN_CODE = """
import multiprocessing as mp, numpy as np
def f(_):
    import cnnfast
    from cnnfast import ops
    y = ops.conv2d(np.ones((2, 8, 8, 3), np.float32), np.ones((3, 3, 3, 4), np.float32))
    return cnnfast.get_num_threads(), float(y.sum())
if __name__ == "__main__":
    with mp.get_context("spawn").Pool(2) as p:
        print(p.map(f, range(2)))
"""


def test_spawned_processes_use_the_configured_threads(tmp_path):
    script = tmp_path / "spawn_check.py"
    script.write_text(SPAWN_CODE)
    proc = run_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", timeout=120, threads=2)
    assert proc.returncode == 0 and "[(2, 7776.0), (2, 7776.0)]" in proc.stdout, describe(proc)


@pytest.mark.skipif(bool(os.environ.get("CNNFAST_UNDER_SANITIZER")), reason="RSS is not meaningful under ASan")
def test_short_lived_threads_do_not_leak_kernel_workspace():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 32, 32, 16)).astype(F32)
    w = rng.standard_normal((3, 3, 16, 32)).astype(F32)
    dy = rng.standard_normal((8, 30, 30, 32)).astype(F32)

    def work():
        ops.conv2d(x, w)
        ops.conv2d_backward(dy, x, w)

    def churn(n):
        for _ in range(n):
            t = threading.Thread(target=work)
            t.start()
            t.join()
    churn(20)  # warm up NumPy's and the allocator's caches
    before = rss_mib()
    churn(150)
    grown = rss_mib() - before
    assert grown < 25, f"RSS grew by {grown:.0f} MiB over 150 short-lived threads"
