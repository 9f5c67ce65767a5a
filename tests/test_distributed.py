"""cnnfast.distributed: sharding, the optimizer wrapper, data-parallel fit/evaluate on 1 and 2-3 ranks.

In-process tests use the one-process group (no MPI), or ranks run as threads of the test process
(``_ThreadGroup``: real collectives, no MPI) to check the reductions across ranks. The
multi-process tests start tests/mpi_scripts/train_worker.py under ``mpirun`` (skipped when mpirun
or mpi4py is missing) and compare what every rank ends with against single-process training on
the same global batches, computed here: the weights after N steps, the History, the evaluation
results.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cnnfast
from cnnfast import distributed as dist
from cnnfast import optimizers
from cnnfast.distributed import _comm

from tests.conftest import REPO_ROOT, shared_data_dir

SCRIPTS = REPO_ROOT / "tests" / "mpi_scripts"
sys.path.insert(0, str(SCRIPTS))
from common import make_data, make_model  # noqa: E402

MPIRUN = shutil.which("mpirun")
HAVE_MPI = MPIRUN is not None and importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="needs mpirun and mpi4py (apt-get install openmpi-bin "
                                                    "libopenmpi-dev; pip install mpi4py)")
TIMEOUT = 180  # seconds for one mpirun; a hang fails the test instead of blocking the suite


@pytest.fixture
def solo():
    """The one-process group (no MPI in the test process), forgotten afterwards."""
    _comm._reset_for_tests()
    group = dist.init(backend="self")
    yield group
    _comm._reset_for_tests()


# -- sharding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n,batch,size", [(1, 1, 1), (10, 4, 2), (101, 20, 3), (64, 16, 2), (7, 3, 3),
                                          (23, 5, 4), (41, 7, 7), (5, 8, 2)])
@pytest.mark.parametrize("shuffle", [True, False, "batch"])
def test_shard_plan_splits_every_global_batch_exactly(n, batch, size, shuffle):
    order = dist.epoch_order(n, 3, 1, shuffle, batch)
    plans = [dist.shard_plan(n, batch, rank=r, size=size, epoch=1, seed=3, shuffle=shuffle) for r in range(size)]
    steps = math.ceil(n / batch)
    for r, p in enumerate(plans):
        assert p.steps == steps and p.counts.shape == (steps,)
        assert p.batch_size == batch // size + (r < batch % size)
        assert len(p.indices) == sum(max(c, 1) for c in p.counts)
        assert np.all(p.counts[:-1] == p.batch_size) and 0 <= p.counts[-1] <= p.batch_size
    offsets = [np.concatenate([[0], np.cumsum(np.maximum(p.counts, 1))]) for p in plans]
    for k in range(steps):
        glob = order[k * batch:(k + 1) * batch]
        parts = [p.indices[o[k]:o[k] + p.counts[k]] for p, o in zip(plans, offsets)]
        np.testing.assert_array_equal(np.concatenate(parts), glob)  # rank order = global order
        assert all(p.global_counts[k] == len(glob) for p in plans)
        assert math.isclose(sum(p.weights[k] for p in plans), 1.0)
        for p, o in zip(plans, offsets):
            if p.padded[k]:  # a padding step runs one real sample of the batch, with weight 0
                assert k == steps - 1 and p.weights[k] == 0 and p.indices[o[k]] in glob


def test_epoch_order_is_a_function_of_seed_and_epoch():
    a = dist.epoch_order(1000, 5, 2)
    np.testing.assert_array_equal(a, dist.epoch_order(1000, 5, 2))
    np.testing.assert_array_equal(np.sort(a), np.arange(1000))
    assert not np.array_equal(a, dist.epoch_order(1000, 5, 3))
    assert not np.array_equal(a, dist.epoch_order(1000, 6, 2))
    np.testing.assert_array_equal(dist.epoch_order(10, 5, 2, shuffle=False), np.arange(10))
    b = dist.epoch_order(100, 5, 0, shuffle="batch", batch_size=16)
    assert not np.array_equal(b, np.arange(100))
    for s in range(0, 100, 16):  # permuted within each batch only
        np.testing.assert_array_equal(np.sort(b[s:s + 16]), np.arange(s, min(s + 16, 100)))


def test_shard_plan_steps_and_bad_arguments():
    p = dist.shard_plan(100, 10, rank=1, size=2, steps=3, seed=1)
    assert p.steps == 3 and len(p.indices) == 15
    with pytest.raises(ValueError, match="at least the number of processes"):
        dist.shard_plan(100, 3, rank=0, size=4)
    with pytest.raises(ValueError, match="rank must be < size"):
        dist.shard_plan(100, 10, rank=2, size=2)
    with pytest.raises(ValueError, match="more than one pass"):
        dist.shard_plan(100, 10, rank=0, size=2, steps=11)
    with pytest.raises(ValueError, match="n must be >= 1"):
        dist.shard_plan(0, 10, rank=0, size=1)
    with pytest.raises(ValueError, match="shuffle must be"):
        dist.shard_plan(10, 2, rank=0, size=1, shuffle="yes")
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        dist.shard_plan(10, 2.0, rank=0, size=1)
    assert dist.split_evenly(10, 0, 3) == (0, 4) and dist.split_evenly(10, 2, 3) == (7, 3)
    assert dist.split_evenly(1, 2, 3) == (1, 0)


# -- single-process group -------------------------------------------------------------------------
def _reference_fit(spec, model=None):
    """Single-process training on the same global batches: Model.fit, one call per epoch, on the
    epoch order of cnnfast.distributed.epoch_order."""
    x, y = make_data(spec["n"])
    model = model or make_model(1000, spec.get("optimizer", "adam"), spec.get("batchnorm", False))
    n, vs = len(x), spec.get("validation_split", 0.0)
    split = int(n * (1 - vs)) if vs else n
    sw = np.linspace(0.2, 2.0, n) if spec.get("sample_weight") else None
    val = (x[split:], y[split:]) + (() if sw is None else (sw[split:],)) if vs else (
        make_data(spec["validation_n"], seed=99) if "validation_n" in spec else None)
    cw = {0: 2.0, 1: 0.5, 2: 1.0, 3: 1.5} if spec.get("class_weight") else None
    shuffle = spec.get("shuffle", True)
    history = {}
    for e in range(spec.get("initial_epoch", 0), spec["epochs"]):
        order = dist.epoch_order(split, spec["seed"], e, shuffle, spec["batch_size"])
        h = model.fit(x[:split][order], y[:split][order], batch_size=spec["batch_size"], epochs=e + 1,
                      initial_epoch=e, shuffle=False, verbose=0, validation_data=val,
                      sample_weight=None if sw is None else sw[:split][order], class_weight=cw,
                      validation_freq=spec.get("validation_freq", 1))
        for k, v in h.history.items():
            history.setdefault(k, []).extend(v)
    return model, history


def test_fit_on_one_process_is_model_fit_bitwise(solo):
    spec = dict(n=61, batch_size=8, epochs=2, seed=4, validation_split=0.25, sample_weight=True, optimizer="sgd")
    ref, ref_hist = _reference_fit(spec)
    x, y = make_data(61)
    model = make_model(1000, "sgd")
    hist = dist.fit(model, x, y, batch_size=8, epochs=2, seed=4, validation_split=0.25, verbose=0,
                    sample_weight=np.linspace(0.2, 2.0, 61))
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert hist.history == ref_hist and hist.epoch == [0, 1] and model.history is hist
    assert type(model.optimizer) is optimizers.SGD  # the wrapper is gone after fit
    assert "_dist_grad_weight" not in model.optimizer.__dict__


def test_model_fit_and_evaluate_distributed_flag(solo):
    import inspect
    from cnnfast.models.training import Trainer
    if "distributed" not in inspect.signature(Trainer.fit).parameters:
        pytest.skip("this Model.fit has no distributed= argument yet")
    x, y = make_data(30)
    a, b = make_model(1000), make_model(1000)
    ha = a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, distributed=True)
    hb = dist.fit(b, x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert ha.history == hb.history and a.optimizer.iterations == 8 and a.history is ha
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.evaluate(x, y, verbose=0, distributed=True) == dist.evaluate(a, x, y, verbose=0)


def test_fit_seed_defaults_to_numpy_global_rng(solo):
    x, y = make_data(40)
    runs = []
    for _ in range(2):
        model = make_model(1000)
        np.random.seed(123)
        dist.fit(model, x, y, batch_size=8, epochs=1, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_fit_prints_keras_progress_and_runs_callbacks(solo, capsys):
    x, y = make_data(40)
    model = make_model(1000)
    seen = []
    cb = cnnfast.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append((e, sorted(logs))))
    dist.fit(model, x, y, batch_size=10, epochs=2, validation_split=0.25, verbose=2, callbacks=[cb], seed=0)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and out.count("3/3 - ") == 2
    assert seen == [(e, ["accuracy", "loss", "val_accuracy", "val_loss"]) for e in (0, 1)]


def test_fit_steps_per_epoch_initial_epoch_and_early_stop(solo):
    x, y = make_data(50)
    model = make_model(1000)
    h = dist.fit(model, x, y, batch_size=10, epochs=4, steps_per_epoch=2, initial_epoch=1, seed=0, verbose=0)
    assert h.epoch == [1, 2, 3] and model.optimizer.iterations == 6
    model = make_model(1000)
    stop = cnnfast.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: setattr(model, "stop_training", b == 1))
    dist.fit(model, x, y, batch_size=10, epochs=3, seed=0, verbose=0, callbacks=[stop])
    assert model.optimizer.iterations == 3  # requested after step 2, effective after step 3
    model = make_model(1000)
    es = cnnfast.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    h = dist.fit(model, x, y, batch_size=10, epochs=5, seed=0, verbose=0, callbacks=[es])
    assert h.epoch == [0, 1]


def test_fit_multi_input_model(solo):
    from cnnfast import layers, models
    cnnfast.utils.set_random_seed(0)
    a, b = layers.Input((3,), name="a"), layers.Input((2,), name="b")
    out = layers.Dense(2, activation="softmax")(layers.Concatenate()([a, b]))
    model = models.Model([a, b], out)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    xa, xb, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 2)), rng.integers(0, 2, 30)
    h1 = dist.fit(model, [xa, xb], y, batch_size=7, epochs=1, seed=1, verbose=0)
    h2 = dist.fit(model, {"a": xa, "b": xb}, y, batch_size=7, epochs=1, seed=1, verbose=0)
    assert np.isfinite(h1.history["loss"][0]) and np.isfinite(h2.history["loss"][0])


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    (dict(epochs=-1), ValueError, "epochs must be >= 0"),
    (dict(verbose=3), ValueError, "verbose must be"),
    (dict(shuffle="all"), ValueError, "shuffle must be"),
    (dict(validation_split=1.0), ValueError, "validation_split must be"),
    (dict(validation_split=1e-17), ValueError, "leaves an empty"),
    (dict(steps_per_epoch=100), ValueError, "more than one pass"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(class_weight={0: 1.0}, sample_weight=np.ones(20)), ValueError, "cannot both"),
    (dict(sample_weight=np.ones(19)), ValueError, r"sample_weight must have shape \(20,\)"),
    (dict(validation_data=(np.zeros((3, 8, 8, 1)),)), ValueError, "validation_data must be a tuple"),
    (dict(y=np.zeros(19)), ValueError, "y has 19 samples but x has 20"),
    (dict(x=None), ValueError, "x is required"),
    (dict(y=None), ValueError, "y is required"),
])
def test_fit_rejects_bad_arguments(solo, kwargs, exc, match):
    x, y = make_data(20)
    model = make_model(1000)
    args = dict(x=x, y=y, verbose=0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        dist.fit(model, **args)


def test_fit_and_evaluate_need_a_compiled_model(solo):
    from cnnfast import layers, models
    model = models.Sequential([layers.Input((2,)), layers.Dense(1)])
    x, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(RuntimeError, match="compile"):
        dist.fit(model, x, y)
    with pytest.raises(RuntimeError, match="compile"):
        dist.evaluate(model, x, y)


def test_evaluate_on_one_process_is_model_evaluate(solo):
    x, y = make_data(37, seed=5)
    model = make_model(1000, metrics=("accuracy", "sparse_categorical_crossentropy"))
    assert dist.evaluate(model, x, y, batch_size=8, verbose=0) == model.evaluate(x, y, batch_size=8, verbose=0)
    assert dist.evaluate(model, x, y, batch_size=8, steps=2, verbose=0, return_dict=True) == \
        model.evaluate(x, y, batch_size=8, steps=2, verbose=0, return_dict=True)
    with pytest.raises(ValueError, match="no samples"):
        dist.evaluate(model, x[:0], y[:0])



# -- metrics whose state is not a (total, count) pair ---------------------------------------------
def _iou_metrics():
    """One of each confusion-matrix metric that fits make_model's 4-class softmax and integer labels,
    and a (total, count) one."""
    from cnnfast import metrics
    return (metrics.MeanIoU(4, sparse_y_pred=False), metrics.IoU(4, [0, 2], sparse_y_pred=False),
            metrics.MeanIoU(4, sparse_y_pred=False, ignore_class=3, name="mean_iou_without_3"), "accuracy")


def test_fit_and_evaluate_with_iou_metrics_on_one_process(solo):
    spec = dict(n=45, batch_size=8, epochs=2, seed=3, validation_split=0.2)
    ref, ref_hist = _reference_fit(spec, make_model(1000, metrics=_iou_metrics()[:2] + ("accuracy",)))
    x, y = make_data(45)
    model = make_model(1000, metrics=_iou_metrics()[:2] + ("accuracy",))
    hist = dist.fit(model, x, y, batch_size=8, epochs=2, seed=3, validation_split=0.2, verbose=0)
    assert {"mean_io_u", "io_u", "val_mean_io_u", "val_io_u"} <= set(hist.history)
    assert hist.history == ref_hist
    assert dist.evaluate(model, x, y, batch_size=8, verbose=0, return_dict=True) == \
        model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)


class _ThreadGroup(dist.Communicator):
    """One rank of a group whose ranks are threads of this process: the collectives meet at a
    barrier and every rank reduces the same values in rank order, so the ranks stay bitwise equal."""

    backend = "threads"

    def __init__(self, rank, shared):
        self.rank, self.size, self._shared = rank, shared["size"], shared

    def _exchange(self, value):
        shared = self._shared
        shared["slots"][self.rank] = value
        shared["barrier"].wait()
        everyone = list(shared["slots"])
        shared["barrier"].wait()  # nobody overwrites a slot before every rank has read them all
        return everyone

    def allreduce_sum_(self, buf, category="other"):
        parts = self._exchange(buf.copy())
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        buf[...] = total

    def bcast_(self, buf, root=0):
        buf[...] = self._exchange(buf.copy())[root]

    def allgather_obj(self, obj):
        return self._exchange(obj)

    def bcast_obj(self, obj, root=0):
        return self._exchange(obj)[root]

    def barrier(self):
        self._shared["barrier"].wait()

    def abort(self, code=1):
        self._shared["barrier"].abort()  # the other ranks fail instead of waiting
        raise RuntimeError(f"rank {self.rank} aborted")


def _run_on_thread_ranks(monkeypatch, size, work):
    """``work(rank)`` on ``size`` threads, each seeing its own rank as cnnfast.distributed's group;
    returns the results in rank order (re-raising the first rank's error)."""
    import threading
    shared = {"size": size, "slots": [None] * size, "barrier": threading.Barrier(size, timeout=120)}
    groups = threading.local()
    monkeypatch.setattr(_comm, "communicator", lambda: groups.group)
    results, errors = [None] * size, [None] * size

    def run(rank):
        groups.group = _ThreadGroup(rank, shared)
        try:
            results[rank] = work(rank)
        except BaseException as exc:  # noqa: BLE001 (reported below, on the test's thread)
            errors[rank] = exc
            shared["barrier"].abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for exc in errors:
        if exc is not None and not isinstance(exc, threading.BrokenBarrierError):
            raise exc
    for exc in errors:
        if exc is not None:
            raise exc
    return results


def test_three_thread_ranks_with_iou_metrics_train_as_one_process(solo, monkeypatch):
    # 101 samples in global batches of 20 over 3 ranks: uneven parts, and the last 1-sample batch
    # pads ranks 1 and 2; 2 validation samples leave rank 2 without any (its state counts as zero)
    spec = dict(n=101, batch_size=20, epochs=2, seed=8, validation_n=2)
    ref, ref_hist = _reference_fit(spec, make_model(1000, metrics=_iou_metrics()))
    x, y = make_data(spec["n"])
    xv, yv = make_data(spec["validation_n"], seed=99)
    models = [make_model(1000 + r, metrics=_iou_metrics()) for r in range(3)]  # built before the threads

    def train(rank):
        model = models[rank]
        history = dist.fit(model, x, y, batch_size=20, epochs=2, seed=8, validation_data=(xv, yv), verbose=0)
        return history.history, model.get_weights(), dist.evaluate(model, x, y, batch_size=16, verbose=0,
                                                                   return_dict=True)

    runs = _run_on_thread_ranks(monkeypatch, 3, train)
    history, weights, evaluated = runs[0]
    assert {"mean_io_u", "io_u", "mean_iou_without_3", "val_mean_io_u"} <= set(history)
    _assert_history_close(history, ref_hist)
    for got, want in zip(weights, ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    want = ref.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert sorted(evaluated) == sorted(want)
    for k in want:
        assert math.isclose(evaluated[k], want[k], rel_tol=1e-6, abs_tol=1e-9), k
    for other_history, other_weights, other_evaluated in runs[1:]:  # every rank holds the same model
        assert other_history == history and other_evaluated == evaluated
        for a, b in zip(weights, other_weights):
            np.testing.assert_array_equal(a, b)


def test_summed_metric_states_give_the_metrics_over_all_ranks_samples():
    """The reduction itself: each rank's metrics see their part of the data, the flat states are
    summed as the all-reduce does, and the result is that of one metric that saw everything."""
    from cnnfast import metrics
    from cnnfast.distributed._fit import _assign_states, _global_results, _metric_states
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (40, 5))
    scores = rng.random((40, 5, 3))
    one_hot = np.eye(3)[labels]
    binary_scores = rng.random((40, 5))
    weights = rng.random(40)

    def build():
        return [metrics.IoU(3, [0, 2], sparse_y_pred=False, dtype="float64"),
                metrics.MeanIoU(3, sparse_y_pred=False, ignore_class=1), metrics.BinaryIoU(),
                metrics.OneHotIoU(3, [1]), metrics.OneHotMeanIoU(3),
                metrics.SparseCategoricalAccuracy(), metrics.RootMeanSquaredError(), metrics.Sum()]

    def update(ms, sl):
        ms[0].update_state(labels[sl], scores[sl], sample_weight=weights[sl])
        ms[1].update_state(labels[sl], scores[sl])
        ms[2].update_state(labels[sl] % 2, binary_scores[sl])
        ms[3].update_state(one_hot[sl], scores[sl])
        ms[4].update_state(one_hot[sl], scores[sl])
        ms[5].update_state(labels[sl], scores[sl])
        ms[6].update_state(one_hot[sl], scores[sl])
        ms[7].update_state(weights[sl])

    everything = build()
    update(everything, slice(None))
    ranks = [build() for _ in range(3)]
    for ms, sl in zip(ranks, (slice(0, 17), slice(17, 40), slice(40, 40))):  # the last rank has no samples
        if sl.start < sl.stop:
            update(ms, sl)
    local = [[m.result() for m in ms] for ms in ranks]
    summed = sum(_metric_states(ms, zero=ms is ranks[2]) for ms in ranks)
    assert summed.size == 4 * 9 + 1 * 4 + 3 * 2  # four 3x3 matrices, one 2x2, three (total, count)
    got = _global_results(ranks[0], summed)
    want = {m.name: m.result() for m in everything}
    assert sorted(got) == sorted(want)
    for name in want:
        assert math.isclose(got[name], want[name], rel_tol=1e-12, abs_tol=1e-15), name
    assert [[m.result() for m in ms] for ms in ranks] == local  # the ranks keep their own states
    _assign_states(ranks[1], summed)
    for m in ranks[1]:
        assert math.isclose(m.result(), want[m.name], rel_tol=1e-12, abs_tol=1e-15), m.name
    with pytest.raises(ValueError, match="metric state values"):
        _global_results(ranks[0], summed[:-1])

# -- the group ---------------------------------------------------------------------------------
def test_self_group_collectives(solo):
    assert (dist.rank(), dist.size(), dist.local_rank(), dist.local_size(), dist.is_root()) == (0, 1, 0, 1, True)
    assert dist.init() is solo and dist.is_initialized()
    a = dist.allreduce(np.arange(4))
    assert a.dtype == np.float64 and np.array_equal(a, np.arange(4))
    np.testing.assert_array_equal(dist.allreduce(np.ones(3, np.float32), op="sum"), np.ones(3))
    np.testing.assert_array_equal(dist.broadcast(np.arange(6).reshape(2, 3)), np.arange(6).reshape(2, 3))
    dist.barrier()
    with pytest.raises(ValueError, match="op must be"):
        dist.allreduce(np.ones(2), op="max")
    with pytest.raises(TypeError, match="numeric"):
        dist.allreduce(np.array(["a"]))
    with pytest.raises(ValueError, match="root_rank"):
        dist.broadcast(np.ones(2), root_rank=1)
    stats = dist.comm_stats()
    assert set(stats) == {"gradients", "other"} and stats["gradients"]["calls"] >= 0


def test_init_arguments_and_missing_mpi4py(monkeypatch):
    _comm._reset_for_tests()
    try:
        with pytest.raises(ValueError, match="backend must be"):
            dist.init(backend="tcp")
        with pytest.raises(ValueError, match="needs the 'mpi' backend"):
            dist.init(backend="self", comm=object())
        monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
        monkeypatch.delitem(sys.modules, "mpi4py.MPI", raising=False)
        with pytest.raises(ImportError, match=r"pip install cnnfast\[mpi\]"):
            dist.init(backend="mpi")
        monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
        with pytest.raises(ImportError, match="MPI launcher with 4 processes"):
            dist.init()
        assert not dist.is_initialized()
        for var in _comm._LAUNCHER_SIZE_VARS:
            monkeypatch.delenv(var, raising=False)
        assert isinstance(dist.init(), dist.SelfCommunicator)  # no MPI and no launcher: one process
    finally:
        _comm._reset_for_tests()


def test_init_shares_the_cores_between_local_ranks(monkeypatch):
    class TwoHere(dist.SelfCommunicator):  # two unbound processes on this machine
        local_size = cpu_sharing = 2

    class BoundTwoHere(dist.SelfCommunicator):  # two processes bound to their own cores
        local_size, cpu_sharing = 2, 1

    previous = cnnfast.get_num_threads()
    try:
        monkeypatch.delenv("CNNFAST_NUM_THREADS", raising=False)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        default = cnnfast.runtime.default_num_threads()
        cnnfast.set_num_threads(default)
        _comm._set_threads(BoundTwoHere(), "auto")  # the launcher's binding already shares the cores
        assert cnnfast.get_num_threads() == default
        _comm._set_threads(TwoHere(), "auto")
        assert cnnfast.get_num_threads() == max(1, default // 2)
        _comm._set_threads(TwoHere(), None)  # leave it alone
        assert cnnfast.get_num_threads() == max(1, cnnfast.runtime.default_num_threads() // 2)
        _comm._set_threads(dist.SelfCommunicator(), 1)
        assert cnnfast.get_num_threads() == 1
        cnnfast.set_num_threads(2)
        monkeypatch.setenv("CNNFAST_NUM_THREADS", "2")
        _comm._set_threads(TwoHere(), "auto")  # an explicit setting wins
        assert cnnfast.get_num_threads() == 2
    finally:
        cnnfast.set_num_threads(previous)


# -- optimizer and callbacks -----------------------------------------------------------------------
def test_distributed_optimizer_keeps_class_config_and_serialization(solo):
    base = optimizers.Adam(0.003, beta_1=0.8)
    opt = dist.DistributedOptimizer(base)
    assert isinstance(opt, optimizers.Adam) and type(opt).__name__ == "Adam" and opt is not base
    assert dist.is_distributed_optimizer(opt) and not dist.is_distributed_optimizer(base)
    assert dist.DistributedOptimizer(opt) is opt
    assert opt.get_config() == base.get_config()
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert type(again) is optimizers.Adam and again.get_config() == base.get_config()
    assert type(dist.DistributedOptimizer("sgd")).__name__ == "SGD"
    assert type(dist.DistributedOptimizer("sgd")) is type(dist.DistributedOptimizer(optimizers.SGD()))


def test_distributed_optimizer_step_on_one_process_is_the_plain_step(solo, rng):
    from cnnfast.layers.base import Variable
    p0 = rng.normal(size=(5, 3)).astype(np.float32)
    g = rng.normal(size=(5, 3)).astype(np.float32)
    plain, wrapped = Variable(p0.copy(), "w", "w", True), Variable(p0.copy(), "w", "w", True)
    a, b = optimizers.Adam(0.01), dist.DistributedOptimizer(optimizers.Adam(0.01))
    for _ in range(3):
        a.apply_gradients([(g, plain)])
        b.apply_gradients([(g, wrapped)])
    np.testing.assert_array_equal(plain.value, wrapped.value)
    flat_a, flat_b, ga, gb = p0.ravel().copy(), p0.ravel().copy(), g.ravel().copy(), g.ravel().copy()
    optimizers.SGD(0.1).apply_flat(flat_a, ga)
    dist.DistributedOptimizer(optimizers.SGD(0.1)).apply_flat(flat_b, gb)
    np.testing.assert_array_equal(flat_a, flat_b)


def test_model_with_distributed_optimizer_saves_as_plain_optimizer(solo, tmp_path):
    x, y = make_data(16)
    model = make_model(1000)
    model.compile(optimizer=dist.DistributedOptimizer(model.optimizer), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = cnnfast.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is optimizers.Adam and loaded.optimizer.iterations == 2


def test_root_only_and_default_root_only_callbacks(tmp_path):
    from cnnfast import callbacks
    lam = callbacks.LambdaCallback()
    assert not dist._callbacks.is_root_only(lam)
    assert dist.root_only(lam) is lam and dist._callbacks.is_root_only(lam)
    for cb in (callbacks.ModelCheckpoint(str(tmp_path / "m.keras")), callbacks.CSVLogger(str(tmp_path / "l.csv")),
               callbacks.ProgbarLogger()):
        assert dist._callbacks.is_root_only(cb)
    assert not dist._callbacks.is_root_only(callbacks.EarlyStopping())
    with pytest.raises(TypeError, match="Callback"):
        dist.root_only(print)


def test_warmup_callback_arguments(solo):
    with pytest.raises(ValueError, match="warmup_epochs"):
        dist.LearningRateWarmupCallback(warmup_epochs=0)
    with pytest.raises(ValueError, match="initial_lr"):
        dist.LearningRateWarmupCallback(initial_lr=-1.0)
    x, y = make_data(16)
    model = make_model(1000)
    model.optimizer.learning_rate = lambda step: 0.01
    with pytest.raises(ValueError, match="schedule"):
        dist.fit(model, x, y, batch_size=8, verbose=0, callbacks=[dist.LearningRateWarmupCallback()])


def test_weights_checksum_and_broadcast_need_a_built_model(solo):
    from cnnfast import layers, models
    model = make_model(1000)
    crc = dist.weights_checksum(model)
    assert crc == dist.weights_checksum(model)
    model.weights[0].value[0, 0, 0, 0] += 1.0
    assert crc != dist.weights_checksum(model)
    unbuilt = models.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        dist.broadcast_weights(unbuilt)


# -- several processes -----------------------------------------------------------------------------
def run_mpi(nproc, *argv, timeout=TIMEOUT, env=None, cwd=None):
    """Run ``mpirun -n nproc python argv...``; kill the whole process group if it outlives ``timeout``."""
    env = dict(os.environ if env is None else env, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               CNNFAST_NUM_THREADS="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", str(nproc), sys.executable, *map(str, argv)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpirun -n {nproc} {argv} hung for {timeout} s\n{out[-2000:]}\n{err[-2000:]}")
    return proc.returncode, out, err, time.monotonic() - start


TWO_RANKS = [
    dict(name="adam", n=90, batch_size=16, epochs=2, validation_split=0.2, seed=11),
    dict(name="sgd_weights", n=77, batch_size=12, epochs=2, seed=2, optimizer="sgd", sample_weight=True,
         shuffle="batch"),
    dict(name="clip_classes", n=50, batch_size=9, epochs=3, seed=5, optimizer="adamw_clip", class_weight=True,
         validation_n=13, validation_freq=2),
    dict(name="batchnorm", n=60, batch_size=10, epochs=2, seed=1, batchnorm=True, validation_split=0.2),
    dict(name="dropout", n=40, batch_size=8, epochs=2, seed=1, dropout=True),
    dict(name="horovod", kind="horovod", n=64, batch_size=16, epochs=2),
    dict(name="stop_batch", kind="stop", n=64, batch_size=8, epochs=3, stop_rank=1, stop_batch=2),
    dict(name="stop_epoch", kind="stop", n=64, batch_size=8, epochs=3, stop_rank=1, stop_epoch=0),
    dict(name="warmup", kind="warmup", n=64, batch_size=16, epochs=3, warmup_epochs=2),
    dict(name="evaluate", kind="evaluate", n=37, batch_size=8),
]
THREE_RANKS = [  # 101 = 5 x 20 + 1: the last global batch has 1 sample, ranks 1 and 2 pad it
    dict(name="uneven", n=101, batch_size=20, epochs=2, seed=8, validation_n=2),
    dict(name="uneven_sgd", n=31, batch_size=4, epochs=1, seed=9, optimizer="sgd", validation_split=0.1),
]


def _run_worker(tmp_path_factory, nproc, specs):
    if not HAVE_MPI:
        pytest.skip("needs mpirun and mpi4py")
    out = tmp_path_factory.mktemp(f"mpi{nproc}")
    (out / "specs.json").write_text(json.dumps(specs))
    code, stdout, stderr, _ = run_mpi(nproc, SCRIPTS / "train_worker.py", out / "specs.json", out)
    assert code == 0 and (out / "done").exists(), f"mpirun failed ({code}):\n{stdout[-3000:]}\n{stderr[-3000:]}"
    done = json.loads((out / "done").read_text())
    assert (done["size"], done["backend"]) == (nproc, "mpi") and 1 <= done["cpu_sharing"] <= nproc
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return _run_worker(tmp_path_factory, 2, TWO_RANKS)


@pytest.fixture(scope="module")
def three_ranks(tmp_path_factory):
    return _run_worker(tmp_path_factory, 3, THREE_RANKS)


def _result(out, name, rank):
    with np.load(out / f"{name}.rank{rank}.npz") as z:
        weights = [z[f"arr_{i}"] for i in range(len(z.files))]
    return weights, json.loads((out / f"{name}.rank{rank}.json").read_text())


def _assert_history_close(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-5, atol=1e-6, err_msg=k)


def _check_against_single_process(out, spec, nproc):
    ref, ref_hist = _reference_fit(spec)
    weights, info = _result(out, spec["name"], 0)
    for got, want in zip(weights, ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    _assert_history_close(info["history"], ref_hist)
    assert info["iterations"] == ref.optimizer.iterations
    for r in range(1, nproc):  # every rank holds the very same model
        other, other_info = _result(out, spec["name"], r)
        for a, b in zip(weights, other):
            np.testing.assert_array_equal(a, b)
        assert other_info["history"] == info["history"]


@needs_mpi
@pytest.mark.parametrize("name", ["adam", "sgd_weights", "clip_classes"])
def test_two_ranks_train_as_one_process_on_the_global_batch(two_ranks, solo, name):
    _check_against_single_process(two_ranks, next(s for s in TWO_RANKS if s["name"] == name), 2)


@needs_mpi
@pytest.mark.parametrize("name", ["uneven", "uneven_sgd"])
def test_three_ranks_uneven_shards_and_padding(three_ranks, solo, name):
    spec = next(s for s in THREE_RANKS if s["name"] == name)
    n = int(spec["n"] * (1 - spec.get("validation_split", 0)))
    plans = [dist.shard_plan(n, spec["batch_size"], rank=r, size=3) for r in range(3)]
    assert len({p.batch_size for p in plans}) > 1  # the parts of a full batch differ in size
    if name == "uneven":
        assert plans[2].padded[-1] and not plans[0].padded.any()  # ranks 1 and 2 pad the 1-sample batch
    _check_against_single_process(three_ranks, spec, 3)


@needs_mpi
def test_two_ranks_batchnorm_statistics_agree(two_ranks):
    w0, i0 = _result(two_ranks, "batchnorm", 0)
    w1, i1 = _result(two_ranks, "batchnorm", 1)
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    assert i0["history"] == i1["history"] and all(np.all(np.isfinite(a)) for a in w0)
    fresh = make_model(1000, batchnorm=True)  # the moving statistics did move
    moving = [i for i, v in enumerate(fresh.weights) if not v.trainable]
    assert moving and all(not np.array_equal(w0[i], fresh.get_weights()[i]) for i in moving)


@needs_mpi
def test_two_ranks_with_dropout_stay_identical(two_ranks):
    w0, i0 = _result(two_ranks, "dropout", 0)
    w1, i1 = _result(two_ranks, "dropout", 1)
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    assert i0 == i1 and i0["iterations"] == 10


def test_dropout_seeds_differ_per_rank_during_fit():
    from cnnfast.distributed._fit import _rank_rng_streams
    model = make_model(1000, dropout=True)
    drop = [layer for layer in model.layers if type(layer).__name__ == "Dropout"]
    seed = drop[0].seed
    with _rank_rng_streams(model, 0):
        assert drop[0].seed == seed
    with _rank_rng_streams(model, 1):
        one = drop[0].seed
    with _rank_rng_streams(model, 2):
        two = drop[0].seed
    assert len({seed, one, two}) == 3 and drop[0].seed == seed and 0 <= one < 2**31


@needs_mpi
def test_ranks_with_different_data_get_a_clear_error(tmp_path):
    (tmp_path / "specs.json").write_text(json.dumps([dict(name="mismatch", kind="mismatch")]))
    code, out, err, _ = run_mpi(2, SCRIPTS / "train_worker.py", tmp_path / "specs.json", tmp_path, timeout=120)
    assert code != 0 and "the data on rank(s) [1] differ from rank 0's" in err and "whole data set" in err


@needs_mpi
def test_two_ranks_horovod_recipe_with_plain_fit(two_ranks, solo):
    x, y = make_data(64)
    ref = make_model(1000)
    h = ref.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for r in (0, 1):
        weights, info = _result(two_ranks, "horovod", r)
        for got, want in zip(weights, ref.get_weights()):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        _assert_history_close(info["history"], h.history)


@needs_mpi
def test_two_ranks_stop_requested_on_one_rank_stops_all(two_ranks):
    for r in (0, 1):
        _, info = _result(two_ranks, "stop_batch", r)
        assert info["iterations"] == 4 and info["epochs"] == [0]  # after step 3 + 1
        _, info = _result(two_ranks, "stop_epoch", r)
        assert info["iterations"] == 8 and info["epochs"] == [0]  # 64 / 8 steps, then stop


@needs_mpi
def test_two_ranks_learning_rate_warmup(two_ranks):
    _, info = _result(two_ranks, "warmup", 0)
    steps = 4  # 64 samples in global batches of 16
    want = [0.08 * (0.5 + 0.5 * min(1.0, (e + b / steps) / 2)) for e in range(3) for b in range(steps)]
    np.testing.assert_allclose(info["lrs"], want, rtol=1e-12)
    assert _result(two_ranks, "warmup", 1)[1]["lrs"] == info["lrs"]


@needs_mpi
def test_two_ranks_evaluate_gives_global_metrics(two_ranks, solo):
    x, y = make_data(37, seed=5)
    model = make_model(1000, metrics=("accuracy", "sparse_categorical_crossentropy"))
    want = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    for r in (0, 1):
        got = _result(two_ranks, "evaluate", r)[1]["result"]
        assert sorted(got) == sorted(want)
        for k in want:
            assert math.isclose(got[k], want[k], rel_tol=1e-6), k


@needs_mpi
@pytest.mark.parametrize("where", ["fit", "script"])
def test_a_failing_rank_ends_every_rank(tmp_path, where):
    spec = [dict(name="fail", kind="fail", where=where, fail_rank=1, after=3)]
    (tmp_path / "specs.json").write_text(json.dumps(spec))
    code, out, err, seconds = run_mpi(2, SCRIPTS / "train_worker.py", tmp_path / "specs.json", tmp_path, timeout=120)
    assert code != 0
    assert "rank 1 of 2 failed" in err and f"deliberate failure {'inside' if where == 'fit' else 'outside'} fit" in err
    assert "MPI_Abort" in err or "MPI_ABORT" in err
    assert not (tmp_path / "done").exists()


def _cli_has_distributed_flag():
    proc = subprocess.run([sys.executable, "-m", "cnnfast", "train", "--help"], capture_output=True, text=True)
    return "--distributed" in proc.stdout


@needs_mpi
def test_cli_train_distributed_prints_once(tmp_path):
    if not _cli_has_distributed_flag():
        pytest.skip("this cnnfast CLI has no `train --distributed` yet")
    code, out, err, _ = run_mpi(2, "-m", "cnnfast", "train", "--distributed", "--dataset", "digits", "--epochs", "2",
                                "--verbose", "2", "--save", tmp_path / "digits.keras", cwd=tmp_path)
    assert code == 0, out[-2000:] + err[-2000:]
    assert out.count("Test accuracy:") == 1 and out.count("Epoch 2/2") == 1 and "2 processes" in out
    assert float(out.split("Test accuracy:")[1].split()[0]) > 0.5
    assert (tmp_path / "digits.keras").exists() and "Traceback" not in err


def test_cli_train_distributed_without_mpi4py_says_what_to_install(tmp_path):
    if not _cli_has_distributed_flag():
        pytest.skip("this cnnfast CLI has no `train --distributed` yet")
    (tmp_path / "mpi4py.py").write_text("raise ImportError('No module named mpi4py')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "cnnfast", "train", "--distributed", "--epochs", "1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "pip install cnnfast[mpi]" in proc.stderr and "Traceback" not in proc.stderr


@needs_mpi
def test_distributed_mnist_example(tmp_path):
    data = shared_data_dir()
    if data is None:
        pytest.skip("MNIST is not in the shared data directory")
    env = dict(os.environ, CNNFAST_DATA=str(data))
    code, out, err, _ = run_mpi(2, REPO_ROOT / "examples" / "distributed_mnist.py", "--epochs", "1", "--limit", "3000",
                                "--checkpoint", tmp_path / "ckpt.keras", env=env, cwd=tmp_path)
    assert code == 0, out[-2000:] + err[-2000:]
    assert out.count("Test accuracy:") == 1 and "2 processes" in out
    assert float(out.split("Test accuracy:")[1].split()[0]) > 0.5  # chance is 0.1
    assert (tmp_path / "ckpt.keras").exists() and "Traceback" not in err
