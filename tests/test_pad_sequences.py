"""cnnfast.utils.pad_sequences against Keras 3's keras.utils.pad_sequences (torch backend)."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from cnnfast.utils import pad_sequences  # noqa: E402


def _ragged(rng, count, longest, sample_shape=()):
    return [rng.integers(-50, 50, (int(n),) + sample_shape).tolist() for n in rng.integers(0, longest + 1, count)]


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("padding,truncating", list(itertools.product(("pre", "post"), repeat=2)))
@pytest.mark.parametrize("maxlen", [None, 1, 3, 7, 20])
def test_matches_keras(keras, rng, padding, truncating, maxlen):
    seqs = _ragged(rng, 25, 12)
    seqs[3] = []  # empty sequences stay all padding
    kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating)
    _same(pad_sequences(seqs, **kwargs), keras.utils.pad_sequences(seqs, **kwargs))


@pytest.mark.parametrize("dtype,value", [("int32", 0.0), ("float32", -1.5), ("int64", 7), ("float64", np.nan),
                                         ("uint8", 3)])
def test_dtypes_and_values_match_keras(keras, rng, dtype, value):
    seqs = [list(rng.normal(size=n) * 10) for n in (4, 0, 9, 2)]
    if dtype == "uint8":
        seqs = [[abs(int(v)) for v in s] for s in seqs]
    kwargs = dict(maxlen=6, dtype=dtype, value=value, padding="post")
    _same(pad_sequences(seqs, **kwargs), keras.utils.pad_sequences(seqs, **kwargs))


def test_sequences_of_vectors_match_keras(keras, rng):
    seqs = _ragged(rng, 10, 6, sample_shape=(3,))
    seqs[0] = []
    for padding in ("pre", "post"):
        _same(pad_sequences(seqs, maxlen=4, padding=padding),
              keras.utils.pad_sequences(seqs, maxlen=4, padding=padding))


def test_arrays_tuples_and_object_arrays_match_keras(keras, rng):
    seqs = np.empty(4, dtype=object)
    for i, n in enumerate((3, 5, 1, 8)):
        seqs[i] = rng.integers(0, 100, n)
    _same(pad_sequences(seqs, maxlen=5), keras.utils.pad_sequences(seqs, maxlen=5))
    tuples = [tuple(s.tolist()) for s in seqs]
    _same(pad_sequences(tuples), keras.utils.pad_sequences(tuples))


def test_strings_match_keras(keras):
    seqs = [["a", "bb"], ["ccc"], []]
    _same(pad_sequences(seqs, dtype=object, value="<pad>"),
          keras.utils.pad_sequences(seqs, dtype=object, value="<pad>"))
    _same(pad_sequences(seqs, dtype="<U5", value="-", padding="post"),
          keras.utils.pad_sequences(seqs, dtype="<U5", value="-", padding="post"))


def test_documented_example():
    np.testing.assert_array_equal(pad_sequences([[1], [2, 3], [4, 5, 6]]),
                                  [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences([[1, 2, 3, 4]], maxlen=2, truncating="post", padding="post"),
                                  [[1, 2]])


def test_large_input_is_exact(rng):
    seqs = _ragged(rng, 3000, 300)
    out = pad_sequences(seqs, maxlen=100)
    for s, row in zip(seqs[:200], out[:200]):  # a slice of rows rebuilt one by one
        kept = s[-100:]
        np.testing.assert_array_equal(row[100 - len(kept):], kept)
        assert not row[:100 - len(kept)].any()


def test_maxlen_zero_and_no_sequences():
    assert pad_sequences([[1, 2], [3]], maxlen=0).shape == (2, 0)
    assert pad_sequences([], maxlen=3).shape == (0, 3)
    assert pad_sequences([[], []]).shape == (2, 0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(padding="middle"), "Padding type"),
    (dict(truncating="both"), "Truncating type"),
    (dict(maxlen=-1), "non-negative"),
    (dict(maxlen=2.5), "non-negative"),
    (dict(value="x"), "dtype=object"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pad_sequences([[1, 2]], **kwargs)


def test_bad_sequences():
    with pytest.raises(ValueError, match="must be iterable"):
        pad_sequences(iter([[1]]))
    with pytest.raises(ValueError, match="non-iterable: 5"):
        pad_sequences([[1], 5])
    with pytest.raises(ValueError, match="different from expected shape"):
        pad_sequences([[[1, 2]], [[1, 2, 3]]])
    with pytest.raises(ValueError, match="empty list of sequences"):
        pad_sequences([])
