"""TextVectorization. Keras 3 runs this layer in TensorFlow, which is not installed here, so the
expected outputs are Keras's documented examples and hand-checked values of its documented rules
(vocabulary by count, ties by token from high to low; ``""`` at 0 and ``"[UNK]"`` at 1 in int mode;
Keras's punctuation regex; ASCII-only lowercasing; idf = log(1 + N / (1 + df)))."""
from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import layers

TextVectorization = layers.TextVectorization


def test_keras_docstring_example_with_a_vocabulary():
    layer = TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4,
                              vocabulary=["earth", "wind", "and", "fire"])
    model = cnnfast.Sequential([cnnfast.Input(shape=(1,), dtype="string"), layer])
    out = model.predict([["earth wind and fire"], ["fire and earth michigan"]], verbose=0)
    np.testing.assert_array_equal(out, [[2, 3, 4, 5], [5, 4, 2, 1]])
    assert out.dtype == np.int64
    assert layer.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]
    assert layer.get_vocabulary(include_special_tokens=False) == ["earth", "wind", "and", "fire"]
    assert layer.vocabulary_size() == 6


def test_adapt_orders_by_count_then_token_high_to_low():
    layer = TextVectorization(max_tokens=10)
    layer.adapt(["The cat sat on the mat.", "The dog ate my homework!", "a cat, a dog"])
    # counts: the, cat, dog, a twice; sat, on, mat, ate, my, homework once; ties high to low;
    # max_tokens=10 keeps 8 learned tokens after "" and "[UNK]"
    assert layer.get_vocabulary() == ["", "[UNK]", "the", "dog", "cat", "a", "sat", "on", "my", "mat"]
    out = layer(np.array(["The cat ate", "zebra dog"]))
    np.testing.assert_array_equal(out, [[2, 4, 1], [1, 3, 0]])   # padded to the longest row
    # non-int modes have no padding token: max_tokens counts "[UNK]" only
    bag = TextVectorization(max_tokens=4, output_mode="multi_hot")
    bag.adapt(["b b a c c c", "d"])
    assert bag.get_vocabulary() == ["[UNK]", "c", "b", "d"]   # a and d tie at 1: d is higher
    # non-ASCII tokens tie-break by their UTF-8 bytes (code points), high to low
    uni = TextVectorization(standardize=None)
    uni.adapt(["é e z É"])
    assert uni.get_vocabulary() == ["", "[UNK]", "é", "É", "z", "e"]


def test_standardize_and_split_options():
    def vocab(**kw):
        layer = TextVectorization(**kw)
        layer.adapt(["Hello, World! it's a TEST-case (ok) ÉCOLE ¿qué?"])
        return sorted(layer.get_vocabulary(include_special_tokens=False))
    assert vocab() == sorted(["hello", "world", "its", "a", "testcase", "ok", "École", "¿qué"])
    assert vocab(standardize="lower") == sorted(["hello,", "world!", "it's", "a", "test-case", "(ok)",
                                                "École", "¿qué?"])
    assert vocab(standardize="strip_punctuation") == sorted(["Hello", "World", "its", "a", "TESTcase",
                                                            "ok", "ÉCOLE", "¿qué"])
    assert vocab(standardize=None, split=None) == ["Hello, World! it's a TEST-case (ok) ÉCOLE ¿qué?"]
    chars = TextVectorization(split="character", standardize=None)
    chars.adapt(["ab a"])
    assert chars.get_vocabulary() == ["", "[UNK]", "a", "b", " "]
    np.testing.assert_array_equal(chars(["ba", "a b"]), [[3, 2, 0], [2, 4, 3]])
    custom = TextVectorization(standardize=lambda s: np.char.upper(s), split=lambda s: s.split("-"))
    custom.adapt(["x-y-x"])
    assert custom.get_vocabulary() == ["", "[UNK]", "X", "Y"]
    # whitespace runs (tabs, newlines) are one separator; leading/trailing ones make no token
    ws = TextVectorization()
    ws.adapt(["  a\tb\n\nc  "])
    assert sorted(ws.get_vocabulary(include_special_tokens=False)) == ["a", "b", "c"]


def test_ngrams_follow_tf_strings_ngrams():
    layer = TextVectorization(ngrams=2, vocabulary=["a", "b", "c", "a b", "b c"])
    np.testing.assert_array_equal(layer(["a b c", "c"]), [[2, 3, 4, 5, 6], [4, 0, 0, 0, 0]])
    widths = TextVectorization(ngrams=(3,), vocabulary=["a b c"])
    np.testing.assert_array_equal(widths(["a b c d", "a b"]), [[2, 1], [0, 0]])


def test_output_sequence_length_pads_and_truncates():
    layer = TextVectorization(output_sequence_length=3, vocabulary=["a", "b"])
    np.testing.assert_array_equal(layer(["a b a b a", "b", ""]), [[2, 3, 2], [3, 0, 0], [0, 0, 0]])
    assert layer.compute_output_shape((None, 1)) == (None, 3)


def test_multi_hot_count_and_tf_idf_values():
    docs = ["a b b c", "c d"]
    multi = TextVectorization(output_mode="multi_hot")
    multi.adapt(docs)
    assert multi.get_vocabulary() == ["[UNK]", "c", "b", "d", "a"]
    np.testing.assert_array_equal(multi(["b b z", "c"]), [[1, 0, 1, 0, 0], [0, 1, 0, 0, 0]])
    count = TextVectorization(output_mode="count", vocabulary=["c", "b", "d", "a"])
    np.testing.assert_array_equal(count(["b b z z z", "c"]), [[3, 0, 2, 0, 0], [0, 1, 0, 0, 0]])
    tfidf = TextVectorization(output_mode="tf_idf")
    tfidf.adapt(docs)
    idf = np.log(1 + 2 / (1 + np.array([2, 1, 1, 1])))     # c in 2 documents, b, d, a in 1
    expected = np.array([[np.mean(idf), 0, 2 * idf[1], 0, 0], [0, idf[0], 0, 0, 0]])
    np.testing.assert_allclose(tfidf(["b b z", "c"]), expected, rtol=1e-6)
    padded = TextVectorization(max_tokens=8, output_mode="multi_hot", pad_to_max_tokens=True)
    padded.adapt(docs)
    out = padded(["a"])
    assert out.shape == (1, 8) and out.dtype == np.float32 and out[0, 4] == 1
    # a saved tf_idf layer rebuilds the same weights from its config
    again = TextVectorization.from_config(tfidf.get_config())
    np.testing.assert_allclose(again(["b b z", "c"]), expected, rtol=1e-6)


def test_adapt_on_batches_and_steps():
    def batches():
        yield np.array(["x y"])
        yield ["y z", "y"]
        yield np.array([["w w w w"]])
    layer = TextVectorization()
    layer.adapt(batches())
    assert layer.get_vocabulary() == ["", "[UNK]", "w", "y", "z", "x"]
    first_two = TextVectorization()
    first_two.adapt(batches(), steps=2)
    assert first_two.get_vocabulary() == ["", "[UNK]", "y", "z", "x"]
    # a second adapt starts afresh, as Keras's does
    first_two.adapt(["q"])
    assert first_two.get_vocabulary() == ["", "[UNK]", "q"]


def test_argument_and_vocabulary_errors():
    with pytest.raises(ValueError, match="unknown value for `standardize`"):
        TextVectorization(standardize="upper")
    with pytest.raises(ValueError, match="unknown value for `output_mode`"):
        TextVectorization(output_mode="one_hot_please")
    with pytest.raises(ValueError, match="`output_sequence_length` must not be set"):
        TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="`max_tokens` must be greater than 1"):
        TextVectorization(max_tokens=1)
    with pytest.raises(ValueError, match="If pad_to_max_tokens is True, must set `max_tokens`"):
        TextVectorization(pad_to_max_tokens=True)
    with pytest.raises(ValueError, match="can only be used with the TensorFlow backend"):
        TextVectorization(ragged=True)
    with pytest.raises(ValueError, match="repeated term"):
        TextVectorization(vocabulary=["a", "b", "a"])
    with pytest.raises(ValueError, match="larger than the maximum vocab size"):
        TextVectorization(max_tokens=3, vocabulary=["a", "b"])
    with pytest.raises(ValueError, match="`idf_weights` must be set"):
        TextVectorization(output_mode="tf_idf", vocabulary=["a"])
    with pytest.raises(ValueError, match="never reads a vocabulary from a file"):
        TextVectorization(vocabulary="/etc/passwd")
    layer = TextVectorization(vocabulary=["", "[UNK]", "a"])  # special tokens given: kept once
    assert layer.get_vocabulary() == ["", "[UNK]", "a"]
    with pytest.raises(ValueError, match="Cannot adapt layer"):
        layer.adapt(["a b"])
    with pytest.raises(ValueError, match="the input rank must be 1 or the last shape dimension must be 1"):
        layer(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="must be strings"):
        layer.adapt  # noqa: B018  (the layer itself is fine; a bad batch is not)
        TextVectorization().adapt([np.array([1, 2])])
    with pytest.raises(ValueError, match="a callable `split` cannot be saved"):
        TextVectorization(split=str.split).get_config()


def test_config_has_keras_keys_and_round_trips():
    layer = TextVectorization(max_tokens=20, ngrams=(1, 2), output_sequence_length=6, name="tv")
    layer.adapt(["to be or not to be"])
    config = layer.get_config()
    keras_keys = {"name", "trainable", "dtype", "max_tokens", "standardize", "split", "ngrams", "output_mode",
                  "output_sequence_length", "pad_to_max_tokens", "sparse", "ragged", "vocabulary",
                  "idf_weights", "encoding", "vocabulary_size"}
    assert set(config) == keras_keys
    assert config["ngrams"] == [1, 2] and config["dtype"] == "int64"
    clone = TextVectorization.from_config(config)
    assert clone.get_vocabulary() == layer.get_vocabulary()
    np.testing.assert_array_equal(clone(["not to be"]), layer(["not to be"]))


SENTENCES = [
    ("what a wonderful film, I loved every minute", 1), ("a great story with brilliant acting", 1),
    ("the best movie I have seen this year", 1), ("beautiful, moving and very funny", 1),
    ("I loved the music and the great cast", 1), ("wonderful acting and a brilliant script", 1),
    ("a funny, warm and beautiful story", 1), ("great fun, the best film of the summer", 1),
    ("a terrible film, I hated every minute", 0), ("boring story with awful acting", 0),
    ("the worst movie I have seen this year", 0), ("dull, slow and not funny at all", 0),
    ("I hated the music and the awful cast", 0), ("terrible acting and a stupid script", 0),
    ("a boring, cold and ugly story", 0), ("awful, the worst film of the summer", 0),
]


def _sentiment_model(vectorizer):
    inputs = cnnfast.Input(shape=(1,), dtype="string")
    x = vectorizer(inputs)
    x = layers.Embedding(vectorizer.vocabulary_size(), 8)(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return cnnfast.Model(inputs, outputs)


def test_end_to_end_string_model_trains_predicts_and_saves(tmp_path):
    cnnfast.utils.set_random_seed(0)
    texts = np.array([s for s, _ in SENTENCES])
    labels = np.array([y for _, y in SENTENCES], np.float32)
    vectorizer = TextVectorization(max_tokens=100, output_sequence_length=10)
    vectorizer.adapt(texts)
    model = _sentiment_model(vectorizer)
    lines = []
    model.summary(print_fn=lines.append)
    summary = "\n".join(lines)
    assert "(None, 10)" in summary and "(None, 10, 8)" in summary
    model.compile(cnnfast.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(texts, labels, epochs=30, batch_size=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0]
    probs = model.predict(["a brilliant and wonderful film", "an awful and boring film"], verbose=0)
    assert probs.shape == (2, 1) and probs[0, 0] > 0.5 > probs[1, 0]
    loss, acc = model.evaluate(texts, labels, verbose=0)
    assert acc == 1.0 and loss == pytest.approx(model.evaluate(list(texts), labels, verbose=0)[0])
    # a data set of (strings, labels) batches trains the same model
    def batches():
        for i in range(0, len(texts), 4):
            yield texts[i:i + 4], labels[i:i + 4]
    model.fit(batches(), epochs=1, verbose=0)
    path = tmp_path / "sentiment.keras"
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    assert loaded.layers[1].get_vocabulary() == vectorizer.get_vocabulary()
    assert loaded.inputs[0].dtype == "string"
    raw = np.array([["a brilliant and wonderful film"], ["what a stupid script"]])
    np.testing.assert_array_equal(loaded.predict(raw, verbose=0), model.predict(raw, verbose=0))


def test_strings_only_reach_layers_that_take_them():
    inputs = cnnfast.Input(shape=(), dtype=str)
    assert inputs.dtype == "string"
    with pytest.raises(TypeError, match=r"Layer 'dense_strings' \(Dense\) cannot take string inputs"):
        layers.Dense(2, name="dense_strings")(inputs)
    model = cnnfast.Sequential([cnnfast.Input(shape=(1,), dtype="string"),
                                TextVectorization(vocabulary=["a"], output_mode="count")])
    with pytest.raises(TypeError, match="must be strings"):
        model.predict(np.array([[1.0], [2.0]]), verbose=0)
    np.testing.assert_array_equal(model.predict([b"a a", "b"], verbose=0), [[0, 2], [1, 0]])


def test_sequential_without_input_takes_strings():
    texts = np.array(["red green", "green blue blue", "red"])
    vectorizer = TextVectorization(output_sequence_length=3)
    vectorizer.adapt(texts)
    model = cnnfast.Sequential([vectorizer, layers.Embedding(vectorizer.vocabulary_size(), 2),
                                layers.GlobalAveragePooling1D(), layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(texts, np.zeros(3), verbose=0)
    assert model.inputs[0].dtype == "string"
    table = model.layers[1].embeddings.numpy()
    ids = vectorizer(["red"])
    np.testing.assert_allclose(model.predict(["red"], verbose=0),
                               table[ids].mean(axis=1) @ model.layers[-1].kernel.numpy()
                               + model.layers[-1].bias.numpy(), rtol=1e-5)
