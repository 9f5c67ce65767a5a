"""Read PyTorch weight files without torch and without running pickle code.

Two formats, both returned as ``dict[str, np.ndarray]`` (names as in the ``state_dict``):

* ``read_pth(path)``: what ``torch.save(model.state_dict(), path)`` writes since PyTorch 1.6, a
  zip of ``<prefix>/data.pkl`` (the pickled dict), ``<prefix>/data/<key>`` (one raw storage per
  key) and ``<prefix>/byteorder``. A ``.pth`` pickle names callables that ``pickle.load`` would
  call, so a planted file runs code. Here :meth:`find_class` resolves only the names a saved
  tensor dict uses (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
  ``torch._utils._rebuild_parameter``, the ``torch.*Storage`` classes) to inert stand-ins defined
  below and refuses every other global, naming it. ``persistent_load`` resolves the storage ids to
  records; after unpickling the storages are read from the zip, bounds-checked against each
  tensor's offset, size and stride, and copied into NumPy arrays. torch is never imported.
  The legacy (pre-1.6, not zip) format is refused with a message saying how to re-save.
* ``read_safetensors(path)``: an 8-byte little-endian header length, a JSON header
  ``{name: {"dtype", "shape", "data_offsets"}}`` and the raw data; every offset is checked.

float16 and bfloat16 tensors become float32 (cnnfast computes in float32); other dtypes keep
theirs. Truncated or corrupted files raise :class:`TorchFileError` (a ``ValueError``) naming the
file and what is wrong.
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

__all__ = ["read_pth", "read_safetensors", "read_torch_weights", "TorchFileError", "RefusedPickleError"]

# data.pkl of a state dict is a few hundred bytes per tensor; anything far larger is not one.
_MAX_PICKLE_BYTES = 256 << 20
_MAX_SAFETENSORS_HEADER = 100 << 20


class TorchFileError(ValueError):
    """The file is not a readable PyTorch / safetensors weight file."""


class RefusedPickleError(TorchFileError, pickle.UnpicklingError):
    """The pickle names something outside the structure of a saved tensor dict."""


# ------------------------------------------------------------------------------------------------
# stand-ins for the globals a state-dict pickle names
class _Sealed:
    """The records below are built only by the stand-in functions, which check their fields. A
    pickle's BUILD opcode would otherwise set their slots to anything (a negative stride, say,
    that as_strided would follow out of the buffer): BUILD calls ``__setstate__``, which refuses."""

    __slots__ = ()

    def __setstate__(self, state):
        raise RefusedPickleError(f"refused attempt to set the state of a {type(self).__name__.lstrip('_')} record")

    def __reduce__(self):  # never pickled back out
        raise TypeError(f"{type(self).__name__} records are not picklable")


class _StorageType(_Sealed):
    """Stands for a class such as ``torch.FloatStorage``: only its element type matters."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "UntypedStorage": "u1",
}
_STORAGE_TYPES = {name: _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()}


class _Storage(_Sealed):
    """A persistent id resolved: which zip record holds the data, its element type and count."""

    __slots__ = ("key", "type", "numel")

    def __init__(self, key, storage_type, numel):
        self.key, self.type, self.numel = key, storage_type, numel


class _Tensor(_Sealed):
    """What ``_rebuild_tensor_v2`` would build: a strided view of a storage."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _int_tuple(value, what):
    if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                               for v in value):
        raise RefusedPickleError(f"refused tensor: {what} must be a tuple of non-negative ints, got {value!r}")
    return value


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records the view, calls nothing."""
    if not isinstance(storage, _Storage):
        raise RefusedPickleError("refused tensor: its storage is not a persistent storage record")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise RefusedPickleError(f"refused tensor: storage offset {storage_offset!r}")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise RefusedPickleError(f"refused tensor: size {size} and stride {stride} differ in rank")
    if backward_hooks and not isinstance(backward_hooks, dict):
        raise RefusedPickleError("refused tensor with backward hooks")
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """Stand-in for ``torch._utils._rebuild_parameter(_with_state)``: a Parameter is its tensor."""
    if not isinstance(data, _Tensor):
        raise RefusedPickleError("refused Parameter whose data is not a tensor")
    return data


class _OrderedDict(dict):
    """Stand-in for ``collections.OrderedDict`` (dicts keep insertion order). A state dict carries
    a ``_metadata`` attribute (module versions), set by the pickle's BUILD; it is kept aside."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise RefusedPickleError("refused OrderedDict state that is not a dict")
        self.__dict__["_pickle_state"] = state


_ALLOWED = {
    ("collections", "OrderedDict"): _OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): stype for name, stype in _STORAGE_TYPES.items()},
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, data, source):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.source = source

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise RefusedPickleError(
                f"read_pth: refused global {module}.{name} in {self.source}: a state dict holds only "
                f"tensors (torch._utils._rebuild_tensor_v2 of torch.*Storage) in an OrderedDict; "
                f"the file may be a whole pickled model or malicious, and it is not unpickled") from None

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel), as torch.serialization writes it
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str)
                or not isinstance(pid[4], int) or isinstance(pid[4], bool) or pid[4] < 0):
            raise RefusedPickleError(f"read_pth: refused persistent id {pid!r} in {self.source}: "
                                     f"expected ('storage', torch.<Type>Storage, key, location, numel)")
        return _Storage(pid[2], pid[1], pid[4])


# ------------------------------------------------------------------------------------------------
def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 is the top half of a float32: widen the 16-bit words into the high halves."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _as_compute_dtype(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    return arr


def _find_archive_prefix(names, path):
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        raise TorchFileError(f"read_pth: {path} is a TorchScript archive (torch.jit.save), not a "
                             f"state dict; save model.state_dict() with torch.save instead")
    if len(pickles) != 1:
        raise TorchFileError(f"read_pth: {path} is a zip file but not a PyTorch one: expected exactly one "
                             f"'<name>/data.pkl' record, found {len(pickles)}")
    return pickles[0][:-len("data.pkl")]


def _storage_array(zf, prefix, storage, byteorder, cache, path):
    """The storage's elements as a 1-D array (native byte order), read once per key."""
    if storage.key in cache:
        return cache[storage.key]
    name = f"{prefix}data/{storage.key}"
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise TorchFileError(f"read_pth: {path} has no record {name!r} for storage {storage.key!r}; "
                             f"the file is truncated or corrupted") from None
    code = storage.type.dtype
    itemsize = 2 if code == "bfloat16" else np.dtype(code).itemsize
    nbytes = storage.numel * itemsize
    if info.file_size < nbytes:
        raise TorchFileError(f"read_pth: {path}: record {name!r} holds {info.file_size} bytes, but its "
                             f"{storage.type.name} of {storage.numel} elements needs {nbytes}")
    raw = bytearray(nbytes)   # writable, so a tensor that is its whole storage needs no copy
    try:
        with zf.open(info) as f:
            got = f.readinto(raw)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise TorchFileError(f"read_pth: {path}: cannot read record {name!r} ({e}); the file is "
                             f"truncated or corrupted") from None
    if got != nbytes:
        raise TorchFileError(f"read_pth: {path}: record {name!r} ended after {got} of {nbytes} bytes")
    order = ">" if byteorder == "big" else "<"
    if code == "bfloat16":
        arr = _bfloat16_to_float32(np.frombuffer(raw, dtype=order + "u2"))
    else:
        dt = np.dtype(code)
        arr = np.frombuffer(raw, dtype=dt.newbyteorder(order) if dt.itemsize > 1 else dt)
        arr = arr.astype(dt.newbyteorder("="), copy=False)
    cache[storage.key] = arr
    return arr


def _tensor_to_numpy(t: _Tensor, key, zf, prefix, byteorder, cache, sole_user, path) -> np.ndarray:
    flat = _storage_array(zf, prefix, t.storage, byteorder, cache, path)
    count = math.prod(t.size)
    if not count:
        return _as_compute_dtype(np.empty(t.size, dtype=flat.dtype))
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= flat.size:
        raise TorchFileError(f"read_pth: {path}: tensor {key!r} (size {t.size}, stride {t.stride}, "
                             f"offset {t.offset}) reaches element {last} of a storage of {flat.size}")
    view = np.lib.stride_tricks.as_strided(flat[t.offset:], shape=t.size,
                                           strides=[s * flat.itemsize for s in t.stride], writeable=False)
    if sole_user and t.offset == 0 and count == flat.size and view.flags.c_contiguous and flat.flags.writeable:
        return _as_compute_dtype(flat.reshape(t.size))   # the tensor is its storage, which nothing else shares
    return _as_compute_dtype(np.array(view, order="C"))  # an owned, C-ordered copy


def _collect(obj, path):
    """The unpickled top level as a list of (name, _Tensor); anything else is refused by name."""
    if not isinstance(obj, dict):
        raise TorchFileError(f"read_pth: {path} holds a {type(obj).__name__}, not a state dict "
                             f"(a mapping of names to tensors)")
    out = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TorchFileError(f"read_pth: {path}: state dict key {key!r} is not a string")
        if not isinstance(value, _Tensor):
            hint = (" (a nested dict: is this a training checkpoint? save its model state dict instead)"
                    if isinstance(value, dict) else "")
            raise TorchFileError(f"read_pth: {path}: entry {key!r} is a {type(value).__name__}, not a "
                                 f"tensor{hint}")
        out.append((key, value))
    return out


def read_pth(path) -> dict:
    """The tensors of a ``torch.save``'d state dict (zip format) as ``{name: np.ndarray}``."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80":
        raise TorchFileError(f"read_pth: {path} is in PyTorch's legacy (pre-1.6) pickle format, which is "
                             f"not supported; re-save it with torch.save(torch.load(path), new_path) "
                             f"(the zip format, the default since PyTorch 1.6)")
    if head != b"PK\x03\x04":
        raise TorchFileError(f"read_pth: {path} is not a PyTorch zip file (it does not start with a zip "
                             f"header)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise TorchFileError(f"read_pth: {path} is not a readable zip file ({e}); truncated or corrupted?") \
            from None
    with zf:
        prefix = _find_archive_prefix(zf.namelist(), path)
        byteorder = "little"
        if f"{prefix}byteorder" in zf.namelist():
            byteorder = zf.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise TorchFileError(f"read_pth: {path}: unknown byte order {byteorder!r}")
        info = zf.getinfo(f"{prefix}data.pkl")
        if info.file_size > _MAX_PICKLE_BYTES:
            raise TorchFileError(f"read_pth: {path}: data.pkl declares {info.file_size} bytes, more than a "
                                 f"state dict's index ever needs ({_MAX_PICKLE_BYTES})")
        try:
            data = zf.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise TorchFileError(f"read_pth: {path}: cannot read data.pkl ({e}); truncated or corrupted?") \
                from None
        try:
            obj = _StateDictUnpickler(data, path).load()
        except RefusedPickleError:
            raise
        except Exception as e:  # a damaged pickle stream: report it, never crash
            raise TorchFileError(f"read_pth: {path}: data.pkl is not a valid pickle ({type(e).__name__}: "
                                 f"{e})") from None
        tensors = _collect(obj, path)
        users: dict = {}
        for _, t in tensors:
            users[t.storage.key] = users.get(t.storage.key, 0) + 1
        cache: dict = {}
        return {key: _tensor_to_numpy(t, key, zf, prefix, byteorder, cache, users[t.storage.key] == 1, path)
                for key, t in tensors}


# ------------------------------------------------------------------------------------------------
_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "I64": "<i8", "I32": "<i4",
    "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}


def read_safetensors(path) -> dict:
    """The tensors of a ``.safetensors`` file as ``{name: np.ndarray}`` (``__metadata__`` dropped)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise TorchFileError(f"read_safetensors: {path} is {size} bytes, too short for a header")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(_MAX_SAFETENSORS_HEADER, size - 8):
            raise TorchFileError(f"read_safetensors: {path}: header length {header_len} does not fit a "
                                 f"file of {size} bytes; not a safetensors file, or truncated")
        try:
            header = json.loads(f.read(header_len).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TorchFileError(f"read_safetensors: {path}: the header is not valid JSON ({e})") from None
        if not isinstance(header, dict):
            raise TorchFileError(f"read_safetensors: {path}: the header is not a JSON object")
        data_start, data_len = 8 + header_len, size - 8 - header_len
        out = {}
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            out[key] = _read_safetensors_entry(f, key, entry, data_start, data_len, path)
    return out


def _read_safetensors_entry(f, key, entry, data_start, data_len, path):
    where = f"read_safetensors: {path}: tensor {key!r}"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise TorchFileError(f"{where}: expected {{'dtype', 'shape', 'data_offsets'}}, got {entry!r}")
    code = _SAFETENSORS_DTYPES.get(entry["dtype"])
    if code is None:
        raise TorchFileError(f"{where}: unsupported dtype {entry['dtype']!r} (supported: "
                             f"{', '.join(_SAFETENSORS_DTYPES)})")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise TorchFileError(f"{where}: shape must be a list of non-negative ints, got {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_len):
        raise TorchFileError(f"{where}: data_offsets {offsets!r} fall outside the {data_len} data bytes; "
                             f"truncated or corrupted?")
    itemsize = 2 if code == "bfloat16" else np.dtype(code).itemsize
    nbytes = math.prod(shape) * itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise TorchFileError(f"{where}: {offsets[1] - offsets[0]} data bytes for shape {shape} of "
                             f"{entry['dtype']} (needs {nbytes})")
    f.seek(data_start + offsets[0])
    raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise TorchFileError(f"{where}: the file ended early")
    if code == "bfloat16":
        arr = _bfloat16_to_float32(np.frombuffer(raw, dtype="<u2"))
    else:
        arr = np.frombuffer(raw, dtype=code).astype(np.dtype(code).newbyteorder("="))
    return _as_compute_dtype(arr.reshape(shape))


def read_torch_weights(path) -> dict:
    """``read_safetensors`` for ``.safetensors`` files, else ``read_pth`` (by content, not name)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04" or head[:1] == b"\x80":
        return read_pth(path)
    return read_safetensors(path)  # its header checks name what is wrong with anything else
