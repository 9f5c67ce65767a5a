"""CIFAR-10: 50,000 training and 10,000 test colour images, 32x32x3, 10 classes.

Read straight from the original archive, without unpacking it to disk: the "python version"
``cifar-10-python.tar.gz`` (SHA-256 verified; downloaded when missing) or, if that is absent, the
"binary version" ``cifar-10-binary.tar.gz`` (MD5 verified, the only hash its authors publish), in
``$CNNFAST_DATA/cifar-10/`` or ``~/.cache/cnnfast/datasets/cifar-10/``.

The python batches are pickles; they are read with a restricted unpickler that cannot call
anything but inert stand-ins for a NumPy uint8 array (see ``_unpickle.py``), never plain pickle.

No explicit license; cite A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
2009 (https://www.cs.toronto.edu/~kriz/cifar.html).
"""
from __future__ import annotations

import zlib

import numpy as np

from ._fetch import DataSet, DatasetCorruptError, RemoteFile, fetch, find
from ._unpickle import restricted_loads

__all__ = ["load_data", "CLASS_NAMES", "DATASET", "PYTHON_ARCHIVE", "BINARY_ARCHIVE"]

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

PYTHON_ARCHIVE = RemoteFile("cifar-10-python.tar.gz", 170_498_071,
                            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")
BINARY_ARCHIVE = RemoteFile("cifar-10-binary.tar.gz", 170_052_171,
                            "c32a1d4ab5d03f1284b67883e8d87530", algorithm="md5")

DATASET = DataSet(
    title="CIFAR-10",
    subdir="cifar-10",
    files=(PYTHON_ARCHIVE,),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    note=(f"The binary version, {BINARY_ARCHIVE.name} ({BINARY_ARCHIVE.size:,} bytes, md5 "
          f"{BINARY_ARCHIVE.digest}), is accepted in its place. Do not unpack the archive."),
)

_PIXELS = 32 * 32 * 3
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"
_MAX_MEMBER = 64 << 20  # a batch is ~31 MB; anything far larger is not CIFAR-10


def load_data(path=None, *, download: bool = True, base_url: str | None = None):
    """Load the CIFAR-10 data set.

    Args:
        path: a local directory holding ``cifar-10-python.tar.gz`` or ``cifar-10-binary.tar.gz``
            (directly or in ``cifar-10/``); default: ``$CNNFAST_DATA/cifar-10``, else
            ``~/.cache/cnnfast/datasets/cifar-10``. A missing archive is downloaded into it.
        download: download the python archive when neither archive is present (default True).
        base_url: URL of a directory holding the archive, used instead of the canonical mirror.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape (50000, 32, 32, 3) and
        (10000, 32, 32, 3), channels last (RGB), and uint8 labels 0..9 of shape (50000, 1) and
        (10000, 1), as in Keras; labels name :data:`CLASS_NAMES`.

    Raises:
        DatasetNotFoundError: no archive and none downloadable (the message says what to put where).
        DatasetCorruptError: an archive is present but is not the original, or a batch is refused.
    """
    module = "cnnfast.datasets.cifar10"
    archive = find(DATASET, PYTHON_ARCHIVE, path)
    if archive is not None:
        return read_python_archive(archive)
    binary = find(DATASET, BINARY_ARCHIVE, path)
    if binary is not None:
        return read_binary_archive(binary)
    archive = fetch(DATASET, [PYTHON_ARCHIVE], path=path, download=download, base_url=base_url,
                    module=module)[0]
    return read_python_archive(archive)


def _read_members(archive, names: list[str]) -> dict[str, bytes]:
    """The bytes of the named regular-file members, read in one pass, never extracted to disk."""
    import tarfile  # imported on use: keeps `import cnnfast.datasets` light

    wanted = set(names)
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name not in wanted or member.name in out:
                    continue
                if not member.isfile():
                    raise DatasetCorruptError(f"CIFAR-10: {archive}: {member.name} is not a regular file")
                if member.size > _MAX_MEMBER:
                    raise DatasetCorruptError(f"CIFAR-10: {archive}: {member.name} is {member.size:,} bytes, "
                                              f"too large for a CIFAR-10 batch")
                out[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DatasetCorruptError(f"CIFAR-10: {archive}: unreadable archive ({type(e).__name__}: {e})") from e
    missing = [n for n in names if n not in out]
    if missing:
        raise DatasetCorruptError(f"CIFAR-10: {archive}: missing member(s) {', '.join(missing)}")
    return out


def _to_nhwc(planes: np.ndarray) -> np.ndarray:
    """(N, 3072) rows of R, G, B planes -> (N, 32, 32, 3) channels-last."""
    return planes.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _python_batch(raw: bytes, where: str):
    try:
        batch = restricted_loads(raw)
    except Exception as e:  # RefusedPickleError, or any malformed-pickle error
        raise DatasetCorruptError(f"CIFAR-10: {where}: not a valid CIFAR-10 batch ({e})") from e
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise DatasetCorruptError(f"CIFAR-10: {where}: expected a dict with 'data' and 'labels'")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DatasetCorruptError(f"CIFAR-10: {where}: 'data' must be a uint8 array of shape (N, {_PIXELS}), "
                                  f"got {getattr(data, 'shape', type(data).__name__)}")
    if (not isinstance(labels, list) or len(labels) != data.shape[0]
            or not all(type(v) is int and 0 <= v <= 9 for v in labels)):
        raise DatasetCorruptError(f"CIFAR-10: {where}: 'labels' must be {data.shape[0]} integers in 0..9")
    return _to_nhwc(data), np.array(labels, dtype=np.uint8)


def _binary_batch(raw: bytes, where: str):
    if len(raw) % (_PIXELS + 1):
        raise DatasetCorruptError(f"CIFAR-10: {where}: {len(raw):,} bytes is not a whole number of "
                                  f"{_PIXELS + 1}-byte records")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _PIXELS + 1)
    labels = records[:, 0]
    if labels.size and labels.max() > 9:
        raise DatasetCorruptError(f"CIFAR-10: {where}: label {int(labels.max())} out of range 0..9")
    return _to_nhwc(records[:, 1:]), labels


def _assemble(batches_train, batch_test):
    x_train = np.ascontiguousarray(np.concatenate([b[0] for b in batches_train]))
    y_train = np.concatenate([b[1] for b in batches_train]).reshape(-1, 1)
    x_test = np.ascontiguousarray(batch_test[0])
    y_test = np.array(batch_test[1], dtype=np.uint8).reshape(-1, 1)
    return (x_train, y_train), (x_test, y_test)


def read_python_archive(archive):
    """Parse a ``cifar-10-python.tar.gz``-format archive (no hash check: :func:`load_data` does that)."""
    names = [f"cifar-10-batches-py/{n}" for n in (*_TRAIN, _TEST)]
    raw = _read_members(archive, names)
    batches = [_python_batch(raw.pop(n), f"{archive}: {n}") for n in names]
    return _assemble(batches[:-1], batches[-1])


def read_binary_archive(archive):
    """Parse a ``cifar-10-binary.tar.gz``-format archive (no hash check: :func:`load_data` does that)."""
    names = [f"cifar-10-batches-bin/{n}.bin" for n in (*_TRAIN, _TEST)]
    raw = _read_members(archive, names)
    batches = [_binary_batch(raw.pop(n), f"{archive}: {n}") for n in names]
    return _assemble(batches[:-1], batches[-1])
