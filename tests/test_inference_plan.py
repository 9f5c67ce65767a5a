"""Inference plans (cnnfast/models/inference.py): predict and predict_on_batch run a forward pass
compiled per input shape. They must give exactly the general path's outputs, see weight changes,
and step aside for layers and graphs they do not cover."""
import numpy as np
import pytest

import cnnfast
from cnnfast import callbacks, layers, models, zoo


def general_forward(model, x):
    return model._run_forward([x], False, [{"node_index": i} for i in range(len(model._plan))])[0].copy()


@pytest.mark.parametrize("batch", [1, 2, 7, 64])
def test_plan_equals_the_general_path_bit_for_bit(rng, batch, threads):
    model = zoo.mnist_cnn()
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    assert model._inference_plan(x.shape) is not None
    expected = general_forward(model, x)
    np.testing.assert_array_equal(model.predict_on_batch(x), expected)
    np.testing.assert_array_equal(model.predict(x, batch_size=3, verbose=0), np.concatenate(
        [general_forward(model, x[i:i + 3]) for i in range(0, batch, 3)]))


def test_plan_covers_linear_and_dense_only_models(rng):
    model = models.Sequential([layers.Input((6, 5, 2)), layers.Conv2D(3, 2, padding="same"),
                               layers.MaxPooling2D(3, strides=1, padding="same"), layers.Dropout(0.5),
                               layers.Flatten(), layers.Dense(4, activation="relu"), layers.Dense(3)])
    x = rng.standard_normal((4, 6, 5, 2)).astype(np.float32)
    assert model._inference_plan(x.shape) is not None
    np.testing.assert_array_equal(model.predict(x, verbose=0), general_forward(model, x))


def test_plan_sees_weight_changes(rng):
    model = zoo.mnist_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.random((2, 28, 28, 1), dtype=np.float32)
    before = model.predict_on_batch(x)
    model.train_on_batch(x, np.array([1, 2]))
    after = model.predict_on_batch(x)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, general_forward(model, x))
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    np.testing.assert_allclose(model.predict_on_batch(x), np.full((2, 10), 0.1, np.float32), rtol=1e-6)


def test_uncovered_layers_and_graphs_keep_the_general_path(rng):
    with_bn = models.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3), layers.BatchNormalization(),
                                 layers.Flatten(), layers.Dense(2)])
    tanh = models.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="tanh"),
                              layers.Flatten(), layers.Dense(2)])
    inputs = layers.Input((6, 6, 1))
    a = layers.Conv2D(1, 3, padding="same")(inputs)
    branched = models.Model(inputs, layers.Dense(2)(layers.Flatten()(layers.Add()([a, inputs]))))
    x = rng.standard_normal((3, 6, 6, 1)).astype(np.float32)
    for model in (tanh, branched):
        assert model._inference_plan(x.shape) is None
        np.testing.assert_array_equal(model.predict(x, verbose=0), general_forward(model, x))
    # a batch norm after a convolution is folded into it (tests/test_inference_graph_plan.py)
    assert with_bn._inference_plan(x.shape) is not None
    np.testing.assert_allclose(with_bn.predict(x, verbose=0), general_forward(with_bn, x), rtol=1e-5, atol=1e-6)


def test_predict_callbacks_get_stable_outputs(rng):
    seen = []

    class Keep(callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            seen.append(logs["outputs"][0])

    model = zoo.mnist_cnn()
    x = rng.random((6, 28, 28, 1), dtype=np.float32)
    out = model.predict(x, batch_size=2, verbose=0, callbacks=[Keep()])
    np.testing.assert_array_equal(np.concatenate(seen), out)


def test_plans_follow_the_thread_count_and_bad_input_still_raises(rng):
    model = zoo.mnist_cnn()
    x = rng.random((1, 28, 28, 1), dtype=np.float32)
    previous = cnnfast.get_num_threads()
    try:
        cnnfast.set_num_threads(1)
        one = model.predict_on_batch(x)
        cnnfast.set_num_threads(2)
        np.testing.assert_array_equal(model.predict_on_batch(x), one)
    finally:
        cnnfast.set_num_threads(previous)
    with pytest.raises(ValueError, match="incompatible|expected"):
        model.predict_on_batch(rng.random((1, 27, 28, 1), dtype=np.float32))


def test_model_call_in_inference_mode_runs_the_plan(rng, monkeypatch):
    model = zoo.mnist_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.random((3, 28, 28, 1), dtype=np.float32)
    runs = []
    real_run = cnnfast.models.inference.run
    monkeypatch.setattr(cnnfast.models.inference, "run", lambda plan, a: runs.append(a.shape) or real_run(plan, a))
    out = model(x)
    assert runs == [x.shape]
    np.testing.assert_array_equal(out, general_forward(model, x))
    np.testing.assert_array_equal(model(x, training=False), out)
    assert runs == [x.shape] * 2
    # the result is the caller's: the next call does not overwrite it
    again = model(x[::-1].copy())
    np.testing.assert_array_equal(out, general_forward(model, x))
    np.testing.assert_array_equal(again, general_forward(model, x[::-1].copy()))
    # a training call takes the general path (dropout active), and a weight change is seen
    runs.clear()
    model(x, training=True)
    assert runs == []
    model.train_on_batch(x, np.array([1, 2, 3]))
    np.testing.assert_array_equal(model(x), general_forward(model, x))


def test_model_call_on_covered_graph_sees_folded_batch_norm_updates(rng):
    inputs = layers.Input((6, 6, 2))
    y = layers.BatchNormalization()(layers.Conv2D(3, 3)(inputs))
    model = models.Model(inputs, layers.Dense(2)(layers.Flatten()(layers.ReLU()(y))))
    model.compile("sgd", "mse")
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(model(x), general_forward(model, x), rtol=1e-5, atol=1e-6)
    model.train_on_batch(x, np.ones((2, 2), np.float32))   # moves the moving statistics
    np.testing.assert_allclose(model(x), general_forward(model, x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        model(np.zeros((2, 5, 6, 2), np.float32))
