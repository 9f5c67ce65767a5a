"""Fuzz targets for every loader of untrusted files: saved models and weights, PyTorch weight
archives, and the data-set readers (gzip IDX, CIFAR-10 python batches and archives).

Each target takes raw bytes and either returns normally or raises the one exception type its
loader documents for a bad file (``InvalidFileError`` for cnnfast files, ``DatasetCorruptError``
for data sets, ``ValueError`` for PyTorch archives). Anything else - a crash, another exception
type, a hang, unbounded memory, a file written or code run - is a finding.

Two kinds of inputs reach the loaders:
  * raw bytes (atheris mutates them freely: truncations, flipped header bytes, bad CRCs), and
  * structured mutations (``mutate_archive``): a valid archive whose members are decoded, changed
    (JSON values replaced, .npy headers rewritten, members added, renamed, duplicated) and zipped
    again with correct checksums, which is how a forged file gets past the zip layer.

Used by ``fuzz/run.py`` (atheris when installed, else hypothesis) and, with a handful of
examples, by ``tests/test_file_safety.py``.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import pathlib
import pickle
import random
import struct
import tarfile
import tempfile
import warnings
import zipfile

import numpy as np

# A directory the fuzzed files are written to; loaders take paths.
_TMP = pathlib.Path(tempfile.mkdtemp(prefix="cnnfast-fuzz-"))
# Set by a planted payload if any loader ever runs code from a file.
CANARY = _TMP / "CODE-WAS-RUN"


class Canary:
    """Unpickling this object creates CANARY: a loader that unpickles would leave the file behind."""

    def __reduce__(self):
        return (open, (str(CANARY), "w"))


def _model():
    from cnnfast import layers, models
    from cnnfast.utils import set_random_seed
    set_random_seed(0)
    m = models.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                           layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
                           layers.Dropout(0.1), layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


_MODEL = None


def target_model():
    """The model the weight targets load into (built once)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = _model()
    return _MODEL


# -- seeds ------------------------------------------------------------------------------------------
def seed_keras() -> bytes:
    m = _model()
    m.fit(np.zeros((4, 6, 6, 1), np.float32), np.zeros(4, int), verbose=0)
    path = _TMP / "seed.keras"
    m.save(path)
    return path.read_bytes()


def seed_weights() -> bytes:
    path = _TMP / "seed.weights.npz"
    target_model().save_weights(path)
    return path.read_bytes()


def seed_torch_npz() -> bytes:
    m = target_model()
    arrays = {}
    for i, w in enumerate(m.get_weights()):
        arrays[f"t{i}"] = w.T if w.ndim == 2 else (w.transpose(3, 2, 0, 1) if w.ndim == 4 else w)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def seed_idx(images: bool = True) -> bytes:
    arr = (np.arange(2 * 4 * 3) % 251).astype(np.uint8).reshape(2, 4, 3) if images else \
        np.arange(5, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return gzip.compress(header + arr.tobytes(), mtime=0)


def seed_cifar_batch() -> bytes:
    data = (np.arange(3 * 3072) % 256).astype(np.uint8).reshape(3, 3072)
    return pickle.dumps({b"batch_label": b"b", b"labels": [1, 2, 3], b"data": data,
                         b"filenames": [b"a", b"b", b"c"]}, protocol=2)


def seed_cifar_archive() -> bytes:
    batch = seed_cifar_batch()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(batch)
            tar.addfile(info, io.BytesIO(batch))
    return buf.getvalue()


# -- structured mutation --------------------------------------------------------------------------
_INTERESTING = [None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 1e308, -1e308, 0.5, "",
                "relu", "../x", "os.system", "Lambda", "__import__", [], {}, [None], {"class_name": "Dense"},
                "x" * 1000, [0] * 1000, 10**400]


def _mutate_json(obj, rnd: random.Random, depth=0):
    """Replace, delete or add one value somewhere in a JSON document."""
    if isinstance(obj, dict) and obj and rnd.random() < 0.8:
        key = rnd.choice(sorted(obj, key=str))
        choice = rnd.random()
        if choice < 0.15 and depth > 0:
            del obj[key]
        elif choice < 0.25:
            obj[rnd.choice(["units", "name", "class_name", "config", "layers", "module", "registered_name",
                            "extra"])] = rnd.choice(_INTERESTING)
        elif isinstance(obj[key], (dict, list)) and rnd.random() < 0.7:
            obj[key] = _mutate_json(obj[key], rnd, depth + 1)
        else:
            obj[key] = rnd.choice(_INTERESTING)
        return obj
    if isinstance(obj, list) and obj and rnd.random() < 0.8:
        i = rnd.randrange(len(obj))
        choice = rnd.random()
        if choice < 0.15:
            obj.pop(i)
        elif choice < 0.3:
            obj.insert(i, obj[i] if rnd.random() < 0.5 else rnd.choice(_INTERESTING))
        elif isinstance(obj[i], (dict, list)):
            obj[i] = _mutate_json(obj[i], rnd, depth + 1)
        else:
            obj[i] = rnd.choice(_INTERESTING)
        return obj
    return rnd.choice(_INTERESTING)


def _npy_bytes(rnd: random.Random, name: str, original: bytes) -> bytes:
    """A forged .npy: another dtype, shape, order or version, an object array, or garbage."""
    choice = rnd.random()
    if choice < 0.15:
        buf = io.BytesIO()
        np.save(buf, np.array([Canary()], dtype=object), allow_pickle=True)
        return buf.getvalue()
    if choice < 0.55:
        dtype = rnd.choice(["<f4", ">f4", "<f8", "<i8", "<u1", "|b1", "<U4", "|O", "<c8", "V4", "[('a','<f4')]"])
        shape = rnd.choice([(), (0,), (3,), (2**40,), (2**31, 2**31), (-1,), (1,) * 40, (5, 2, 3, 4)])
        header = "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (
            repr(dtype) if not dtype.startswith("[") else dtype, rnd.choice(["False", "True", "1", "'x'"]),
            repr(shape))
        magic = rnd.choice([b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"\x93NUMPY\x03\x00", b"\x93NUMPY\x09\x00"])
        hb = header.encode("latin1")
        pad = 16 - (len(magic) + 2 + len(hb) + 1) % 16
        hb += b" " * pad + b"\n"
        length = struct.pack("<H", len(hb)) if magic[6] == 1 else struct.pack("<I", len(hb))
        body = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 4, 12, 64])))
        return magic + length + hb + body
    data = bytearray(original)
    for _ in range(rnd.randint(1, 4)):
        if data:
            data[rnd.randrange(min(len(data), 128))] = rnd.randrange(256)
    if rnd.random() < 0.3:
        data = data[:rnd.randrange(len(data) + 1)]
    return bytes(data)


def _mutate_npz(blob: bytes, rnd: random.Random) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    except Exception:
        return blob
    if not members:
        return blob
    i = rnd.randrange(len(members))
    name, data = members[i]
    choice = rnd.random()
    if choice < 0.6:
        members[i] = (name, _npy_bytes(rnd, name, data))
    elif choice < 0.7:
        members.append((name, data))  # duplicate
    elif choice < 0.8:
        members[i] = (rnd.choice(["../evil.npy", "/abs.npy", "a/../../b.npy", "x.txt", "C:\\w.npy",
                                  name.replace(".npy", "_x.npy")]), data)
    elif choice < 0.9:
        members.pop(i)
    else:
        members.append((f"extra{rnd.randrange(10)}.npy", _npy_bytes(rnd, "extra", data)))
    return _zip(members, rnd)


def _zip(members, rnd: random.Random) -> bytes:
    buf = io.BytesIO()
    compression = rnd.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", compression) as zf:
        warnings.simplefilter("ignore")  # duplicate names are intended
        for name, data in members:
            try:
                zf.writestr(name, data)
            except Exception:
                pass
    return buf.getvalue()


def mutate_archive(blob: bytes, seed: int) -> bytes:
    """One structured mutation of a .keras / .npz zip (see the module docstring)."""
    rnd = random.Random(seed)
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    except Exception:
        return blob
    if not members:
        return blob
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(len(members))
        name, data = members[i]
        if name.endswith(".json") and rnd.random() < 0.85:
            try:
                doc = json.loads(data)
                data = json.dumps(_mutate_json(doc, rnd), allow_nan=True).encode()
            except Exception:
                data = data[: rnd.randrange(len(data) + 1)]
        elif name.endswith(".npz") and rnd.random() < 0.85:
            data = _mutate_npz(data, rnd)
        elif name.endswith(".npy"):
            data = _npy_bytes(rnd, name, data)
        elif rnd.random() < 0.5:
            data = data[: rnd.randrange(len(data) + 1)]
        members[i] = (name, data)
        if rnd.random() < 0.1:
            members.append((rnd.choice(["../evil.json", "payload.py", name, "optimizer.npz"]), data))
    return _zip(members, rnd)


# -- targets ------------------------------------------------------------------------------------------
def _write(name: str, data: bytes) -> pathlib.Path:
    path = _TMP / name
    path.write_bytes(data)
    return path


def _check_canary():
    if CANARY.exists():
        CANARY.unlink()
        raise AssertionError("a loader ran code from the file (the canary file was created)")


def load_keras(data: bytes) -> None:
    from cnnfast import models
    from cnnfast.saving import InvalidFileError
    path = _write("fuzz.keras", data)
    try:
        models.load_model(path)
    except InvalidFileError:
        pass
    finally:
        _check_canary()


def load_weights(data: bytes) -> None:
    from cnnfast.saving import InvalidFileError
    path = _write("fuzz.weights.npz", data)
    try:
        target_model().load_weights(path)
    except InvalidFileError:
        pass
    finally:
        _check_canary()


def load_torch_npz(data: bytes) -> None:
    from cnnfast.saving import load_torch_state_dict
    path = _write("fuzz_torch.npz", data)
    try:
        load_torch_state_dict(target_model(), path)
    except ValueError:  # InvalidFileError is a ValueError; so are shape/count mismatches
        pass
    finally:
        _check_canary()


def read_idx(data: bytes) -> None:
    from cnnfast.datasets._fetch import DatasetCorruptError
    from cnnfast.datasets._idx import read_idx as _read
    path = _write("fuzz-idx.gz", data)
    try:
        arr = _read(path)
        assert arr.dtype == np.uint8
    except DatasetCorruptError:
        pass


def cifar_batch(data: bytes) -> None:
    from cnnfast.datasets import cifar10
    from cnnfast.datasets._fetch import DatasetCorruptError
    try:
        cifar10._python_batch(data, "fuzz")
    except DatasetCorruptError:
        pass
    finally:
        _check_canary()


def cifar_archive(data: bytes) -> None:
    from cnnfast.datasets import cifar10
    from cnnfast.datasets._fetch import DatasetCorruptError
    path = _write("fuzz-cifar.tar.gz", data)
    try:
        cifar10.read_python_archive(path)
    except DatasetCorruptError:
        pass
    finally:
        _check_canary()


# name -> (target, seed factory, structured mutator or None)
TARGETS = {
    "keras": (load_keras, seed_keras, mutate_archive),
    "weights": (load_weights, seed_weights, mutate_archive),
    "torch_npz": (load_torch_npz, seed_torch_npz, mutate_archive),
    "idx": (read_idx, seed_idx, None),
    "cifar_batch": (cifar_batch, seed_cifar_batch, None),
    "cifar_archive": (cifar_archive, seed_cifar_archive, None),
}


def memory_limit(megabytes: int) -> None:
    """Cap this process's address space so an unbounded allocation fails fast as MemoryError."""
    import resource
    limit = megabytes << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


if os.environ.get("CNNFAST_FUZZ_MEMORY_MB"):
    memory_limit(int(os.environ["CNNFAST_FUZZ_MEMORY_MB"]))
