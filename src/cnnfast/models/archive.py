"""The ``.keras`` model file and the ``.weights.npz`` weights file: format, writing, safe reading.

``model.save("m.keras")`` writes a zip archive with exactly these members:

* ``metadata.json`` — ``{"format": "cnnfast.keras", "format_version": 1, "cnnfast_version",
  "date_saved"}``.
* ``config.json`` — ``{"class_name": "Sequential" | "Functional", "config": <model config>,
  "compile_config": {"optimizer", "loss", "metrics", "weighted_metrics", "loss_weights"} | null}``.
  Every object in it is ``{"class_name", "config"}`` data; see ``serialization.py``.
* ``model.weights.npz`` — a NumPy ``.npz`` (uncompressed) with one float32 array per weight, named
  as Keras 3 does by layer class and position, not by layer name: ``layers/conv2d/vars/0``,
  ``layers/conv2d_1/vars/0``, ``layers/dense/vars/1``... (a nested model adds
  ``layers/sequential/`` in front), in ``model.weights`` order.
* ``optimizer.npz`` (when compiled and trained) — ``iterations`` (int64 scalar) and the optimizer's
  flat state vectors, e.g. ``flat/momentum`` and ``flat/velocity`` for Adam, laid out like the
  model's trainable weights concatenated in ``model.trainable_weights`` order. Restoring it makes
  training resume exactly where it stopped.

``save_weights("w.weights.npz")`` writes just the weight arrays (same names) plus
``__cnnfast__`` (a 0-d unicode array holding ``{"format": "cnnfast.weights", "format_version": 1}``).

Writing: to a temporary file in the destination directory, flushed and fsync'd, then
``os.replace``'d over the destination (and the directory fsync'd), so a crash never leaves a
half-written file under the real name.

Reading never unpickles and never runs code: JSON is parsed with size limits; class names go
through an allow-list; member names are checked (no ``..``, absolute paths, duplicates, unknown
members); every member's declared and actual size is bounded (zip bombs), compressed members must
not expand more than ``MAX_RATIO`` times; each ``.npy`` header is parsed first and its dtype and
shape are checked against what the model expects before any array memory is allocated; arrays are
read with ``allow_pickle=False``. Anything wrong raises :class:`InvalidFileError` naming the file
and the problem.
"""
from __future__ import annotations

import datetime
import io
import json
import math
import os
import secrets
import stat
import struct
import tokenize
import zipfile
import zlib

import numpy as np

try:
    from lzma import LZMAError as _LZMAError
except ImportError:  # a Python built without lzma: zipfile cannot read LZMA members at all
    class _LZMAError(Exception):
        pass

__all__ = ["InvalidFileError", "write_atomic", "read_archive", "npz_bytes", "read_npz", "FORMAT",
           "WEIGHTS_FORMAT", "MEMBERS"]

FORMAT = "cnnfast.keras"
WEIGHTS_FORMAT = "cnnfast.weights"
FORMAT_VERSION = 1
MEMBERS = ("metadata.json", "config.json", "model.weights.npz", "optimizer.npz")
MAX_JSON_BYTES = 64 << 20
MAX_ARRAY_BYTES = 16 << 30
MAX_RATIO = 200
MAX_ENTRIES = 1_000_000


class InvalidFileError(ValueError):
    """A model or weights file cnnfast refuses to load (corrupt, truncated, forged or foreign)."""


# What zipfile and its decompressors raise on damaged input, besides BadZipFile: a forged
# "version needed" (NotImplementedError), an unsupported method or an encrypted member
# (NotImplementedError, RuntimeError), offsets before the start (ValueError: negative seek),
# corrupt deflate/bzip2/LZMA streams (zlib.error, OSError, lzma.LZMAError), short reads
# (EOFError) and malformed headers (struct.error).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, _LZMAError, struct.error, EOFError, OSError,
               ValueError, NotImplementedError, RuntimeError)


# -- writing --------------------------------------------------------------------------------------
def _fsync_directory(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:  # some filesystems cannot fsync a directory; the rename is done anyway
        pass
    finally:
        os.close(dfd)


def _create_temporary(path: str) -> tuple[int, str]:
    """A new, empty, uniquely named file next to ``path``, opened for writing.

    Its permissions are those ``open(path, "wb")`` would give the final file: an existing
    file's mode is kept, a new file gets ``0o666`` minus the umask (applied by the kernel to the
    ``os.open`` mode, so the process-wide umask is never read or changed).
    """
    directory, base = os.path.split(os.path.abspath(path))
    try:
        st = os.stat(path)
        keep_mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None
    except OSError:
        keep_mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if keep_mode is not None:
            try:
                os.fchmod(fd, keep_mode)
            except (AttributeError, OSError):  # no fchmod (Windows) or not permitted: keep the default
                pass
        return fd, tmp
    raise FileExistsError(f"cannot create a temporary file next to {path}")


def write_atomic(path: str, write, overwrite: bool = True) -> None:
    """Create ``path`` by calling ``write(fileobj)`` on a temporary file in the same directory,
    fsync it, ``os.replace`` it over ``path``, then fsync the directory.

    A crash or an exception at any point leaves either the old file or the new one under
    ``path``, never a partial one, and no temporary file behind (except after a power loss). The
    new file gets the permissions ``open()`` would give it (umask honoured, an overwritten file's
    mode kept).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path}: directory {directory} does not exist")
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def npz_bytes(arrays: dict) -> bytes:
    """An uncompressed .npz holding ``arrays`` (names -> arrays), as bytes."""
    buf = io.BytesIO()
    for name in arrays:
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"bad array name {name!r}")
    np.savez(buf, **arrays)
    return buf.getvalue()


def json_bytes(obj) -> bytes:
    return json.dumps(obj, indent=1, allow_nan=False).encode("utf-8")


def metadata() -> dict:
    from .. import __version__
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "cnnfast_version": __version__,
            "date_saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S")}


# -- reading ----------------------------------------------------------------------------------------
def _check_name(name, source):
    bad = (not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name
           or any(part in ("", ".", "..") for part in name.split("/")))
    if bad:
        raise InvalidFileError(f"{source}: unsafe member name {name!r} (path traversal or absolute path)")


def _read_member(zf, info, limit, source):
    if info.file_size > limit:
        raise InvalidFileError(f"{source}: member {info.filename!r} declares {info.file_size} bytes, "
                               f"more than the {limit}-byte limit")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * info.compress_size + (1 << 20):
        raise InvalidFileError(f"{source}: member {info.filename!r} expands {info.file_size} bytes from "
                               f"{info.compress_size}: refused as a zip bomb")
    if info.flag_bits & 0x1:
        raise InvalidFileError(f"{source}: member {info.filename!r} is encrypted; cnnfast files never are")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except _ZIP_ERRORS as exc:
        raise InvalidFileError(f"{source}: member {info.filename!r} is corrupt or truncated "
                               f"({type(exc).__name__}: {exc})") from exc
    if len(data) > limit or len(data) != info.file_size:
        raise InvalidFileError(f"{source}: member {info.filename!r} has {len(data)} bytes but declares "
                               f"{info.file_size}")
    return data


def read_archive(path, allowed=MEMBERS, limits=None) -> dict:
    """The members of a zip at ``path`` as bytes, after the checks in the module docstring."""
    source = os.fspath(path)
    limits = limits or {}
    try:
        zf = zipfile.ZipFile(source)
    except FileNotFoundError:
        raise
    except _ZIP_ERRORS as exc:
        raise InvalidFileError(f"{source}: not a valid zip archive ({type(exc).__name__}: {exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > len(allowed):
            raise InvalidFileError(f"{source}: {len(infos)} members, expected at most {len(allowed)}")
        out = {}
        for info in infos:
            _check_name(info.filename, source)
            if info.filename not in allowed:
                raise InvalidFileError(f"{source}: unexpected member {info.filename!r}; a cnnfast file "
                                       f"holds only {list(allowed)}")
            if info.filename in out:
                raise InvalidFileError(f"{source}: duplicate member {info.filename!r}")
            limit = limits.get(info.filename, MAX_JSON_BYTES if info.filename.endswith(".json")
                               else MAX_ARRAY_BYTES)
            out[info.filename] = _read_member(zf, info, limit, source)
    return out


def parse_json(data: bytes, what: str):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidFileError(f"{what}: invalid JSON ({type(exc).__name__}: {exc})") from None


_ALLOWED_DTYPES = (np.dtype(np.float32), np.dtype(np.int64))
# NumPy parses a .npy header with the tokenizer and ast.literal_eval: a malformed one can raise
# any of these (an unterminated header gives tokenize.TokenError).
_NPY_HEADER_ERRORS = (ValueError, EOFError, SyntaxError, TypeError, tokenize.TokenError, RecursionError)


def read_npz(data: bytes, source: str, expected: dict | None = None, extra_unicode=()) -> dict:
    """Arrays of an .npz given as bytes, safely.

    ``expected``: ``{name: (shape, dtype)}``; when given, every array must be listed there with
    that shape and dtype (checked from the header, before allocating). Arrays named in
    ``extra_unicode`` may be small unicode strings (metadata).
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise InvalidFileError(f"{source}: not a valid .npz archive ({type(exc).__name__}: {exc})") from exc
    out = {}
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise InvalidFileError(f"{source}: too many arrays ({len(infos)})")
        for info in infos:
            _check_name(info.filename, source)
            if not info.filename.endswith(".npy"):
                raise InvalidFileError(f"{source}: unexpected member {info.filename!r} (not .npy)")
            name = info.filename[:-4]
            if name in out:
                raise InvalidFileError(f"{source}: duplicate array {name!r}")
            raw = _read_member(zf, info, len(data) if info.compress_type == zipfile.ZIP_STORED
                               else MAX_ARRAY_BYTES, source)
            f = io.BytesIO(raw)
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except _NPY_HEADER_ERRORS as exc:
                raise InvalidFileError(f"{source}: array {name!r} has a bad header "
                                       f"({type(exc).__name__}: {exc})") from exc
            if dtype.hasobject:
                raise InvalidFileError(f"{source}: array {name!r} holds Python objects; refused (no pickle)")
            if name in extra_unicode:
                if dtype.kind != "U" or shape != () or dtype.itemsize > 1 << 20:
                    raise InvalidFileError(f"{source}: array {name!r} must be a short string")
            else:
                if dtype not in _ALLOWED_DTYPES:
                    raise InvalidFileError(f"{source}: array {name!r} has dtype {dtype}; expected float32")
                if expected is not None:
                    want = expected.get(name)
                    if want is None:
                        raise InvalidFileError(f"{source}: unexpected array {name!r} (no such weight in "
                                               "this model)")
                    if tuple(shape) != tuple(want[0]) or dtype != np.dtype(want[1]):
                        raise InvalidFileError(f"{source}: array {name!r} has shape {tuple(shape)} and dtype "
                                               f"{dtype}; the model expects {tuple(want[0])} {np.dtype(want[1])}")
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > len(raw) - f.tell():
                raise InvalidFileError(f"{source}: array {name!r} declares shape {tuple(shape)} "
                                       f"({nbytes} bytes) but holds only {len(raw) - f.tell()} bytes")
            f.seek(0)
            try:
                arr = np.lib.format.read_array(f, allow_pickle=False)
            except (ValueError, EOFError, OSError) as exc:
                raise InvalidFileError(f"{source}: array {name!r} cannot be read ({exc})") from exc
            out[name] = arr
    if expected is not None:
        missing = [k for k in expected if k not in out]
        if missing:
            raise InvalidFileError(f"{source}: missing arrays for weights {missing[:5]}"
                                   f"{' ...' if len(missing) > 5 else ''}")
    return out
