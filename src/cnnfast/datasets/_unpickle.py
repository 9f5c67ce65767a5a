"""A restricted unpickler for the CIFAR-10 "python version" batches.

Each batch is a Python 2 pickle (protocol 2) of a dict ``{'batch_label': str, 'labels': [int],
'data': numpy uint8 array (N, 3072), 'filenames': [str]}``. Plain ``pickle.load`` on such a file
runs any callable the file names, so a planted file executes code (the hole reported against
Keras's reader). Here :meth:`find_class` resolves exactly the names a NumPy array pickle uses
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``, plus
``_codecs.encode`` and ``numpy.core.numeric._frombuffer`` emitted by Python 3 writers) to inert
stand-ins defined below, and refuses every other global. NumPy itself is never called while
unpickling; the stand-ins only record their arguments, which are then checked (uint8 only, a
consistent shape and byte count) and turned into an array with ``np.frombuffer``.
"""
from __future__ import annotations

import io
import math
import pickle

import numpy as np

__all__ = ["restricted_loads", "RefusedPickleError"]


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle names something outside the allowed NumPy-array structure."""


_NDARRAY = object()  # stands for the class numpy.ndarray; deliberately not callable


class _DType:
    """Stand-in for ``numpy.dtype(spec, align, copy)``; only unsigned bytes are accepted."""

    __slots__ = ("spec",)

    def __init__(self, spec, align=False, copy=False):
        if isinstance(spec, bytes):
            spec = spec.decode("ascii", "replace")
        if spec not in ("u1", "|u1", "uint8", "B"):
            raise RefusedPickleError(f"refused dtype {spec!r}: CIFAR-10 data is uint8")
        self.spec = "u1"

    def __setstate__(self, state):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags) for plain dtypes
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("|", b"|", "=", b"="):
            raise RefusedPickleError(f"refused dtype state {state!r}")
        if any(s is not None for s in state[2:5]):
            raise RefusedPickleError("refused structured or sub-array dtype")


class _Array:
    """Stand-in for an ndarray being unpickled: holds shape, byte order and raw bytes."""

    __slots__ = ("shape", "fortran", "raw")

    def __init__(self):
        self.shape = None
        self.fortran = False
        self.raw = None

    def __setstate__(self, state):
        # ndarray.__reduce__ state: (version, shape, dtype, is_fortran, raw bytes)
        if not isinstance(state, tuple) or len(state) != 5:
            raise RefusedPickleError("refused ndarray state: expected a 5-tuple")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DType) or getattr(dtype, "spec", None) != "u1":
            raise RefusedPickleError("refused ndarray state: dtype is not a plain uint8 dtype")
        self._set(shape, fortran, raw)

    def _set(self, shape, fortran, raw):
        if isinstance(raw, str):  # a Python 2 str read with encoding="latin1"
            raw = raw.encode("latin1")
        if isinstance(raw, bytearray):
            raw = bytes(raw)
        if not isinstance(raw, bytes):
            raise RefusedPickleError(f"refused ndarray data of type {type(raw).__name__}")
        if (not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape)
                or math.prod(shape) != len(raw)):
            raise RefusedPickleError(f"refused ndarray: shape {shape!r} does not match {len(raw)} data bytes")
        self.shape, self.fortran, self.raw = shape, bool(fortran), raw

    def to_numpy(self) -> np.ndarray:
        if self.raw is None:
            raise RefusedPickleError("ndarray without data")
        return np.frombuffer(self.raw, dtype=np.uint8).reshape(self.shape, order="F" if self.fortran else "C")


def _reconstruct(subtype, shape, typecode):
    """Stand-in for ``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')``."""
    if subtype is not _NDARRAY:
        raise RefusedPickleError("refused _reconstruct of a type other than numpy.ndarray")
    return _Array()


def _frombuffer(buf, dtype, shape, order):
    """Stand-in for ``numpy.core.numeric._frombuffer`` (protocol-5 pickles)."""
    if not isinstance(dtype, _DType) or getattr(dtype, "spec", None) != "u1":
        raise RefusedPickleError("refused _frombuffer with a dtype other than uint8")
    a = _Array()
    a._set(shape, order == "F", buf)
    return a


def _codecs_encode(obj, encoding="utf-8"):
    """Stand-in for ``_codecs.encode``: how Python 3 writes bytes at protocol 2."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedPickleError("refused _codecs.encode call")
    return obj.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DType,
    ("_codecs", "encode"): _codecs_encode,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise RefusedPickleError(f"refused global {module}.{name}: a CIFAR-10 batch holds only "
                                     f"a dict of strings, integer lists and a uint8 array") from None

    def persistent_load(self, pid):
        raise RefusedPickleError("refused persistent id")


def _to_plain(obj, depth=0):
    """Replace array stand-ins by NumPy arrays and bytes keys by str, refusing anything else."""
    if depth > 4:
        raise RefusedPickleError("refused: nesting deeper than a CIFAR-10 batch")
    if isinstance(obj, _Array):
        return obj.to_numpy()
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, bytes):
                k = k.decode("utf-8", "replace")
            if not isinstance(k, str):
                raise RefusedPickleError(f"refused dict key of type {type(k).__name__}")
            out[k] = _to_plain(v, depth + 1)
        return out
    if isinstance(obj, list):
        return [_to_plain(v, depth + 1) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    raise RefusedPickleError(f"refused object of type {type(obj).__name__}")


def restricted_loads(data: bytes):
    """Unpickle a CIFAR-style batch: plain containers plus uint8 arrays, nothing callable."""
    obj = _Unpickler(io.BytesIO(data), encoding="bytes").load()
    return _to_plain(obj)
