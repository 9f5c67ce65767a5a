"""Sentiment classification with a 1-D CNN over word embeddings (Keras's "text classification from scratch").

Two sources of reviews:

* ``--source imdb`` (default): Keras's IMDB set as word indices, ``cnnfast.datasets.imdb.load_data``
  (25,000 training and 25,000 test reviews; downloaded once, 17 MB, hash-verified), padded to
  ``--length`` tokens with ``utils.pad_sequences``;
* ``--text-dir DIR``: a folder of raw text files as Keras's example reads ``aclImdb``
  (``DIR/train/<class>/*.txt`` and ``DIR/test/<class>/*.txt``), loaded with
  ``utils.text_dataset_from_directory`` and turned into token ids by a ``TextVectorization`` layer
  adapted on the training text. The trained network is then wrapped into an end-to-end model that
  takes raw strings, saved, reloaded, and asked about new sentences.

The network: Embedding -> Dropout -> two Conv1D(128, 7, strides=3, relu) -> GlobalMaxPooling1D ->
Dense(128, relu) -> Dropout -> Dense(1, sigmoid), trained with Adam on binary crossentropy.

    python examples/text_cnn.py                              # IMDB, 3 epochs
    python examples/text_cnn.py --text-dir aclImdb --epochs 3
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import cnnfast
from cnnfast import layers
from cnnfast.datasets import DatasetError, imdb
from cnnfast.utils import pad_sequences, text_dataset_from_directory


def text_cnn(vocabulary: int, length: int, embedding_dim: int = 128):
    """Token ids ``(batch, length)`` -> the probability that the review is positive."""
    inputs = cnnfast.Input(shape=(length,), dtype="int64")
    x = layers.Embedding(vocabulary, embedding_dim)(inputs)
    x = layers.Dropout(0.5)(x)
    x = layers.Conv1D(128, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.Conv1D(128, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="predictions")(x)
    return cnnfast.Model(inputs, outputs, name="text_cnn")


def _arrays(dataset):
    """All (texts, labels) of a text data set, in its order."""
    texts, labels = [], []
    for x, y in dataset:
        texts.extend(x.tolist())
        labels.append(np.asarray(y))
    return np.array(texts, dtype=object), np.concatenate(labels)


def from_imdb(args):
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=args.vocabulary)
    if args.limit:
        x_train, y_train, x_test, y_test = (x_train[:args.limit], y_train[:args.limit],
                                            x_test[:args.limit], y_test[:args.limit])
    x_train = pad_sequences(x_train, maxlen=args.length)
    x_test = pad_sequences(x_test, maxlen=args.length)
    return x_train, y_train, x_test, y_test, None


def from_text_dir(args):
    train = text_dataset_from_directory(os.path.join(args.text_dir, "train"), batch_size=256, seed=args.seed)
    test = text_dataset_from_directory(os.path.join(args.text_dir, "test"), batch_size=256, shuffle=False)
    if train.class_names != test.class_names or len(train.class_names) != 2:
        raise SystemExit(f"text_cnn: expected the same two classes in train/ and test/, got "
                         f"{train.class_names} and {test.class_names}")
    texts_train, y_train = _arrays(train)
    texts_test, y_test = _arrays(test)
    if args.limit:
        texts_train, y_train = texts_train[:args.limit], y_train[:args.limit]
        texts_test, y_test = texts_test[:args.limit], y_test[:args.limit]
    vectorize = layers.TextVectorization(max_tokens=args.vocabulary, output_mode="int",
                                         output_sequence_length=args.length)
    vectorize.adapt(texts_train)
    print(f"vocabulary: {vectorize.vocabulary_size()} tokens, e.g. {vectorize.get_vocabulary()[2:8]}")
    return (vectorize(texts_train), y_train, vectorize(texts_test), y_test, (vectorize, train.class_names))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("imdb",), default="imdb")
    parser.add_argument("--text-dir", default=None, help="a folder with train/<class>/*.txt and test/<class>/*.txt")
    parser.add_argument("--vocabulary", type=int, default=20000)
    parser.add_argument("--length", type=int, default=500, help="tokens per review")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train and test reviews")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        x_train, y_train, x_test, y_test, text = from_text_dir(args) if args.text_dir else from_imdb(args)
    except DatasetError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"x_train {x_train.shape}, x_test {x_test.shape}, {cnnfast.get_num_threads()} thread(s), "
          f"SIMD {cnnfast.get_isa()}")

    cnnfast.utils.set_random_seed(args.seed)
    model = text_cnn(args.vocabulary, args.length)
    model.summary()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, validation_split=0.2)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy: {test_accuracy:.4f}   test loss: {test_loss:.4f}")
    print(f"Training: {seconds:.1f} s for {args.epochs} epoch(s), "
          f"{args.epochs * len(x_train) * 0.8 / seconds:.0f} reviews/s")

    if text is not None:
        # The Keras example's end-to-end model: raw strings in, probabilities out.
        vectorize, class_names = text
        strings = cnnfast.Input(shape=(1,), dtype="string")
        end_to_end = cnnfast.Model(strings, model(vectorize(strings)))
        end_to_end.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "text_cnn.keras")
            end_to_end.save(path)
            reloaded = cnnfast.models.load_model(path)
        sentences = np.array([["a wonderful film, the best acting i have seen"],
                              ["a dull, boring waste of time; the worst plot"]], dtype=object)
        scores = reloaded.predict(sentences, verbose=0)[:, 0]
        for (sentence,), score in zip(sentences, scores):
            print(f"{score:.3f} ({class_names[int(score > 0.5)]}): {sentence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
