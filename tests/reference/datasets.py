"""Reference readers and writers of the data-set file formats, written independently of cnnfast.

Readers are the plainest possible code (struct + np.frombuffer, the csv module, explicit index
arithmetic); writers build synthetic files in the exact formats of the original distributions:
gzip IDX, CIFAR-10 python batches pickled the way Python 2.7's cPickle wrote them (protocol 2,
``numpy.core.multiarray._reconstruct``, ``str`` written as SHORT_BINSTRING/BINSTRING), the
CIFAR-10 binary records, and the two tar.gz archives.
"""
from __future__ import annotations

import csv
import gzip
import io
import struct
import tarfile

import numpy as np

# ----------------------------------------------------------------------------------------- IDX


def read_idx_gz(path) -> np.ndarray:
    """Parse a gzip IDX file of unsigned bytes."""
    data = gzip.decompress(open(path, "rb").read())
    assert data[0] == 0 and data[1] == 0 and data[2] == 0x08, "not an unsigned-byte IDX file"
    ndim = data[3]
    dims = [struct.unpack(">I", data[4 + 4 * i: 8 + 4 * i])[0] for i in range(ndim)]
    start = 4 + 4 * ndim
    assert len(data) - start == int(np.prod(dims))
    return np.frombuffer(data[start:], dtype=np.uint8).reshape(dims)


def idx_bytes(array: np.ndarray, type_code: int = 0x08, ndim: int | None = None) -> bytes:
    """Uncompressed IDX bytes of a uint8 array (type_code/ndim overridable to build bad files)."""
    nd = array.ndim if ndim is None else ndim
    header = bytes([0, 0, type_code, nd]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_gz(path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(gzip.compress(idx_bytes(array)))


# ---------------------------------------------------------------------------------- digits CSV


def read_digits_csv_gz(blob: bytes):
    """(images (N, 8, 8), labels (N,)) from the bytes of digits.csv.gz, with the csv module."""
    rows = list(csv.reader(io.StringIO(gzip.decompress(blob).decode("ascii"))))
    images = np.zeros((len(rows), 8, 8), dtype=np.int64)
    labels = np.zeros(len(rows), dtype=np.int64)
    for n, row in enumerate(rows):
        assert len(row) == 65
        for i in range(64):
            images[n, i // 8, i % 8] = int(float(row[i]))
        labels[n] = int(float(row[64]))
    return images, labels


# ---------------------------------------------------------------------------------- CIFAR-10


def cifar_rows_to_nhwc(rows: np.ndarray) -> np.ndarray:
    """(N, 3072) rows of R, G, B planes (each 32x32, row-major) to (N, 32, 32, 3), by index."""
    n = rows.shape[0]
    out = np.zeros((n, 32, 32, 3), dtype=np.uint8)
    for c in range(3):
        for h in range(32):
            for w in range(32):
                out[:, h, w, c] = rows[:, c * 1024 + h * 32 + w]
    return out


def _py2_str(b: bytes) -> bytes:
    """A Python 2 str as cPickle protocol 2 writes it."""
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<i", len(b)) + b


def _py2_int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


class _Memo:
    def __init__(self):
        self.n = 0

    def put(self) -> bytes:
        self.n += 1
        return b"q" + bytes([self.n]) if self.n < 256 else b"r" + struct.pack("<i", self.n)


def py2_cifar_batch(rows: np.ndarray, labels, batch_label: str = "training batch 1 of 5",
                    filenames=None) -> bytes:
    """A CIFAR-10 python batch as Python 2.7 cPickle.dump(d, f, 2) wrote it (numpy 1.x array)."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    n = rows.shape[0]
    filenames = filenames if filenames is not None else [f"image_{i:05d}.png" for i in range(n)]
    m = _Memo()
    out = [b"\x80\x02}", m.put(), b"("]
    # 'data': numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b') + BUILD state
    out += [_py2_str(b"data"), m.put(), b"cnumpy.core.multiarray\n_reconstruct\n", m.put(),
            b"cnumpy\nndarray\n", m.put(), _py2_int(0), b"\x85", _py2_str(b"b"), b"\x87R", m.put(),
            b"(", _py2_int(1), _py2_int(rows.shape[0]), _py2_int(rows.shape[1]), b"\x86",
            b"cnumpy\ndtype\n", m.put(), _py2_str(b"u1"), _py2_int(0), _py2_int(1), b"\x87R", m.put(),
            b"(", _py2_int(3), _py2_str(b"|"), b"NNN", b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff",
            _py2_int(0), b"tb", b"\x89", _py2_str(rows.tobytes()), b"tb"]
    # 'labels': list of ints, APPENDS in groups of 1000 as cPickle does
    out += [_py2_str(b"labels"), m.put(), b"]", m.put()]
    labels = [int(v) for v in labels]
    for i in range(0, len(labels), 1000):
        out += [b"("] + [_py2_int(v) for v in labels[i:i + 1000]] + [b"e"]
    out += [_py2_str(b"batch_label"), m.put(), _py2_str(batch_label.encode()), m.put()]
    out += [_py2_str(b"filenames"), m.put(), b"]", m.put()]
    for i in range(0, n, 1000):
        out += [b"("] + [_py2_str(f.encode()) + m.put() for f in filenames[i:i + 1000]] + [b"e"]
    out += [b"u."]
    return b"".join(out)


def binary_cifar_batch(rows: np.ndarray, labels) -> bytes:
    """A CIFAR-10 binary batch: per image one label byte, then 3072 pixel bytes."""
    rec = np.zeros((rows.shape[0], 3073), dtype=np.uint8)
    rec[:, 0] = labels
    rec[:, 1:] = rows
    return rec.tobytes()


def make_cifar_batches(rng, sizes=(3, 2, 4, 1, 2, 5)):
    """Random (rows, labels) for data_batch_1..5 and test_batch."""
    return [(rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), rng.integers(0, 10, size=n))
            for n in sizes]


def write_tar_gz(path, members: dict, compresslevel: int = 6) -> None:
    """A .tar.gz with the given {name: bytes} regular-file members (plus their directory)."""
    with tarfile.open(path, "w:gz", compresslevel=compresslevel) as tar:
        dirs = sorted({name.split("/")[0] for name in members})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


BATCH_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_cifar_python_archive(path, batches, serialize=None) -> None:
    serialize = serialize or (lambda rows, labels, i: py2_cifar_batch(rows, labels))
    write_tar_gz(path, {f"cifar-10-batches-py/{name}": serialize(rows, labels, i)
                        for i, (name, (rows, labels)) in enumerate(zip(BATCH_NAMES, batches))})


def write_cifar_binary_archive(path, batches, compresslevel: int = 6) -> None:
    write_tar_gz(path, {f"cifar-10-batches-bin/{name}.bin": binary_cifar_batch(rows, labels)
                        for name, (rows, labels) in zip(BATCH_NAMES, batches)}, compresslevel)


def expected_cifar(batches):
    """((x_train, y_train), (x_test, y_test)) as load_data must return them."""
    x_train = np.concatenate([cifar_rows_to_nhwc(r) for r, _ in batches[:5]])
    y_train = np.concatenate([np.asarray(lab, dtype=np.uint8) for _, lab in batches[:5]]).reshape(-1, 1)
    x_test = cifar_rows_to_nhwc(batches[5][0])
    y_test = np.asarray(batches[5][1], dtype=np.uint8).reshape(-1, 1)
    return (x_train, y_train), (x_test, y_test)
