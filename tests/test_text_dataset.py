"""cnnfast.utils.text_dataset_from_directory.

Keras 3's default pipeline needs TensorFlow, which is not installed; the oracle is Keras's own
TensorFlow-free pipeline (``format="grain"``; skipped without the ``grain`` package) fed the same
folders: the same messages, class_names, split and, without shuffling, the same batches.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from cnnfast.utils import PyDataset, text_dataset_from_directory  # noqa: E402

WORDS = ("great", "film", "awful", "plot", "naïve", "ending", "acting", "superb", "dull", "café")


def _write_folder(root: pathlib.Path, count=23) -> pathlib.Path:
    rng = np.random.default_rng(5)
    for name in ("neg", "pos"):
        (root / name / "more").mkdir(parents=True)
    for i in range(count):
        label = ("neg", "pos")[i % 2]
        text = " ".join(rng.choice(WORDS, int(rng.integers(1, 30))))
        where = root / label / ("more" if i % 6 == 0 else "")
        (where / f"review_{i:02d}.txt").write_text(f"{text}\nline two of {i}", encoding="utf-8")
    (root / "neg" / "cover.jpg").write_bytes(b"not text")
    (root / "readme.txt").write_text("outside the class folders")
    return root


@pytest.fixture
def folder(tmp_path):
    return _write_folder(tmp_path / "reviews")


@pytest.fixture(scope="module")
def keras_grain():
    keras = pytest.importorskip("keras")
    pytest.importorskip("grain")
    if keras.backend.backend() != "torch":
        pytest.skip("the oracle is Keras's torch backend (set KERAS_BACKEND=torch)")
    return keras


def _texts(batch, labelled):
    return [str(t) for t in (batch[0] if labelled else batch)]


@pytest.mark.parametrize("kwargs", [
    dict(shuffle=False),
    dict(shuffle=False, max_length=12, label_mode="binary"),
    dict(shuffle=False, label_mode="categorical", batch_size=5),
    dict(shuffle=False, labels=None),
    dict(shuffle=False, class_names=["pos", "neg"]),
    dict(seed=9, validation_split=0.3, subset="validation"),
])
def test_batches_match_keras(keras_grain, folder, kwargs, capsys):
    kwargs = dict(dict(batch_size=4), **kwargs)
    theirs = keras_grain.utils.text_dataset_from_directory(folder, format="grain", **kwargs)
    keras_out = capsys.readouterr().out
    ours = text_dataset_from_directory(folder, **kwargs)
    assert capsys.readouterr().out == keras_out
    assert ours.class_names == theirs.class_names
    want = list(theirs)
    labelled = kwargs.get("labels", "inferred") is not None
    assert len(ours) == len(want)
    if kwargs.get("shuffle", True):  # Keras shuffles through grain: compare the samples, not the order
        pairs = lambda batches: sorted((t, int(y)) for b in batches for t, y in zip(_texts(b, True), b[1]))  # noqa
        assert pairs(ours) == pairs(want)
        return
    for mine, batch in zip(ours, want):
        texts = mine[0] if labelled else mine
        assert isinstance(texts, np.ndarray) and texts.dtype == object
        assert all(type(t) is str for t in texts)
        assert list(texts) == _texts(batch, labelled)
        if labelled:
            labels = np.asarray(batch[1])
            assert mine[1].dtype == labels.dtype and mine[1].shape == labels.shape
            np.testing.assert_array_equal(mine[1], labels)


def test_file_order_shuffle_and_split_follow_keras(folder, capsys):
    plain = text_dataset_from_directory(folder, shuffle=False)
    assert capsys.readouterr().out == "Found 23 files belonging to 2 classes.\n"
    rel = [os.path.relpath(p, folder) for p in plain.file_paths]
    # class folders in order; in each, its own files (sorted) and then those of its sub-folders
    assert rel[:2] == [os.path.join("neg", "review_02.txt"), os.path.join("neg", "review_04.txt")]
    assert rel[8:12] == [os.path.join("neg", "more", f"review_{i:02d}.txt") for i in (0, 6, 12, 18)]
    assert rel[12] == os.path.join("pos", "review_01.txt") and rel[-1] == os.path.join("pos", "review_21.txt")
    assert all(r.endswith(".txt") for r in rel) and "readme.txt" not in rel
    shuffled = text_dataset_from_directory(folder, seed=4, verbose=False)
    expected = list(plain.file_paths)
    np.random.RandomState(4).shuffle(expected)
    assert shuffled.file_paths == expected
    train, val = text_dataset_from_directory(folder, seed=4, validation_split=0.2, subset="both", verbose=False)
    assert capsys.readouterr().out == "Using 19 files for training.\nUsing 4 files for validation.\n"
    assert train.file_paths == expected[:-4] and val.file_paths == expected[-4:]


def test_texts_labels_and_epochs(folder):
    ds = text_dataset_from_directory(folder, seed=1, batch_size=6, verbose=False)
    assert isinstance(ds, PyDataset) and len(ds) == 4
    first = [(t, int(y)) for texts, labels in ds for t, y in zip(texts, labels)]
    for path, (text, label) in zip(ds.file_paths, first):
        assert text == pathlib.Path(path).read_text(encoding="utf-8")
        assert ds.class_names[label] == pathlib.Path(path).relative_to(folder).parts[0]
    second = [(t, int(y)) for texts, labels in ds for t, y in zip(texts, labels)]
    assert second != first and sorted(second) == sorted(first)  # reshuffled, same samples


def test_max_length_counts_characters_and_line_endings_are_kept(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_bytes("naïve café\r\nsecond".encode("utf-8"))
    (tmp_path / "a" / "y.txt").write_bytes(b"bad \xff byte")
    texts, _ = text_dataset_from_directory(tmp_path, shuffle=False, verbose=False)[0]
    assert list(texts) == ["naïve café\r\nsecond", "bad \ufffd byte"]
    texts, _ = text_dataset_from_directory(tmp_path, shuffle=False, verbose=False, max_length=7)[0]
    assert list(texts) == ["naïve c", "bad \ufffd b"]
    single = text_dataset_from_directory(tmp_path, shuffle=False, verbose=False, batch_size=None)
    assert len(single) == 2 and single[1][0] == "bad \ufffd byte" and single[1][1] == 0


def test_explicit_labels(folder):
    ds = text_dataset_from_directory(folder, labels=[i % 3 for i in range(24)], shuffle=False, verbose=False,
                                     label_mode="categorical")
    assert ds.class_names == ["0", "1", "2"]
    _, y = ds[0]
    np.testing.assert_array_equal(y.argmax(1), [i % 3 for i in range(24)][:32][:len(y)])


@pytest.mark.parametrize("kwargs,match", [
    (dict(labels="dirs"), "list/tuple of integer labels"),
    (dict(label_mode="ordinal"), "label_mode"),
    (dict(max_length=-1), "max_length"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(validation_split=0.2, subset="training"), "provide a `seed`"),
    (dict(labels=[1, 2]), "lengths of `labels`"),
    (dict(labels=None, class_names=["neg"]), "cannot be specified"),
    (dict(class_names=["neg", "meh"]), "did not match"),
    (dict(labels=[2] * 24, label_mode="categorical"), "needs labels in"),
])
def test_bad_arguments(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        text_dataset_from_directory(folder, **dict(dict(verbose=False), **kwargs))


def test_no_text_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.md").write_text("markdown")
    with pytest.raises(ValueError, match="No text files found"):
        text_dataset_from_directory(tmp_path, verbose=False)
