"""cnnfast.datasets.imdb: Keras's processing of imdb.npz, downloads over a loopback HTTP server.

No test touches the network. A small synthetic imdb.npz in Keras's exact format (np.savez of
object arrays of Python lists and int64 labels) is served from 127.0.0.1; its size and hash
replace the real file's in the module's file description, so the download and verification code
runs as it does for the real file. Keras 3's own ``keras.datasets.imdb.load_data`` is the
oracle, fed the same file (its get_file pointed at it).
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import pathlib
import pickle
import socket
import threading
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from cnnfast.datasets import DatasetCorruptError, DatasetNotFoundError, imdb  # noqa: E402
from cnnfast.datasets._fetch import RemoteFile  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _object_array(sequences):
    out = np.empty(len(sequences), dtype=object)
    out[:] = sequences
    return out


def _write_npz(path: pathlib.Path, seed=0, n_train=60, n_test=45, vocabulary=300):
    """Keras's layout: word ranks from 1, reviews of many lengths, int64 labels."""
    rng = np.random.default_rng(seed)

    def reviews(n):
        return [rng.integers(1, vocabulary, int(k)).tolist() for k in rng.integers(1, 50, n)]

    np.savez(path, x_train=_object_array(reviews(n_train)), y_train=rng.integers(0, 2, n_train),
             x_test=_object_array(reviews(n_test)), y_test=rng.integers(0, 2, n_test))
    return path


def _remote(path: pathlib.Path, name: str, algorithm="sha256") -> RemoteFile:
    data = path.read_bytes()
    return RemoteFile(name, len(data), hashlib.new(algorithm, data).hexdigest(), algorithm)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """http://127.0.0.1:PORT/imdb/ serving a synthetic imdb.npz and word index."""
    root = tmp_path_factory.mktemp("mirror")
    (root / "imdb").mkdir()
    npz = _write_npz(root / "imdb" / "imdb.npz")
    words = {f"word{i}": i for i in range(1, 300)}
    (root / "imdb" / "imdb_word_index.json").write_text(json.dumps(words))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "npz": npz, "words": words,
           "requests": httpd.requests, "root": root}
    httpd.shutdown()
    thread.join()


@pytest.fixture(autouse=True)
def environment(tmp_path, monkeypatch, served):
    """An empty data directory, the loopback mirror, and the synthetic files' sizes and hashes."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("CNNFAST_DATA", str(home))
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", served["url"])
    monkeypatch.setattr(imdb, "DATA_FILE", _remote(served["npz"], "imdb.npz"))
    monkeypatch.setattr(imdb, "WORD_INDEX_FILE",
                        _remote(served["root"] / "imdb" / "imdb_word_index.json", "imdb_word_index.json", "md5"))
    return home


@pytest.fixture
def keras_imdb(monkeypatch, served):
    pytest.importorskip("keras")
    from keras.src.datasets import imdb as keras_imdb
    monkeypatch.setattr(keras_imdb, "get_file", lambda *args, **kwargs: str(served["npz"]))
    return keras_imdb


def _same(ours, theirs):
    for (x, y), (kx, ky) in zip(ours, theirs):
        assert x.dtype == kx.dtype == object and x.shape == kx.shape
        assert all(type(s) is list for s in x)
        assert [list(s) for s in x] == [list(s) for s in kx]
        assert all(type(w) is int for s in x for w in s)
        assert y.dtype == ky.dtype and y.shape == ky.shape
        np.testing.assert_array_equal(y, ky)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(num_words=100),
    dict(num_words=120, skip_top=10),
    dict(maxlen=20),
    dict(seed=7, start_char=None),
    dict(start_char=None, index_from=0),
    dict(oov_char=None, num_words=50, skip_top=4),
    dict(maxlen=30, num_words=200, skip_top=2, start_char=5, oov_char=9, index_from=10, seed=1),
])
def test_processing_matches_keras(keras_imdb, kwargs):
    _same(imdb.load_data(**kwargs), keras_imdb.load_data(**kwargs))


def test_maxlen_too_small_is_keras_error(keras_imdb):
    with pytest.raises(ValueError, match="no sequence was kept"):
        keras_imdb.load_data(maxlen=2)
    with pytest.raises(ValueError, match="no sequence was kept. Increase maxlen"):
        imdb.load_data(maxlen=2)


def test_download_then_cache(served, environment):
    served["requests"].clear()
    (x_train, y_train), (x_test, y_test) = imdb.load_data()
    assert served["requests"] == ["/imdb/imdb.npz"]
    assert (environment / "imdb" / "imdb.npz").read_bytes() == served["npz"].read_bytes()
    assert len(x_train) == len(y_train) == 60 and len(x_test) == len(y_test) == 45
    assert all(s[0] == 1 for s in x_train)  # start_char
    imdb.load_data()
    assert served["requests"] == ["/imdb/imdb.npz"]  # the second load reads the verified copy


def test_word_index(served, environment):
    index = imdb.get_word_index()
    assert index == served["words"]
    assert (environment / "imdb" / "imdb_word_index.json").is_file()


def test_path_names_the_cached_file_or_is_absolute(served, environment, tmp_path):
    imdb.load_data(path="renamed.npz")
    assert (environment / "imdb" / "renamed.npz").is_file()
    target = tmp_path / "elsewhere" / "my_imdb.npz"
    imdb.load_data(path=target)
    assert target.read_bytes() == served["npz"].read_bytes()
    assert served["requests"][-1] == "/imdb/imdb.npz"  # always Keras's file name at the origin


def test_base_url(served, monkeypatch):
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", f"http://127.0.0.1:{_free_port()}")
    imdb.load_data(base_url=served["url"] + "/imdb/")


def test_missing_file_says_what_to_do(monkeypatch):
    with pytest.raises(DatasetNotFoundError, match=r"download=False.*17|download=False") as info:
        imdb.load_data(download=False)
    assert "imdb.npz" in str(info.value)
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(DatasetNotFoundError, match="could not be downloaded") as info:
        imdb.load_data()
    assert "Download attempts" in str(info.value) and "https://storage.googleapis.com" in str(info.value)


def test_a_copy_that_is_not_the_file_is_refused(environment, served):
    (environment / "imdb").mkdir(parents=True)
    data = bytearray(served["npz"].read_bytes())
    data[-100] ^= 0xFF
    (environment / "imdb" / "imdb.npz").write_bytes(bytes(data))
    with pytest.raises(DatasetCorruptError, match="not the original"):
        imdb.load_data()


def _npz_with(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, raw in members.items():
            archive.writestr(name + ".npy", raw)
    return buffer.getvalue()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


class _Planted:
    def __reduce__(self):
        return (os.system, ("echo planted > planted.txt",))


def test_a_pickle_that_names_anything_else_is_refused(environment, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    hostile = header.getvalue() + pickle.dumps(_Planted())
    good = _npy(np.zeros(1, np.int64))
    path = environment / "imdb" / "imdb.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(_npz_with({"x_train": hostile, "y_train": good, "x_test": hostile, "y_test": good}))
    monkeypatch.setattr(imdb, "DATA_FILE", _remote(path, "imdb.npz"))
    with pytest.raises(DatasetCorruptError, match="refused posix.system|refused os.system|refused"):
        imdb.load_data()
    assert not (tmp_path / "planted.txt").exists()


def test_npz_without_the_members_is_corrupt(environment, monkeypatch):
    path = environment / "imdb" / "imdb.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(_npz_with({"x_train": _npy(_object_array([[1, 2]]))}))
    monkeypatch.setattr(imdb, "DATA_FILE", _remote(path, "imdb.npz"))
    with pytest.raises(DatasetCorruptError, match="no y_train.npy"):
        imdb.load_data()


@pytest.mark.parametrize("kwargs", [dict(num_words=1.5), dict(skip_top=None), dict(seed="a"), dict(maxlen=True)])
def test_bad_arguments(kwargs):
    with pytest.raises(TypeError, match="must be an integer"):
        imdb.load_data(**kwargs)
