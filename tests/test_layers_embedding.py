"""Embedding: ops.embedding / ops.embedding_backward and the layer, against torch.nn.Embedding and
Keras 3 (configs, summary counts), with integer inputs through models, saving and training."""
from __future__ import annotations

import os

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, ops

os.environ.setdefault("KERAS_BACKEND", "torch")


def _torch_embedding(table, ids, dy):
    torch = pytest.importorskip("torch")
    emb = torch.nn.Embedding(*table.shape)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(table.astype(np.float64)).to(emb.weight.dtype))
    emb = emb.double()
    y = emb(torch.from_numpy(ids.astype(np.int64)))
    y.backward(torch.from_numpy(dy.astype(np.float64)))
    return y.detach().numpy(), emb.weight.grad.numpy()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (4, 9), (3, 5, 4)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_forward_backward_match_torch(shape, index_dtype, threads):
    rng = np.random.default_rng(0)
    vocab, dim = 11, 37   # dim not a multiple of the kernel's 16-column slices
    table = rng.standard_normal((vocab, dim)).astype(np.float32)
    ids = rng.integers(0, vocab, shape).astype(index_dtype)
    ids.reshape(-1)[:2] = 3     # duplicate ids must add up in the gradient
    dy = rng.standard_normal(shape + (dim,)).astype(np.float32)
    y_ref, g_ref = _torch_embedding(table, ids, dy)
    y = ops.embedding(ids, table)
    assert y.dtype == np.float32 and y.shape == shape + (dim,)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    g = ops.embedding_backward(ids, dy, vocab)
    np.testing.assert_allclose(g, g_ref, rtol=1e-6, atol=1e-6)
    # accumulate adds onto what is there (a layer used twice in one step)
    g2 = ops.embedding_backward(ids, dy, vocab, out=g.copy(), accumulate=True)
    np.testing.assert_allclose(g2, 2 * g_ref, rtol=1e-6, atol=1e-6)


def test_scatter_add_is_deterministic_across_thread_counts():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 50, (64, 100))
    dy = rng.standard_normal((64, 100, 128)).astype(np.float32)
    results = []
    for nt in (1, 2):
        previous = cnnfast.get_num_threads()
        cnnfast.set_num_threads(nt)
        try:
            results.append(ops.embedding_backward(ids, dy, 50))
        finally:
            cnnfast.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])
    # a float64 reference of the same sums
    ref = np.zeros((50, 128))
    np.add.at(ref, ids.reshape(-1), dy.reshape(-1, 128).astype(np.float64))
    np.testing.assert_allclose(results[0], ref, rtol=1e-5, atol=1e-5)


def test_out_of_range_and_bad_dtypes_raise_clear_errors():
    table = np.zeros((5, 3), np.float32)
    with pytest.raises(IndexError, match=r"embedding: index 5 at position \(1, 0\) .* input_dim=5 "
                                         r"\(valid indices are 0..4\)"):
        ops.embedding(np.array([[0, 1], [5, 2]]), table)
    with pytest.raises(IndexError, match=r"embedding: index -1 at position \(2,\)"):
        ops.embedding(np.array([0, 1, -1], np.int32), table)
    with pytest.raises(IndexError, match=r"embedding_backward: index 9"):
        ops.embedding_backward(np.array([9]), np.ones((1, 3), np.float32), 5)
    with pytest.raises(TypeError, match="embedding: indices must be an int32 or int64 array, got dtype float32"):
        ops.embedding(np.array([0.0, 1.0], np.float32), table)
    with pytest.raises(ValueError, match="the table must be 2-D"):
        ops.embedding(np.array([0]), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"dy must have shape indices.shape"):
        ops.embedding_backward(np.array([0, 1]), np.ones((3, 3), np.float32), 5)
    # the layer and a model name the op too
    emb = layers.Embedding(5, 3)
    with pytest.raises(IndexError, match="out of range for an embedding of input_dim=5"):
        emb(np.array([[1, 7]]))
    model = cnnfast.Sequential([cnnfast.Input((2,), dtype="int32"), layers.Embedding(5, 3)])
    with pytest.raises(IndexError, match="index 5"):
        model.predict(np.array([[1, 5]]), verbose=0)


def test_argument_errors_match_keras():
    with pytest.raises(ValueError, match=r"`input_dim` must be a positive integer. Received: input_dim=0"):
        layers.Embedding(0, 3)
    with pytest.raises(ValueError, match=r"`output_dim` must be a positive integer. Received: output_dim=2.5"):
        layers.Embedding(4, 2.5)
    with pytest.raises(NotImplementedError, match="lora_rank is not supported"):
        layers.Embedding(4, 2, lora_rank=2)
    with pytest.warns(UserWarning, match="input_length` is deprecated"):
        layers.Embedding(4, 2, input_length=10)


def test_float_inputs_are_cast_and_weights_argument():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    emb = layers.Embedding(4, 3, weights=table)
    assert emb.built and emb.count_params() == 12
    np.testing.assert_array_equal(emb(np.array([[1.0, 3.0]])), table[[[1, 3]]])
    np.testing.assert_array_equal(emb(np.array([[2, 0]], np.int64)), table[[[2, 0]]])
    with pytest.raises(ValueError, match="weight 'embeddings' has shape"):
        layers.Embedding(4, 3, weights=[np.zeros((3, 3))])


def test_config_and_summary_counts_match_keras():
    keras = pytest.importorskip("keras")
    ours = layers.Embedding(1000, 64, mask_zero=True, embeddings_regularizer="l2")
    theirs = keras.layers.Embedding(1000, 64, mask_zero=True, embeddings_regularizer="l2")
    ours_cfg, theirs_cfg = ours.get_config(), theirs.get_config()
    assert set(ours_cfg) == set(theirs_cfg)
    for key in ("input_dim", "output_dim", "mask_zero", "embeddings_regularizer", "embeddings_constraint",
                "activity_regularizer", "quantization_config", "trainable"):
        assert ours_cfg[key] == theirs_cfg[key], key
    assert ours_cfg["embeddings_initializer"]["class_name"] == theirs_cfg["embeddings_initializer"]["class_name"]
    assert ours_cfg["embeddings_initializer"]["config"] == {
        k: v for k, v in theirs_cfg["embeddings_initializer"]["config"].items() if k in ours_cfg["embeddings_initializer"]["config"]}

    def build(lib):
        return lib.Sequential([lib.Input((20,), dtype="int32"), lib.layers.Embedding(1000, 64),
                               lib.layers.Flatten(), lib.layers.Dense(3)])
    ours_model, keras_model = build(cnnfast), build(keras)
    assert ours_model.count_params() == keras_model.count_params() == 1000 * 64 + 20 * 64 * 3 + 3
    assert [l.count_params() for l in ours_model.layers] == [l.count_params() for l in keras_model.layers]
    assert [tuple(l.output.shape) for l in ours_model.layers] == [tuple(l.output.shape) for l in keras_model.layers]
    lines = []
    ours_model.summary(print_fn=lines.append)
    assert "64,000" in "\n".join(lines)


def test_integer_input_dtypes_through_the_engine():
    inputs = cnnfast.Input((4,), dtype="int64")
    assert inputs.dtype == "int64"
    x = layers.Embedding(10, 2)(inputs)
    assert x.dtype == "float32" and x.shape == (None, 4, 2)
    model = cnnfast.Model(inputs, x)
    ids = np.array([[1, 2, 3, 4], [0, 0, 9, 9]])
    out = model.predict(ids, verbose=0)
    np.testing.assert_array_equal(out, model.layers[1].embeddings.numpy()[ids])
    np.testing.assert_array_equal(model.predict(ids.astype(np.float32), verbose=0), out)  # whole floats
    with pytest.raises(ValueError, match="holds non-integer values"):
        model.predict(np.array([[0.5, 1, 2, 3]]), verbose=0)
    with pytest.raises(TypeError, match="must be an integer array"):
        model.predict(np.array([["a", "b", "c", "d"]]), verbose=0)
    # an integer input straight into a float layer is cast to float32, as Keras does
    i32 = cnnfast.Input((3,), dtype="int32")
    dense = layers.Dense(2)
    m2 = cnnfast.Model(i32, dense(i32))
    x = np.array([[1, 2, 3]], np.int32)
    np.testing.assert_allclose(m2.predict(x, verbose=0), x @ dense.kernel.numpy() + dense.bias.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="cnnfast inputs are float32, int32, int64 or string"):
        cnnfast.Input((3,), dtype="float16")


def _text_ids(rng, n, length, vocab):
    """Two classes whose sequences draw from different halves of the vocabulary."""
    y = rng.integers(0, 2, n)
    lo = np.where(y == 0, 1, vocab // 2)
    ids = lo[:, None] + rng.integers(0, vocab // 2 - 1, (n, length))
    return ids.astype(np.int32), y


def test_gradients_match_torch_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    vocab, dim, length = 30, 6, 5
    model = cnnfast.Sequential([cnnfast.Input((length,), dtype="int32"), layers.Embedding(vocab, dim),
                                layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    ids, y = _text_ids(rng, 8, length, vocab)
    ids[0, :3] = 7   # repeated ids within and across samples
    loss, grads = model._gradients(ids, y)
    table, kernel, bias = (torch.tensor(w.numpy().astype(np.float64), requires_grad=True)
                           for w in model.weights)
    logits = torch.nn.functional.embedding(torch.from_numpy(ids.astype(np.int64)), table).reshape(8, -1) @ kernel + bias
    ref = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    for g, t in zip(grads, (table, kernel, bias)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_fit_reduces_loss_and_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    ids, y = _text_ids(rng, 128, 8, 40)
    model = cnnfast.Sequential([cnnfast.Input((8,), dtype="int32"),
                                layers.Embedding(40, 8, embeddings_regularizer="l2"),
                                layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    model.compile(cnnfast.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(ids, y, epochs=10, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
    path = tmp_path / "embedding.keras"
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    assert loaded.inputs[0].dtype == "int32"
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert loaded.evaluate(ids, y, verbose=0)[0] == pytest.approx(model.evaluate(ids, y, verbose=0)[0])


def test_shared_embedding_adds_both_gradients():
    rng = np.random.default_rng(5)
    emb = layers.Embedding(12, 4)
    a, b = cnnfast.Input((3,), dtype="int32"), cnnfast.Input((3,), dtype="int32")
    out = layers.Dense(1)(layers.Flatten()(layers.Concatenate(axis=1)([emb(a), emb(b)])))
    model = cnnfast.Model([a, b], out)
    model.compile("sgd", "mse")
    xa, xb = rng.integers(0, 12, (4, 3)), rng.integers(0, 12, (4, 3))
    xa[:, 0] = xb[:, 0] = 5
    y = rng.standard_normal((4, 1))
    _, grads = model._gradients([xa, xb], y)
    # finite differences on the table in float64 (the loss is quadratic in the table)
    table = emb.embeddings.numpy().astype(np.float64)
    w, bias = model.layers[-1].kernel.numpy().astype(np.float64), model.layers[-1].bias.numpy()

    def loss(t):
        feats = np.concatenate([t[xa], t[xb]], axis=1).reshape(4, -1)
        return np.mean((feats @ w + bias - y) ** 2)
    num = np.zeros_like(table)
    for idx in np.ndindex(table.shape):
        step = np.zeros_like(table)
        step[idx] = 1e-6
        num[idx] = (loss(table + step) - loss(table - step)) / 2e-6
    np.testing.assert_allclose(grads[0], num, rtol=1e-3, atol=1e-5)


def test_keras_weights_files_both_ways(tmp_path):
    keras = pytest.importorskip("keras")

    def build(lib):
        return lib.Sequential([lib.Input((5,), dtype="int32"), lib.layers.Embedding(20, 4, mask_zero=True),
                               lib.layers.Flatten(), lib.layers.Dense(2)])
    ours, theirs = build(cnnfast), build(keras)
    ids = np.array([[1, 2, 0, 0, 3], [19, 18, 17, 0, 0]])
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(ids)), ours.predict(ids, verbose=0), rtol=1e-6)
    fresh = build(keras)
    fresh.save_weights(tmp_path / "theirs.weights.h5")
    ours.load_weights(tmp_path / "theirs.weights.h5")
    np.testing.assert_allclose(ours.predict(ids, verbose=0), keras.ops.convert_to_numpy(fresh(ids)), rtol=1e-6)


def test_sequential_without_input_keeps_ids_integer():
    # ids above 2**24 would be rounded by a float32 input; the implicit input is int32
    table = np.zeros((2**24 + 3, 1), np.float32)
    table[2**24 + 1] = 7.0
    model = cnnfast.Sequential([layers.Embedding(2**24 + 3, 1, weights=table)])
    assert model.predict(np.array([[2**24 + 1, 0]]), verbose=0)[0, :, 0].tolist() == [7.0, 0.0]
    assert model.inputs[0].dtype == "int32"
    assert cnnfast.Sequential([layers.Embedding(5, 2, input_shape=(4,))]).inputs[0].dtype == "int32"
