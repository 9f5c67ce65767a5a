"""IMDB movie reviews: 25,000 training and 25,000 test reviews labelled by sentiment (0 / 1),
each a sequence of word indices (words ranked by frequency), as in ``keras.datasets.imdb``.

``load_data`` reads Keras's own ``imdb.npz`` and applies Keras 3.15.1's processing exactly: both
sets shuffled with ``np.random.RandomState(seed)`` (training indices first, then test), every word
index raised by ``index_from``, ``start_char`` put in front, sequences of ``maxlen`` or more
words (counting ``start_char``) dropped, and words outside ``[skip_top, num_words)`` replaced by
``oov_char`` (or removed when it is None). Without ``num_words`` the bound is the largest index
present, so, as in Keras, that one word becomes ``oov_char`` too. The work runs on flat NumPy
arrays of all the words (no Python loop over words); the results are Keras's: object arrays of
Python lists of ints, and the stored labels.

Files: ``imdb.npz`` and ``imdb_word_index.json`` from Keras's origin (or
``$CNNFAST_DATASETS_MIRROR/imdb/``, or ``base_url``), kept in ``$CNNFAST_DATA/imdb/`` (else
``~/.cache/cnnfast/datasets/imdb/``) under the name ``path`` (an absolute ``path`` is used as it
is, as Keras joins it to its cache folder), checked against their size and hash every time.
The ragged sequences in ``imdb.npz`` are pickled object arrays; they are read with an unpickler
that resolves only NumPy's array-rebuilding names, to inert stand-ins, and refuses every other
name, so a planted file cannot run code (plain ``np.load(allow_pickle=True)`` would).

Data: Andrew L. Maas et al., "Learning Word Vectors for Sentiment Analysis", ACL 2011
(https://ai.stanford.edu/~amaas/data/sentiment/).
"""
from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import pathlib
import pickle
import zipfile

import numpy as np

from ._fetch import (DataSet, DatasetCorruptError, DatasetNotFoundError, RemoteFile, _download, _mirrors, data_home,
                     verify)
from ..utils.file_utils import DownloadError

__all__ = ["load_data", "get_word_index", "DATASET", "DATA_FILE", "WORD_INDEX_FILE"]

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DATA_FILE = RemoteFile("imdb.npz", 17_464_789, "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f")
WORD_INDEX_FILE = RemoteFile("imdb_word_index.json", 1_641_221, "bfafd718b763782e994055a2d397834f", "md5")
DATASET = DataSet(title="IMDB", subdir="imdb", files=(DATA_FILE, WORD_INDEX_FILE), mirrors=(ORIGIN,),
                  homepage="https://ai.stanford.edu/~amaas/data/sentiment/")
_MEMBERS = ("x_train", "y_train", "x_test", "y_test")
_MAX_MEMBER = 256 << 20  # the largest member of the real file is ~40 MB unpacked


# ------------------------------------------------------------------------ finding the files


def _local_file(remote: RemoteFile, path, download: bool, base_url, caller: str) -> pathlib.Path:
    """The verified local copy of ``remote`` at ``path`` (a name under the data directory, or an
    absolute path), downloaded from the mirrors when missing."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"{caller}: path must be a file name or path, got {path!r}")
    target = data_home() / DATASET.subdir / os.path.expanduser(os.fspath(path))
    if target.is_file():
        return verify(target, dataclasses.replace(remote, name=target.name), DATASET.title)
    failures = []
    if download:
        for mirror in _mirrors(DATASET, base_url):
            url = mirror + remote.name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                _download(url, target, remote, quiet=False)
                return target
            except DownloadError as e:
                failures.append(f"{url}: {e.reason}")
            except OSError as e:  # the target directory cannot be created or written
                failures.append(f"{url}: {type(e).__name__}: {e}")
    lines = [f"{DATASET.title}: {target} is missing" + (" and could not be downloaded." if download
                                                        else " (download=False)."),
             f"Put Keras's {remote.name}, unchanged ({remote.size:,} bytes, {remote.algorithm} {remote.digest}), "
             f"there; it is published at {ORIGIN}{remote.name}.",
             "(path= names the file under the data directory, $CNNFAST_DATA/imdb or ~/.cache/cnnfast/datasets/imdb, "
             "or is an absolute path.)"]
    if failures:
        lines += ["Download attempts:"] + [f"    {f}" for f in failures]
    raise DatasetNotFoundError("\n".join(lines))


# ------------------------------------------------------------------------ reading imdb.npz


class _Refused(pickle.UnpicklingError):
    pass


_NDARRAY = object()  # stands for the class numpy.ndarray; deliberately not callable


class _ObjectDType:
    """Stand-in for ``numpy.dtype("O8", False, True)``: only the object dtype is accepted."""

    def __init__(self, spec, align=False, copy=False):
        if isinstance(spec, bytes):
            spec = spec.decode("ascii", "replace")
        if spec not in ("O", "O4", "O8", "|O"):
            raise _Refused(f"refused dtype {spec!r}: the IMDB sequences are object arrays")

    def __setstate__(self, state):
        if not isinstance(state, tuple) or any(s is not None for s in state[2:5]):
            raise _Refused("refused structured or sub-array dtype")


class _ObjectArray:
    """Stand-in for the object ndarray being unpickled: keeps its items, a list of sequences."""

    def __init__(self):
        self.items = None

    def __setstate__(self, state):
        # ndarray.__reduce__ state: (version, shape, dtype, is_fortran, list of the items)
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Refused("refused ndarray state: expected a 5-tuple")
        _, shape, dtype, _, items = state
        if not isinstance(dtype, _ObjectDType) or not isinstance(items, list):
            raise _Refused("refused ndarray state: not an object array of sequences")
        if not isinstance(shape, tuple) or len(shape) != 1 or shape[0] != len(items):
            raise _Refused(f"refused ndarray state: shape {shape!r} for {len(items)} items")
        self.items = items


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY:
        raise _Refused("refused _reconstruct of something other than numpy.ndarray")
    return _ObjectArray()


class _Unpickler(pickle.Unpickler):
    _NAMES = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
              ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
              ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _ObjectDType}

    def find_class(self, module, name):
        try:
            return self._NAMES[(module, name)]
        except KeyError:
            raise _Refused(f"refused {module}.{name}: only NumPy array structure may appear") from None


def _ragged(items, what: str):
    """``(flat, lengths)``: every word of a list of sequences of ints in one int64 array."""
    if not all(isinstance(s, list) for s in items):
        raise DatasetCorruptError(f"IMDB: {what} holds something other than lists of word indices")
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    try:  # the file's hash was checked, so these are Keras's Python ints
        flat = np.fromiter(itertools.chain.from_iterable(items), dtype=np.int64, count=int(lengths.sum()))
    except (TypeError, ValueError, OverflowError):
        raise DatasetCorruptError(f"IMDB: {what} holds word indices that are not integers") from None
    return flat, lengths


def _read_member(raw: bytes, name: str):
    fp = io.BytesIO(raw)
    version = np.lib.format.read_magic(fp)
    header = (np.lib.format.read_array_header_1_0 if version[0] == 1 else np.lib.format.read_array_header_2_0)(fp)
    if header[2] != np.dtype(object):
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    try:
        array = _Unpickler(fp, encoding="latin1").load()
    except _Refused as e:
        raise DatasetCorruptError(f"IMDB: {name} in imdb.npz was refused: {e}") from None
    except Exception as e:  # a truncated or mangled pickle stream
        raise DatasetCorruptError(f"IMDB: {name} in imdb.npz cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(array, _ObjectArray) or array.items is None:
        raise DatasetCorruptError(f"IMDB: {name} in imdb.npz is not an object array of sequences")
    return _ragged(array.items, name)


def _read_npz(file: pathlib.Path) -> dict:
    out = {}
    try:
        with zipfile.ZipFile(file) as archive:
            infos = {i.filename: i for i in archive.infolist()}
            for name in _MEMBERS:
                info = infos.get(name + ".npy")
                if info is None:
                    raise DatasetCorruptError(f"IMDB: {file} has no {name}.npy member")
                if info.file_size > _MAX_MEMBER:
                    raise DatasetCorruptError(f"IMDB: {name}.npy in {file} is {info.file_size:,} bytes, too large")
                out[name] = _read_member(archive.read(info), name)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        if isinstance(e, DatasetCorruptError):
            raise
        raise DatasetCorruptError(f"IMDB: {file} is not a readable imdb.npz ({type(e).__name__}: {e})") from None
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        if not isinstance(out[x], tuple) or out[y].ndim != 1 or len(out[x][1]) != len(out[y]):
            raise DatasetCorruptError(f"IMDB: {x} and {y} in {file} do not match (sequences and labels)")
    return out


# ------------------------------------------------------------------------ ragged operations


def _starts(lengths):
    return np.cumsum(lengths) - lengths


def _take(flat, lengths, order):
    """The sequences at ``order``, as a new ``(flat, lengths)``."""
    starts, lengths = _starts(lengths)[order], lengths[order]
    within = np.arange(lengths.sum(), dtype=np.int64) - np.repeat(_starts(lengths), lengths)
    return flat[np.repeat(starts, lengths) + within], lengths


def _prepend(flat, lengths, value):
    """``[value] + sequence`` for every sequence."""
    out = np.empty(len(flat) + len(lengths), dtype=np.int64)
    heads = _starts(lengths) + np.arange(len(lengths))
    is_head = np.zeros(len(out), dtype=bool)
    is_head[heads] = True
    out[is_head] = value
    out[~is_head] = flat
    return out, lengths + 1


def _as_lists(flat, lengths):
    """Keras's result: an object array of Python lists (built the way Keras builds it)."""
    parts = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
    return np.array([p.tolist() for p in parts], dtype="object")


def _check_int(value, name, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"cnnfast.datasets.imdb.load_data: {name} must be an integer"
                        f"{' or None' if allow_none else ''}, got {value!r}")


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2,
              index_from=3, *, download: bool = True, base_url: str | None = None):
    """Load the IMDB sentiment data set (Keras's ``keras.datasets.imdb.load_data``).

    Args:
        path: the file name under ``$CNNFAST_DATA/imdb/`` (else ``~/.cache/cnnfast/datasets/imdb/``),
            or an absolute path; downloaded there when missing.
        num_words: keep the ``num_words`` most frequent words (indices below it); rarer ones
            become ``oov_char``. None: every word (but the largest index, as in Keras).
        skip_top: the most frequent ``skip_top`` indices become ``oov_char`` too.
        maxlen: drop sequences of ``maxlen`` or more words (counting ``start_char``).
        seed: seed of the shuffle of both sets.
        start_char: index put at the start of every sequence (None: nothing).
        oov_char: index of the words cut out (None: they are removed).
        index_from: added to every word index.
        download: download a missing file (default True).
        base_url: URL of a directory holding ``imdb.npz``, instead of Keras's origin.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``x`` object arrays of lists of word indices,
        ``y`` arrays of 0/1 labels.

    Raises:
        ValueError: no sequence is shorter than ``maxlen``.
        DatasetNotFoundError / DatasetCorruptError: the file is missing or not Keras's file.
    """
    for name, value in (("num_words", num_words), ("maxlen", maxlen), ("start_char", start_char),
                        ("oov_char", oov_char)):
        _check_int(value, name)
    for name, value in (("skip_top", skip_top), ("seed", seed), ("index_from", index_from)):
        _check_int(value, name, allow_none=False)
    f = _read_npz(_local_file(DATA_FILE, path, download, base_url, "cnnfast.datasets.imdb.load_data"))
    rng = np.random.RandomState(seed)
    sets = []
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        order = np.arange(len(f[y]))
        rng.shuffle(order)
        flat, lengths = _take(*f[x], order)
        sets.append([flat, lengths, f[y][order]])
    for s in sets:
        if start_char is not None:
            s[0], s[1] = _prepend(s[0] + index_from, s[1], start_char)
        elif index_from:
            s[0] = s[0] + index_from
    if maxlen:
        for s in sets:
            keep = np.flatnonzero(s[1] < maxlen)
            s[0], s[1] = _take(s[0], s[1], keep)
            s[2] = s[2][keep]
        if not len(sets[0][1]) or not len(sets[1][1]):
            raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. "
                             "Increase maxlen.")
    if not num_words:
        num_words = max(int(s[0].max()) for s in sets if len(s[0]))
    for s in sets:
        inside = (s[0] >= skip_top) & (s[0] < num_words)
        if oov_char is not None:
            s[0] = np.where(inside, s[0], oov_char)
        else:
            owner = np.repeat(np.arange(len(s[1])), s[1])
            s[0] = s[0][inside]
            s[1] = np.bincount(owner[inside], minlength=len(s[1])).astype(np.int64)
    labels = np.concatenate([sets[0][2], sets[1][2]])
    n_train = len(sets[0][2])
    return ((_as_lists(sets[0][0], sets[0][1]), labels[:n_train]),
            (_as_lists(sets[1][0], sets[1][1]), labels[n_train:]))


def get_word_index(path="imdb_word_index.json", *, download: bool = True, base_url: str | None = None):
    """The dict mapping each word to its index in the IMDB data (before ``index_from``), from
    Keras's ``imdb_word_index.json`` (``keras.datasets.imdb.get_word_index``).

    Example:
        >>> index = {i + 3: w for w, i in get_word_index().items()}   # index_from=3
        >>> " ".join(index.get(i, "?") for i in x_train[0][1:])
    """
    file = _local_file(WORD_INDEX_FILE, path, download, base_url, "cnnfast.datasets.imdb.get_word_index")
    try:
        with open(file, encoding="utf-8") as fh:
            index = json.load(fh)
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetCorruptError(f"IMDB: {file} is not a JSON word index ({e})") from None
    if not isinstance(index, dict):
        raise DatasetCorruptError(f"IMDB: {file} is not a JSON object mapping words to indices")
    return index
