"""cnnfast.datasets: loaders, hash verification, downloads over a loopback HTTP server, CIFAR parsing.

No test touches the network: every download goes to an http.server started here on 127.0.0.1, and
an autouse fixture points the data directory at a temporary directory and the default mirror at
a closed loopback port. Real MNIST / Fashion-MNIST come from the shared data directory when it
exists (tests.conftest.shared_data_dir) and those tests skip otherwise.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import os
import pathlib
import pickle
import shutil
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from cnnfast import datasets
from cnnfast.datasets import _fetch, _idx, _unpickle, cifar10, digits, fashion_mnist, mnist
from cnnfast.datasets import DatasetCorruptError, DatasetNotFoundError
from tests.conftest import shared_data_dir
from tests.reference import datasets as ref

SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="MNIST/Fashion-MNIST not in the shared data directory")

IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch):
    """Every test gets an empty data directory and a mirror that refuses connections."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("CNNFAST_DATA", str(home))
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", f"http://127.0.0.1:{_free_port()}")
    return home


def _remote(path: pathlib.Path, name: str | None = None, algorithm: str = "sha256") -> _fetch.RemoteFile:
    data = path.read_bytes()
    return _fetch.RemoteFile(name or path.name, len(data), hashlib.new(algorithm, data).hexdigest(), algorithm)


def _files_under(directory: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()) \
        if directory.exists() else []


# --------------------------------------------------------------------------- synthetic IDX set


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A small MNIST-format data set: arrays, its files, and a DataSet spec describing them."""
    rng = np.random.default_rng(7)
    arrays = (rng.integers(0, 256, (37, 28, 28), dtype=np.uint8), rng.integers(0, 10, 37).astype(np.uint8),
              rng.integers(0, 256, (11, 28, 28), dtype=np.uint8), rng.integers(0, 10, 11).astype(np.uint8))
    d = tmp_path_factory.mktemp("synth")
    for name, a in zip(IDX_NAMES, arrays):
        ref.write_idx_gz(d / name, a)
    spec = dataclasses.replace(mnist.DATASET, files=tuple(_remote(d / n) for n in IDX_NAMES), mirrors=())
    return {"arrays": arrays, "dir": d, "spec": spec}


@pytest.fixture
def synth_mnist(synth, monkeypatch):
    """mnist.load_data() reading the synthetic set (its sizes and hashes replace the real ones)."""
    monkeypatch.setattr(mnist, "DATASET", synth["spec"])
    return synth


# ----------------------------------------------------------------------- loopback HTTP server


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/short/"):  # announce the full length, send half, hang up
            file = pathlib.Path(self.directory) / "good" / self.path[len("/short/"):]
            data = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory, synth):
    """http://127.0.0.1:PORT/ serving good/, truncated/ and corrupt/ copies of the data sets."""
    root = tmp_path_factory.mktemp("www")
    sets = {"mnist": synth["dir"]}
    if SHARED is not None:
        sets["real-mnist"] = SHARED / "mnist"
    for sub, src in sets.items():
        for kind in ("good", "truncated", "corrupt"):
            (root / kind / sub).mkdir(parents=True)
        for name in IDX_NAMES:
            data = (src / name).read_bytes()
            (root / "good" / sub / name).symlink_to(src / name)
            (root / "truncated" / sub / name).write_bytes(data[: len(data) * 3 // 4])
            bad = bytearray(data)
            bad[len(bad) // 2] ^= 0x40
            (root / "corrupt" / sub / name).write_bytes(bytes(bad))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_Handler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "root": root, "requests": httpd.requests}
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _assert_idx_set(loaded, arrays):
    (xtr, ytr), (xte, yte) = loaded
    for got, want in zip((xtr, ytr, xte, yte), arrays):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and got.flags.writeable


# ------------------------------------------------------------------------------------ digits


def test_digits_matches_bundled_csv_and_split():
    (xtr, ytr), (xte, yte) = digits.load_data()
    assert xtr.shape == (digits.N_TRAIN, 8, 8) and xte.shape == (digits.N_TEST, 8, 8)
    assert ytr.shape == (digits.N_TRAIN,) and yte.shape == (digits.N_TEST,)
    assert {a.dtype for a in (xtr, ytr, xte, yte)} == {np.dtype(np.uint8)}
    images, labels = ref.read_digits_csv_gz(digits._read_bundled())
    assert len(images) == 1797 == digits.N_TRAIN + digits.N_TEST
    seen = [0] * 10
    train_rows, test_rows = [], []
    for i, label in enumerate(labels):  # every fifth image of each digit is a test image
        seen[label] += 1
        (test_rows if seen[label] % 5 == 0 else train_rows).append(i)
    np.testing.assert_array_equal(xtr, images[train_rows])
    np.testing.assert_array_equal(ytr, labels[train_rows])
    np.testing.assert_array_equal(xte, images[test_rows])
    np.testing.assert_array_equal(yte, labels[test_rows])
    assert xtr.max() == 16 and xtr.min() == 0
    assert np.bincount(yte).min() >= 34 and np.bincount(yte).max() <= 36
    assert all(a.flags.c_contiguous for a in (xtr, ytr, xte, yte))


def test_digits_is_deterministic_and_returns_fresh_arrays():
    a = digits.load_data()
    a[0][0][0, 0, 0] = 99  # writeable, and must not leak into the next call
    b = digits.load_data()
    assert b[0][0][0, 0, 0] != 99
    np.testing.assert_array_equal(a[1][0], b[1][0])


def test_digits_file_is_installed_with_the_package_and_hash_matches():
    blob = digits._read_bundled()
    assert hashlib.sha256(blob).hexdigest() == digits.SHA256
    assert (pathlib.Path(digits.__file__).parent / "data" / digits.FILE_NAME).is_file()


def test_digits_refuses_a_damaged_bundled_file(monkeypatch):
    blob = bytearray(digits._read_bundled())
    blob[100] ^= 1
    monkeypatch.setattr(digits, "_read_bundled", lambda: bytes(blob))
    with pytest.raises(DatasetCorruptError, match="sha256"):
        digits.load_data()


# ------------------------------------------------------------------------- real MNIST sets


@needs_shared
@pytest.mark.parametrize("module, subdir", [(mnist, "mnist"), (fashion_mnist, "fashion-mnist")])
def test_real_sets_match_reference_reader(module, subdir, monkeypatch):
    monkeypatch.setenv("CNNFAST_DATA", str(SHARED))
    (xtr, ytr), (xte, yte) = module.load_data()
    assert xtr.shape == (60000, 28, 28) and ytr.shape == (60000,)
    assert xte.shape == (10000, 28, 28) and yte.shape == (10000,)
    want = [ref.read_idx_gz(SHARED / subdir / n) for n in IDX_NAMES]
    _assert_idx_set(((xtr, ytr), (xte, yte)), want)
    assert set(np.unique(ytr)) == set(range(10))


@needs_shared
def test_path_argument_takes_the_directory_or_its_parent():
    a = mnist.load_data(path=SHARED / "mnist", download=False)
    b = mnist.load_data(path=str(SHARED), download=False)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    np.testing.assert_array_equal(a[0][1], b[0][1])


@needs_shared
def test_real_mnist_downloads_from_loopback_mirror(server, isolated_data_dir, monkeypatch):
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", server["url"] + "/good")
    monkeypatch.setattr(mnist, "DATASET", dataclasses.replace(mnist.DATASET, subdir="real-mnist"))
    loaded = mnist.load_data()
    _assert_idx_set(loaded, [ref.read_idx_gz(SHARED / "mnist" / n) for n in IDX_NAMES])
    assert _files_under(isolated_data_dir) == sorted(f"real-mnist/{n}" for n in IDX_NAMES)
    for n in IDX_NAMES:
        assert (isolated_data_dir / "real-mnist" / n).read_bytes() == (SHARED / "mnist" / n).read_bytes()


# ----------------------------------------------------------------------- data directory


def test_data_home_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNFAST_DATA", str(tmp_path / "x"))
    assert datasets.data_home() == tmp_path / "x"
    monkeypatch.delenv("CNNFAST_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert datasets.data_home() == tmp_path / ".cache" / "cnnfast" / "datasets"


def test_local_files_in_data_home_are_used_without_network(synth_mnist, isolated_data_dir, server):
    target = isolated_data_dir / "mnist"
    target.mkdir(parents=True)
    for n in IDX_NAMES:
        shutil.copy(synth_mnist["dir"] / n, target / n)
    before = len(server["requests"])
    _assert_idx_set(mnist.load_data(base_url=server["url"] + "/good/mnist/"), synth_mnist["arrays"])
    assert len(server["requests"]) == before


def test_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "mnist.npz"
    f.write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="directory"):
        mnist.load_data(path=f)


# --------------------------------------------------------------------------- downloading


def test_download_via_env_mirror_then_cached(synth_mnist, server, isolated_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", server["url"] + "/good")
    before = len(server["requests"])
    _assert_idx_set(mnist.load_data(), synth_mnist["arrays"])
    assert sorted(server["requests"][before:]) == sorted(f"/good/mnist/{n}" for n in IDX_NAMES)
    assert _files_under(isolated_data_dir) == sorted(f"mnist/{n}" for n in IDX_NAMES)
    assert "Downloading" in capsys.readouterr().err
    _assert_idx_set(mnist.load_data(), synth_mnist["arrays"])  # second load: from the cache
    assert len(server["requests"]) == before + 4


def test_download_via_base_url_into_path(synth_mnist, server, tmp_path):
    target = tmp_path / "my-mnist"
    _assert_idx_set(mnist.load_data(path=target, base_url=server["url"] + "/good/mnist"), synth_mnist["arrays"])
    assert _files_under(target) == sorted(IDX_NAMES)


@pytest.mark.parametrize("kind, message", [("truncated", "truncated"), ("corrupt", "corrupted"),
                                           ("short", "truncated"), ("missing", "HTTP 404")])
def test_bad_download_is_refused_and_never_lands(kind, message, synth_mnist, server, isolated_data_dir):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load_data(base_url=f"{server['url']}/{kind}/mnist/")
    text = str(info.value)
    assert message in text
    for n in IDX_NAMES:  # the message names every file, its size and its hash
        assert n in text
    assert synth_mnist["spec"].files[0].digest in text
    assert str(isolated_data_dir / "mnist") in text
    assert _files_under(isolated_data_dir) == []  # no partial, temporary or corrupt file is left


def test_next_mirror_is_tried_after_a_corrupt_one(synth_mnist, server, isolated_data_dir, monkeypatch):
    monkeypatch.delenv("CNNFAST_DATASETS_MIRROR")
    url = server["url"]
    spec = dataclasses.replace(synth_mnist["spec"], mirrors=(f"{url}/corrupt/mnist/", f"{url}/good/mnist/"))
    monkeypatch.setattr(mnist, "DATASET", spec)
    before = len(server["requests"])
    _assert_idx_set(mnist.load_data(), synth_mnist["arrays"])
    assert len(server["requests"]) - before == 8
    assert _files_under(isolated_data_dir) == sorted(f"mnist/{n}" for n in IDX_NAMES)


def test_offline_error_says_what_to_put_where(synth_mnist, isolated_data_dir):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load_data()
    text = str(info.value)
    assert "cannot connect" in text and "not asked for the other files" in text
    assert f"in {isolated_data_dir / 'mnist'}" in text
    for rf in synth_mnist["spec"].files:
        assert rf.name in text and rf.digest in text and f"{rf.size:,}" in text
    assert isinstance(info.value, FileNotFoundError)


def test_download_false_makes_no_request(synth_mnist, server, monkeypatch):
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", server["url"] + "/good")
    before = len(server["requests"])
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        mnist.load_data(download=False)
    assert len(server["requests"]) == before


def test_unwritable_target_is_reported(synth_mnist, server, tmp_path):
    (tmp_path / "file-in-the-way").write_bytes(b"")
    bad = tmp_path / "file-in-the-way" / "sub"  # cannot be created, whoever runs the test
    with pytest.raises(DatasetNotFoundError, match="NotADirectoryError|FileExistsError"):
        mnist.load_data(path=bad, base_url=server["url"] + "/good/mnist/")


@pytest.mark.parametrize("url", ["ftp://example.org/", "/local/dir", 5])
def test_base_url_must_be_http_or_file(url, synth_mnist):
    with pytest.raises(ValueError, match="base_url"):
        mnist.load_data(base_url=url)


def test_env_mirror_must_be_a_url(synth_mnist, monkeypatch):
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", "/srv/mirror")
    with pytest.raises(ValueError, match="CNNFAST_DATASETS_MIRROR must be an http"):
        mnist.load_data()


def test_file_url_mirror(synth_mnist, tmp_path):
    _assert_idx_set(mnist.load_data(path=tmp_path / "t", base_url=synth_mnist["dir"].as_uri()),
                    synth_mnist["arrays"])


# --------------------------------------------------------------------- local corrupt files


@pytest.mark.parametrize("damage", ["truncate", "flip", "extend"])
def test_corrupt_local_file_raises_and_is_kept(damage, synth_mnist, isolated_data_dir, server):
    target = isolated_data_dir / "mnist"
    target.mkdir(parents=True)
    for n in IDX_NAMES:
        shutil.copy(synth_mnist["dir"] / n, target / n)
    victim = target / IDX_NAMES[2]
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        data = data[:-10]
    elif damage == "flip":
        data[len(data) // 3] ^= 0xFF
    else:
        data += b"\0"
    victim.write_bytes(bytes(data))
    before = len(server["requests"])
    with pytest.raises(DatasetCorruptError, match=IDX_NAMES[2]) as info:
        mnist.load_data(base_url=server["url"] + "/good/mnist/")
    assert "Delete it" in str(info.value)
    assert victim.read_bytes() == bytes(data)  # never deleted or replaced behind the user's back
    assert len(server["requests"]) == before


# ------------------------------------------------------------------------------ IDX reader


def _write(path, payload: bytes, compress=True):
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def test_idx_reader_roundtrip_any_rank(tmp_path, rng):
    for shape in [(0,), (5,), (3, 4), (2, 3, 5), (1, 1, 1, 7)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        got = _idx.read_idx(_write(tmp_path / "a.gz", ref.idx_bytes(a)))
        assert got.shape == a.shape and got.flags.writeable
        np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("case, match", [
    ("float-type", "unsigned-byte"), ("wrong-ndim", "dimensions"), ("short-payload", "truncated"),
    ("trailing", "trailing"), ("short-header", "unreadable"), ("not-gzip", "unreadable"),
    ("cut-gzip", "unreadable"), ("huge-header", "implausible")])
def test_idx_reader_refuses_bad_files(case, match, tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    good = ref.idx_bytes(a)
    payloads = {
        "float-type": ref.idx_bytes(a, type_code=0x0D),
        "wrong-ndim": ref.idx_bytes(a[0]),
        "short-payload": good[:-1],
        "trailing": good + b"x",
        "short-header": good[:6],
    }
    if case == "not-gzip":
        path = _write(tmp_path / "f.gz", good, compress=False)
    elif case == "cut-gzip":
        path = _write(tmp_path / "f.gz", gzip.compress(good)[:-12], compress=False)
    elif case == "huge-header":
        path = _write(tmp_path / "f.gz", bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3)
    else:
        path = _write(tmp_path / "f.gz", payloads[case])
    with pytest.raises(DatasetCorruptError, match=match):
        _idx.read_idx(path, ndim=3)


def test_idx_reader_missing_file_is_not_called_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError):
        _idx.read_idx(tmp_path / "nope.gz")


def test_images_and_labels_must_agree(synth, tmp_path, monkeypatch):
    d = tmp_path / "mismatch"
    d.mkdir()
    for n in IDX_NAMES:
        shutil.copy(synth["dir"] / n, d / n)
    ref.write_idx_gz(d / IDX_NAMES[1], synth["arrays"][1][:-1])
    monkeypatch.setattr(mnist, "DATASET", dataclasses.replace(
        synth["spec"], files=tuple(_remote(d / n) for n in IDX_NAMES)))
    with pytest.raises(DatasetCorruptError, match="37 images but 36 labels"):
        mnist.load_data(path=d)


# -------------------------------------------------------------------------------- CIFAR-10


@pytest.fixture
def cifar_batches(rng):
    return ref.make_cifar_batches(rng)


def _use_archive(monkeypatch, archive: pathlib.Path, binary=False):
    if binary:
        monkeypatch.setattr(cifar10, "BINARY_ARCHIVE", _remote(archive, cifar10.BINARY_ARCHIVE.name, "md5"))
    else:
        monkeypatch.setattr(cifar10, "PYTHON_ARCHIVE", _remote(archive, cifar10.PYTHON_ARCHIVE.name))


def _assert_cifar(loaded, batches):
    (xtr, ytr), (xte, yte) = loaded
    (wxtr, wytr), (wxte, wyte) = ref.expected_cifar(batches)
    for got, want in ((xtr, wxtr), (ytr, wytr), (xte, wxte), (yte, wyte)):
        assert got.dtype == np.uint8 and got.shape == want.shape and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
    assert ytr.ndim == 2 and ytr.shape[1] == 1 and xtr.shape[1:] == (32, 32, 3)


def test_cifar10_python_archive(cifar_batches, tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10" / cifar10.PYTHON_ARCHIVE.name
    archive.parent.mkdir()
    ref.write_cifar_python_archive(archive, cifar_batches)
    _use_archive(monkeypatch, archive)
    _assert_cifar(cifar10.load_data(path=tmp_path), cifar_batches)
    assert _files_under(tmp_path / "cifar-10") == [cifar10.PYTHON_ARCHIVE.name]  # nothing unpacked


def test_cifar10_binary_archive(cifar_batches, isolated_data_dir, monkeypatch):
    archive = isolated_data_dir / "cifar-10" / cifar10.BINARY_ARCHIVE.name
    archive.parent.mkdir(parents=True)
    ref.write_cifar_binary_archive(archive, cifar_batches)
    _use_archive(monkeypatch, archive, binary=True)
    _assert_cifar(cifar10.load_data(download=False), cifar_batches)


def test_cifar10_canonical_shapes_with_full_size_batches(rng, tmp_path, monkeypatch):
    batches = [(np.zeros((10000, 3072), np.uint8), rng.integers(0, 10, 10000)) for _ in range(6)]
    batches[5][0][17] = rng.integers(0, 256, 3072)  # mostly zeros: quick to compress
    archive = tmp_path / cifar10.BINARY_ARCHIVE.name
    ref.write_cifar_binary_archive(archive, batches, compresslevel=1)
    _use_archive(monkeypatch, archive, binary=True)
    (xtr, ytr), (xte, yte) = cifar10.load_data(path=tmp_path)
    assert xtr.shape == (50000, 32, 32, 3) and ytr.shape == (50000, 1)
    assert xte.shape == (10000, 32, 32, 3) and yte.shape == (10000, 1)
    np.testing.assert_array_equal(xte[17], ref.cifar_rows_to_nhwc(batches[5][0][17:18])[0])
    np.testing.assert_array_equal(yte[:, 0], batches[5][1])
    assert not xte[16].any()


def test_cifar10_download_from_loopback(cifar_batches, server, isolated_data_dir, monkeypatch):
    served = server["root"] / "good" / "cifar-10"
    served.mkdir(exist_ok=True)
    archive = served / cifar10.PYTHON_ARCHIVE.name
    ref.write_cifar_python_archive(archive, cifar_batches)
    _use_archive(monkeypatch, archive)
    monkeypatch.setenv("CNNFAST_DATASETS_MIRROR", server["url"] + "/good")
    _assert_cifar(cifar10.load_data(), cifar_batches)
    assert _files_under(isolated_data_dir) == [f"cifar-10/{cifar10.PYTHON_ARCHIVE.name}"]


def test_cifar10_missing_names_both_archives(isolated_data_dir):
    with pytest.raises(DatasetNotFoundError) as info:
        cifar10.load_data()
    text = str(info.value)
    assert cifar10.PYTHON_ARCHIVE.digest in text and cifar10.BINARY_ARCHIVE.name in text
    assert str(isolated_data_dir / "cifar-10") in text


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar10_batches_written_by_python3_pickle(protocol, cifar_batches, tmp_path, monkeypatch):
    def serialize(rows, labels, i):
        return pickle.dumps({"batch_label": f"batch {i}", "labels": [int(v) for v in labels],
                             "data": rows, "filenames": [f"{j}.png" for j in range(len(rows))]},
                            protocol=protocol)
    archive = tmp_path / cifar10.PYTHON_ARCHIVE.name
    ref.write_cifar_python_archive(archive, cifar_batches, serialize)
    _use_archive(monkeypatch, archive)
    _assert_cifar(cifar10.load_data(path=tmp_path), cifar_batches)


class _Evil:
    """Pickles to a call of ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _malicious_batches(marker: pathlib.Path) -> dict:
    """Pickles that would run code, or smuggle non-uint8 data, if a loader trusted them."""
    cmd = f"touch {marker}"
    rows = np.zeros((1, 3072), dtype=np.uint8)
    return {
        "os.system": pickle.dumps({"data": _Evil(os.system, cmd), "labels": [0]}, protocol=2),
        "exec-protocol4": pickle.dumps({"data": rows, "labels": [0],
                                        "x": _Evil(exec, f"open({str(marker)!r}, 'w')")}, protocol=4),
        "subprocess": pickle.dumps(_Evil(subprocess.call, ["touch", str(marker)]), protocol=2),
        "getattr-chain": pickle.dumps(_Evil(getattr, _Evil(__import__, "os"), "system"), protocol=3),
        "numpy-gadget": b"\x80\x02cnumpy.testing._private.utils\nrunstring\nX\x09\x00\x00\x00import os}\x86R.",
        "numpy-object-dtype": pickle.dumps({"data": np.array([0, "x"], dtype=object), "labels": [0]}, protocol=2),
        "numpy-float-data": pickle.dumps({"data": rows.astype(np.float32), "labels": [0]}, protocol=2),
        "ndarray-subclass": pickle.dumps({"data": np.ma.masked_array(rows), "labels": [0]}, protocol=2),
        "copyreg": b"\x80\x02ccopyreg\n_reconstructor\nq\x00.",
        "ext-code": b"\x80\x02\x82\x01.",
        "persistent-id": b"\x80\x02X\x01\x00\x00\x00aQ.",
    }


@pytest.mark.parametrize("case", list(_malicious_batches(pathlib.Path("/x"))))
def test_cifar10_malicious_pickle_is_refused(case, cifar_batches, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    evil = _malicious_batches(marker)[case]

    def serialize(rows, labels, i):
        return evil if i == 2 else ref.py2_cifar_batch(rows, labels)
    archive = tmp_path / cifar10.PYTHON_ARCHIVE.name
    ref.write_cifar_python_archive(archive, cifar_batches, serialize)
    _use_archive(monkeypatch, archive)
    with pytest.raises(DatasetCorruptError, match="data_batch_3: not a valid CIFAR-10 batch") as info:
        cifar10.load_data(path=tmp_path)
    assert "refused" in str(info.value) or case in ("ext-code",)
    assert not marker.exists()


def test_restricted_unpickler_builds_stand_ins_not_numpy_objects():
    import io
    raw = ref.py2_cifar_batch(np.ones((2, 3072), dtype=np.uint8), [1, 2])
    obj = _unpickle._Unpickler(io.BytesIO(raw), encoding="bytes").load()
    assert isinstance(obj[b"data"], _unpickle._Array) and obj[b"data"].shape == (2, 3072)
    plain = _unpickle.restricted_loads(raw)
    assert plain["labels"] == [1, 2] and plain["data"].dtype == np.uint8 and plain["data"].sum() == 2 * 3072


@pytest.mark.parametrize("case", ["missing-member", "symlink-member", "garbage", "bad-labels",
                                  "wrong-width", "label-count", "binary-ragged", "oversized"])
def test_cifar10_malformed_archives(case, cifar_batches, tmp_path, monkeypatch):
    binary = case.startswith("binary")
    archive = tmp_path / (cifar10.BINARY_ARCHIVE.name if binary else cifar10.PYTHON_ARCHIVE.name)
    names = [f"cifar-10-batches-py/{n}" for n in ref.BATCH_NAMES]
    members = {n: ref.py2_cifar_batch(r, lab) for n, (r, lab) in zip(names, cifar_batches)}
    match = "CIFAR-10"
    if case == "missing-member":
        del members[names[4]]
        match = "missing member"
    elif case == "bad-labels":
        members[names[0]] = ref.py2_cifar_batch(cifar_batches[0][0], [10] * len(cifar_batches[0][1]))
        match = "labels"
    elif case == "wrong-width":
        members[names[0]] = ref.py2_cifar_batch(np.zeros((2, 100), np.uint8), [0, 1])
        match = "shape"
    elif case == "label-count":
        members[names[0]] = ref.py2_cifar_batch(cifar_batches[0][0], [1])
        match = "labels"
    elif case == "oversized":
        monkeypatch.setattr(cifar10, "_MAX_MEMBER", 1000)
        match = "too large"
    if case == "garbage":
        archive.write_bytes(gzip.compress(b"not a tar file" * 100))
        match = "unreadable archive"
    elif case == "symlink-member":
        import tarfile
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo(names[0])
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        match = "not a regular file"
    elif case == "binary-ragged":
        ref.write_tar_gz(archive, {f"cifar-10-batches-bin/{n}.bin": b"\0" * 3074 for n in ref.BATCH_NAMES})
        match = "whole number"
    else:
        ref.write_tar_gz(archive, members)
    _use_archive(monkeypatch, archive, binary=binary)
    with pytest.raises(DatasetCorruptError, match=match):
        cifar10.load_data(path=tmp_path, download=False)


def test_real_cifar10_if_present():
    home = SHARED / "cifar-10" if SHARED is not None else None
    if home is None or not (home / cifar10.PYTHON_ARCHIVE.name).exists():
        pytest.skip("the CIFAR-10 archive is not in the shared data directory")
    (xtr, ytr), (xte, yte) = cifar10.load_data(path=home, download=False)
    assert xtr.shape == (50000, 32, 32, 3) and ytr.shape == (50000, 1)
    assert xte.shape == (10000, 32, 32, 3) and yte.shape == (10000, 1)
    assert np.bincount(ytr[:, 0]).tolist() == [5000] * 10


# -------------------------------------------------------------------------------- package


def test_modules_and_load_by_name():
    import types

    import cnnfast
    for name in ("mnist", "fashion_mnist", "cifar10", "digits"):
        assert isinstance(getattr(cnnfast.datasets, name), types.ModuleType)
    (xtr, _), _ = datasets.load("digits")
    assert xtr.shape == (digits.N_TRAIN, 8, 8)
    with pytest.raises(ValueError, match="must be one of"):
        datasets.load("imagenet")
    assert len(fashion_mnist.CLASS_NAMES) == 10 and len(cifar10.CLASS_NAMES) == 10


def test_import_is_light():
    code = ("import sys, cnnfast.datasets; "
            "print(sorted(m for m in ('urllib.request', 'tarfile', 'http.client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
