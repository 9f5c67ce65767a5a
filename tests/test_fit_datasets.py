"""fit / evaluate / predict on data sets: generators, iterables and cnnfast.utils.PyDataset.

The reference is the array path: the same batches fed as arrays with shuffle=False must give the
same weights, logs and outputs. Keras 3 is the oracle for the epoch rules it defines (batch order
of a shuffled PyDataset)."""
import math
import os
import threading
import time
import traceback
import warnings

import numpy as np
import pytest

from cnnfast import callbacks, layers, models
from cnnfast.models.data_adapters import RAN_OUT_WARNING
from cnnfast.utils import PyDataset, set_random_seed

os.environ.setdefault("KERAS_BACKEND", "torch")

N, BS = 50, 8  # 7 batches, the last one of 2 samples
STEPS = math.ceil(N / BS)


def make_model(seed=0, weighted=False):
    set_random_seed(seed)
    model = models.Sequential([layers.Input((4, 4, 1)), layers.Conv2D(4, 3, activation="relu"),
                               layers.Flatten(), layers.Dense(8, activation="relu"),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"] if weighted else None)
    return model


@pytest.fixture
def data(rng):
    x = rng.standard_normal((N, 4, 4, 1)).astype(np.float32)
    y = (x[:, :2].sum((1, 2, 3)) > 0).astype(int) + (x[:, 2:].sum((1, 2, 3)) > 1)
    w = rng.uniform(0.5, 2.0, N).astype(np.float32)
    return x, y, w


def batches_of(x, y=None, w=None, passes=1):
    """A generator of the array path's shuffle=False batches, ``passes`` times over."""
    for _ in range(passes):
        for i in range(0, len(x), BS):
            sl = slice(i, i + BS)
            yield (x[sl],) if y is None else (x[sl], y[sl]) if w is None else (x[sl], y[sl], w[sl])


class ArrayBatches(PyDataset):
    """Batch i of arrays, recording which batches were loaded, on which thread, and the epoch hooks."""

    def __init__(self, x, y, w=None, fail_at=None, delay=0.0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.w, self.fail_at, self.delay = x, y, w, fail_at, delay
        self.loaded, self.threads, self.hooks = [], set(), []
        self._lock = threading.Lock()

    def __len__(self):
        return math.ceil(len(self.x) / BS)

    def __getitem__(self, index):
        if index == self.fail_at:
            raise KeyError(f"batch {index} is corrupt")
        time.sleep(self.delay)
        with self._lock:
            self.loaded.append(index)
            self.threads.add(threading.current_thread().name)
        sl = slice(index * BS, (index + 1) * BS)
        return (self.x[sl], self.y[sl]) if self.w is None else (self.x[sl], self.y[sl], self.w[sl])

    def on_epoch_begin(self):
        self.hooks.append("begin")

    def on_epoch_end(self):
        self.hooks.append("end")


class Recorder(callbacks.Callback):
    def __init__(self, stop_after=None):
        super().__init__()
        self.params_seen, self.batches, self.epochs, self.test_batches = None, [], [], 0
        self.stop_after = stop_after

    def on_train_begin(self, logs=None):
        self.params_seen = dict(self.params)

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)
        if self.stop_after is not None and len(self.batches) >= self.stop_after:
            self.model.stop_training = True

    def on_test_batch_end(self, batch, logs=None):
        self.test_batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


def assert_same_weights(a, b, tol=1e-6):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=0, atol=tol)


def assert_same_history(a, b):
    assert a.history.keys() == b.history.keys()
    for k in a.history:
        np.testing.assert_allclose(a.history[k], b.history[k], rtol=1e-6, atol=1e-7)


# -- the same batches as arrays -----------------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
def test_generator_matches_arrays(data, weighted):
    x, y, w = data
    w = w if weighted else None
    ref = make_model(weighted=weighted)
    h_ref = ref.fit(x, y, sample_weight=w, batch_size=BS, epochs=3, shuffle=False, verbose=0)
    model = make_model(weighted=weighted)
    h = model.fit(batches_of(x, y, w, passes=3), epochs=3, steps_per_epoch=STEPS, verbose=0)
    assert_same_weights(ref, model)
    assert_same_history(h_ref, h)


class ReIterable:
    """Not an iterator: every iter() is a new pass, and len() is the number of batches."""

    def __init__(self, x, y):
        self.x, self.y, self.passes = x, y, 0

    def __iter__(self):
        self.passes += 1
        return batches_of(self.x, self.y)

    def __len__(self):
        return STEPS


def test_restartable_iterable_is_one_pass_per_epoch(data):
    x, y, _ = data
    ref = make_model()
    h_ref = ref.fit(x, y, batch_size=BS, epochs=3, shuffle=False, verbose=0)
    model, rec, iterable = make_model(), Recorder(), ReIterable(x, y)
    h = model.fit(iterable, epochs=3, verbose=0, callbacks=[rec])
    assert iterable.passes == 3 and rec.params_seen["steps"] == STEPS
    assert_same_weights(ref, model)
    assert_same_history(h_ref, h)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_py_dataset_matches_arrays_and_calls_epoch_hooks(data, workers):
    x, y, w = data
    ref = make_model(weighted=True)
    h_ref = ref.fit(x, y, sample_weight=w, batch_size=BS, epochs=2, shuffle=False, verbose=0,
                    validation_data=(x[:20], y[:20]))
    model, rec = make_model(weighted=True), Recorder()
    train = ArrayBatches(x, y, w, workers=workers, max_queue_size=2)
    val = ArrayBatches(x[:20], y[:20], workers=workers)
    h = model.fit(train, epochs=2, shuffle=False, verbose=0, validation_data=val, callbacks=[rec])
    assert_same_weights(ref, model)
    assert_same_history(h_ref, h)
    assert train.hooks == ["begin", "end"] * 2 and val.hooks == ["begin", "end"] * 2
    # a thread pool finishes loads out of order; the batches are still consumed in order (weights)
    assert [sorted(train.loaded[:STEPS]), sorted(train.loaded[STEPS:])] == [list(range(STEPS))] * 2
    assert rec.params_seen["steps"] == STEPS and rec.batches == list(range(STEPS)) * 2
    loader_threads = {t for t in train.threads if t != threading.current_thread().name}
    assert bool(loader_threads) == (workers > 0)  # workers >= 1 load off the training thread


def test_evaluate_and_predict_on_generators_and_py_datasets(data):
    x, y, w = data
    model = make_model(weighted=True)
    model.fit(x, y, batch_size=BS, epochs=1, verbose=0)
    ref = model.evaluate(x, y, sample_weight=w, batch_size=BS, verbose=0, return_dict=True)
    for stream in (batches_of(x, y, w), ArrayBatches(x, y, w), ArrayBatches(x, y, w, workers=2)):
        got = model.evaluate(stream, verbose=0, return_dict=True)
        assert got.keys() == ref.keys()
        np.testing.assert_allclose([got[k] for k in ref], [ref[k] for k in ref], rtol=1e-6)
    out = model.predict(x, batch_size=BS, verbose=0)
    np.testing.assert_allclose(model.predict(batches_of(x), verbose=0), out, rtol=0, atol=1e-6)
    # (x, y) batches: the targets are ignored; steps takes the first batches
    np.testing.assert_allclose(model.predict(ArrayBatches(x, y), verbose=0), out, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict(batches_of(x, y), steps=2, verbose=0), out[:2 * BS],
                               rtol=0, atol=1e-6)
    first = model.evaluate(batches_of(x, y), steps=2, verbose=0)
    assert first == pytest.approx(model.evaluate(x[:2 * BS], y[:2 * BS], batch_size=BS, verbose=0))


def test_batches_of_varying_size_and_model_built_from_first_batch(rng):
    sizes = [5, 9, 1, 7]
    xs = [rng.standard_normal((s, 6)).astype(np.float32) for s in sizes]
    ys = [rng.integers(0, 2, s) for s in sizes]

    def dense_model(*head):
        model = models.Sequential([*head, layers.Dense(4, activation="relu"),
                                   layers.Dense(2, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model

    unbuilt = dense_model()
    unbuilt.fit(zip(xs, ys), verbose=0)  # built from the first batch's shape
    assert unbuilt.built and unbuilt.predict(iter(xs), verbose=0).shape == (sum(sizes), 2)
    model, ref = dense_model(layers.Input((6,))), dense_model(layers.Input((6,)))
    ref.set_weights(model.get_weights())
    model.fit(zip(xs, ys), verbose=0)
    for xb, yb in zip(xs, ys):
        ref.train_on_batch(xb, yb)
    assert_same_weights(ref, model)


def test_multi_input_batches_as_dicts_and_lists(rng):
    def two_input_model():
        set_random_seed(1)
        a, b = layers.Input((3,), name="left"), layers.Input((2,), name="right")
        out = layers.Dense(2, activation="softmax")(layers.Concatenate()([layers.Dense(4)(a), b]))
        model = models.Model([a, b], out)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    xa, xb = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    y = rng.integers(0, 2, 20)
    ref = two_input_model()
    h_ref = ref.fit([xa, xb], y, batch_size=BS, shuffle=False, verbose=0)
    dict_batches = (({"left": xa[i:i + BS], "right": xb[i:i + BS]}, y[i:i + BS]) for i in range(0, 20, BS))
    model = two_input_model()
    h = model.fit(dict_batches, verbose=0)
    assert_same_weights(ref, model)
    assert_same_history(h_ref, h)
    # predict: each batch is (x,) with x the list of the two inputs
    list_batches = (([xa[i:i + BS], xb[i:i + BS]],) for i in range(0, 20, BS))
    np.testing.assert_allclose(model.predict(list_batches, verbose=0), model.predict([xa, xb], verbose=0),
                               rtol=0, atol=1e-6)


# -- epochs and steps -------------------------------------------------------------------------------

def test_steps_per_epoch_below_length_continues_the_pass(data):
    x, y, _ = data
    ds = ArrayBatches(x, y)
    rec = Recorder()
    with pytest.warns(UserWarning, match="ran out of data"):
        # 3 + 3, then the pass has 1 batch left: Keras ends that epoch early and starts a new pass
        h = make_model().fit(ds, epochs=4, steps_per_epoch=3, shuffle=False, verbose=0, callbacks=[rec])
    assert ds.loaded == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    assert rec.batches == [0, 1, 2, 0, 1, 2, 0, 0, 1, 2] and rec.params_seen["steps"] == 3
    assert len(h.history["loss"]) == 4 and ds.hooks == ["begin", "end"] * 4


def test_generator_that_runs_out_stops_training_with_kerass_warning(data):
    x, y, _ = data
    ref = make_model()
    ref.fit(x, y, batch_size=BS, epochs=1, shuffle=False, verbose=0)  # the 7 batches there are
    model, rec = make_model(), Recorder()
    with pytest.warns(UserWarning) as record:
        h = model.fit(batches_of(x, y), epochs=5, steps_per_epoch=4, verbose=0, callbacks=[rec])
    ran_out = [r for r in record if "ran out" in str(r.message)]
    assert [str(r.message) for r in ran_out] == [RAN_OUT_WARNING]
    assert ran_out[0].filename == __file__  # points at the fit call
    assert rec.batches == [0, 1, 2, 3, 0, 1, 2] and rec.epochs == [0, 1]
    assert len(h.history["loss"]) == 2
    assert_same_weights(ref, model)


def test_generator_without_steps_is_one_epoch_then_stops(data):
    x, y, _ = data
    rec = Recorder()
    model = make_model()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = model.fit(batches_of(x, y), epochs=3, verbose=0, callbacks=[rec])
    assert rec.params_seen["steps"] is None  # unknown until the generator ends, as in Keras
    assert rec.batches == list(range(STEPS)) and len(h.history["loss"]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one epoch of a finite generator is no shortfall
        make_model().fit(batches_of(x, y), epochs=1, verbose=0)


def test_endless_generator_without_steps_runs_until_stopped(data):
    """Keras 3 raises no error here: the epoch runs until the data or a callback stops it."""
    x, y, _ = data

    def endless():
        while True:
            yield x[:BS], y[:BS]

    rec = Recorder(stop_after=3 * STEPS)
    h = make_model().fit(endless(), epochs=2, verbose=0, callbacks=[rec])
    assert rec.batches == list(range(3 * STEPS)) and len(h.history["loss"]) == 1


def test_empty_data_sets_are_refused(data):
    x, y, _ = data
    model = make_model()
    with pytest.raises(ValueError, match="fit: x must yield at least one batch"):
        model.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="evaluate: x must yield at least one batch"):
        model.evaluate(ArrayBatches(x[:0], y[:0]), verbose=0)
    with pytest.raises(ValueError, match="predict: x must yield at least one batch"):
        model.predict(iter([]), verbose=0)


def test_validation_data_kinds_and_validation_steps(data):
    x, y, _ = data
    ref = make_model()
    h_ref = ref.fit(x, y, batch_size=BS, epochs=2, shuffle=False, verbose=0, validation_data=(x, y))
    for val in (ReIterable(x, y), ArrayBatches(x, y, workers=2)):
        h = make_model().fit(x, y, batch_size=BS, epochs=2, shuffle=False, verbose=0, validation_data=val)
        assert_same_history(h_ref, h)
    # arrays for validation with a generator for training; validation_steps on a data set
    h = make_model().fit(batches_of(x, y), verbose=0, validation_data=(x, y))
    np.testing.assert_allclose(h.history["val_loss"], h_ref.history["val_loss"][:1], rtol=1e-6)
    rec = Recorder()
    make_model().fit(x, y, epochs=2, verbose=0, validation_data=ArrayBatches(x, y),
                     validation_steps=2, callbacks=[rec])
    assert rec.test_batches == 4
    # a validation generator is read once: the next epoch has no validation, with Keras's warning
    with pytest.warns(UserWarning, match="ran out of data"):
        h = make_model().fit(x, y, epochs=2, verbose=0, validation_data=batches_of(x, y))
    assert len(h.history["val_loss"]) == 1 and len(h.history["loss"]) == 2


def test_py_dataset_batch_order_is_shuffled_per_pass_and_seeded(data):
    x, y, _ = data
    orders = []
    for _ in range(2):
        ds = ArrayBatches(x, y, workers=0)
        make_model(seed=5).fit(ds, epochs=2, verbose=0)  # shuffle=True by default
        orders.append(ds.loaded)
    assert orders[0] == orders[1]  # set_random_seed fixes the order
    first, second = orders[0][:STEPS], orders[0][STEPS:]
    assert sorted(first) == sorted(second) == list(range(STEPS))
    assert first != list(range(STEPS)) or second != list(range(STEPS))
    ds = ArrayBatches(x, y, workers=0)
    make_model().fit(ds, epochs=2, shuffle=False, verbose=0)
    assert ds.loaded == list(range(STEPS)) * 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's notes on Keras's own conversions
def test_kerass_fit_shuffles_a_py_datasets_batch_order(keras, data):
    """The oracle for the rule above: Keras 3.15's PyDatasetAdapter shuffles the batch indices."""
    x, y, _ = data

    class KerasBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.loaded = []

        def __len__(self):
            return STEPS

        def __getitem__(self, index):
            self.loaded.append(index)
            return x[index * BS:(index + 1) * BS].reshape(-1, 16), y[index * BS:(index + 1) * BS]

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    shuffled, ordered = KerasBatches(), KerasBatches()
    model.fit(shuffled, epochs=3, verbose=0)
    model.fit(ordered, epochs=1, shuffle=False, verbose=0)
    assert ordered.loaded[-STEPS:] == list(range(STEPS))
    passes = [shuffled.loaded[-STEPS * k:][:STEPS] for k in (3, 2, 1)]
    assert all(sorted(p) == list(range(STEPS)) for p in passes)
    assert any(p != list(range(STEPS)) for p in passes)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_kerass_generator_rules_match(keras, data):
    """Keras 3 gives the same warning when a generator runs out, and no error for an endless
    generator without steps_per_epoch (a callback stops it)."""
    x, y, _ = data
    flat = x.reshape(N, 16)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning) as record:
        model.fit(batches_of(flat, y), epochs=5, steps_per_epoch=4, verbose=0)
    assert RAN_OUT_WARNING in [str(r.message) for r in record]

    class StopAfter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = 0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            self.model.stop_training = self.seen >= 3 * STEPS

    def endless():
        while True:
            yield flat[:BS], y[:BS]

    stop = StopAfter()
    history = model.fit(endless(), epochs=2, shuffle=False, verbose=0, callbacks=[stop])
    assert stop.seen == 3 * STEPS and len(history.history["loss"]) == 1


# -- background loading: errors and threads --------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 1, 3])
def test_worker_exception_reaches_the_caller_with_its_traceback(data, workers):
    x, y, _ = data
    before = threading.active_count()
    ds = ArrayBatches(x, y, fail_at=4, workers=workers, max_queue_size=2)
    with pytest.raises(KeyError, match="batch 4 is corrupt") as info:
        make_model().fit(ds, epochs=2, shuffle=False, verbose=0)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "__getitem__" in frames and "fit" in frames
    assert ds.hooks == ["begin", "end"]  # the epoch was closed despite the error
    assert threading.active_count() == before


def test_no_thread_left_after_fit_returns_or_stops_early(data):
    x, y, _ = data
    before = threading.active_count()
    ds = ArrayBatches(x, y, workers=2, max_queue_size=2)
    make_model().fit(ds, epochs=2, verbose=0, validation_data=ArrayBatches(x, y, workers=3))
    assert threading.active_count() == before
    # stop_training with batches still queued and the loaders blocked on the full queue
    rec = Recorder(stop_after=2)
    ds = ArrayBatches(x, y, workers=1, max_queue_size=1)
    make_model().fit(ds, epochs=3, verbose=0, callbacks=[rec])
    assert rec.batches == [0, 1] and threading.active_count() == before
    assert len(ds.loaded) <= 2 + 1 + 1  # consumed, queued, and the one the loader held


def test_loading_overlaps_training(data):
    """With a slow __getitem__, a background loader hides the loading time behind the steps."""
    x, y, _ = data
    delay, steps = 0.02, STEPS

    class SlowStep(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(delay)  # stands for a training step as slow as one batch load

    timings = {}
    for workers in (0, 1):
        ds = ArrayBatches(x, y, delay=delay, workers=workers)
        model = make_model()
        start = time.perf_counter()
        model.fit(ds, epochs=1, shuffle=False, verbose=0, callbacks=[SlowStep()])
        timings[workers] = time.perf_counter() - start
    # serial: ~2 * steps * delay; overlapped: ~(steps + 1) * delay
    assert timings[1] < timings[0] - 0.5 * steps * delay


# -- arguments -------------------------------------------------------------------------------------------

def test_py_dataset_arguments():
    assert (PyDataset().workers, PyDataset().use_multiprocessing, PyDataset().max_queue_size) == (1, False, 10)
    with pytest.raises(NotImplementedError, match="use_multiprocessing=True is not supported"):
        PyDataset(use_multiprocessing=True)
    with pytest.raises(ValueError, match="workers must be >= 0"):
        PyDataset(workers=-1)
    with pytest.raises(ValueError, match="max_queue_size must be >= 1"):
        PyDataset(max_queue_size=0)
    with pytest.raises(TypeError, match="workers must be an integer"):
        PyDataset(workers=1.5)
    with pytest.raises(NotImplementedError, match="must implement __len__ or the num_batches"):
        PyDataset().num_batches
    with pytest.raises(NotImplementedError, match="must implement __getitem__"):
        PyDataset()[0]


def test_keras_errors_for_arguments_a_data_set_cannot_take(data):
    x, y, w = data
    model = make_model()
    with pytest.raises(ValueError, match="when x is a generator, y must not be passed"):
        model.fit(batches_of(x), y, verbose=0)
    with pytest.raises(ValueError, match="when x is a PyDataset, sample_weight must not be passed"):
        model.evaluate(ArrayBatches(x, y), sample_weight=w, verbose=0)
    with pytest.raises(ValueError, match="class_weight is not supported when x is a generator"):
        model.fit(batches_of(x, y), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="validation_split is only supported for NumPy arrays"):
        model.fit(batches_of(x, y), validation_split=0.2, verbose=0)
    with pytest.raises(TypeError, match="fit.distributed=True.: x must be NumPy arrays"):
        model.fit(ArrayBatches(x, y), distributed=True, verbose=0)
    with pytest.raises(ValueError, match="a batch must be .x,., .x, y. or .x, y, sample_weight."):
        model.fit(iter([(x, y, w, w)]), verbose=0)
    with pytest.raises(ValueError, match="batch y has 7 samples but x has 8"):
        model.fit(iter([(x[:8], y[:7])]), verbose=0)


def test_class_weight_with_a_py_dataset_matches_arrays(data):
    x, y, _ = data
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    ref = make_model()
    ref.fit(x, y, batch_size=BS, class_weight=cw, shuffle=False, verbose=0)
    model = make_model()
    model.fit(ArrayBatches(x, y), class_weight=cw, shuffle=False, verbose=0)
    assert_same_weights(ref, model)


@pytest.mark.parametrize("bad", ["images.npz", b"raw", {1, 2}, object(), print])
def test_unsupported_types_are_named(bad):
    model = make_model()
    with pytest.raises(TypeError, match=rf"fit: x of type \S*{type(bad).__qualname__} is not supported; "
                                        r"x must be NumPy arrays .*PyDataset.*generator"):
        model.fit(bad, verbose=0)
