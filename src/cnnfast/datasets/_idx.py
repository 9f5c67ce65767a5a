"""Reader for gzip-compressed IDX files (the MNIST and Fashion-MNIST distributions).

Format (big-endian): two zero bytes, a type byte (0x08 = unsigned byte, the only type these data
sets use), a byte giving the number of dimensions, one u32 per dimension, then the row-major data.
The header is parsed first, the array is allocated once and the payload is decompressed straight
into it, so a 47 MB image file costs one buffer; a short payload, trailing bytes or a broken gzip
stream raise :class:`DatasetCorruptError` and no array is returned.
"""
from __future__ import annotations

import gzip
import math
import struct
import zlib

import numpy as np

from ._fetch import DatasetCorruptError

__all__ = ["read_idx"]

_UBYTE = 0x08
_MAX_ELEMENTS = 1 << 34  # 16 GiB of uint8: far above any IDX data set, refuses absurd headers


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"file ends after {len(data)} of {n} header bytes")
    return data


def read_idx(file, ndim: int | None = None) -> np.ndarray:
    """Read a ``.gz`` IDX file of unsigned bytes into a writeable uint8 array of its shape."""
    raw = open(file, "rb")  # a missing file is a FileNotFoundError, not corruption
    try:
        with raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
            zero, dtype_code, nd = struct.unpack(">HBB", _read_exact(f, 4))
            if zero != 0 or dtype_code != _UBYTE:
                raise DatasetCorruptError(f"{file}: not an unsigned-byte IDX file "
                                          f"(magic 0x{zero:04x}{dtype_code:02x}{nd:02x})")
            if ndim is not None and nd != ndim:
                raise DatasetCorruptError(f"{file}: expected an IDX file with {ndim} dimensions, got {nd}")
            shape = struct.unpack(f">{nd}I", _read_exact(f, 4 * nd))
            if math.prod(shape) > _MAX_ELEMENTS:
                raise DatasetCorruptError(f"{file}: implausible IDX shape {shape}")
            out = np.empty(shape, dtype=np.uint8)
            view = memoryview(out.reshape(-1))  # 1-D uint8: cast() refuses zero dimensions
            filled = 0
            while filled < out.nbytes:
                n = f.readinto(view[filled:])
                if not n:
                    raise DatasetCorruptError(f"{file}: truncated: {filled:,} of {out.nbytes:,} data bytes "
                                              f"for shape {shape}")
                filled += n
            if f.read(1):
                raise DatasetCorruptError(f"{file}: trailing bytes after the {out.nbytes:,} data bytes "
                                          f"of shape {shape}")
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetCorruptError(f"{file}: unreadable IDX/gzip data ({type(e).__name__}: {e})") from e
    return out


def load_idx_set(spec, path, download: bool, base_url, module: str):
    """((x_train, y_train), (x_test, y_test)) from the four IDX files of an MNIST-style set.

    ``spec.files`` lists them in the order train images, train labels, test images, test labels.
    """
    from ._fetch import fetch

    files = fetch(spec, path=path, download=download, base_url=base_url, module=module)
    x_train, y_train, x_test, y_test = (read_idx(f, nd) for f, nd in zip(files, (3, 1, 3, 1)))
    for x, y, f in ((x_train, y_train, files[1]), (x_test, y_test, files[3])):
        if x.shape[0] != y.shape[0]:
            raise DatasetCorruptError(f"{spec.title}: {x.shape[0]} images but {y.shape[0]} labels in {f}")
        if y.size and y.max() > 9:
            raise DatasetCorruptError(f"{spec.title}: label {int(y.max())} out of range 0..9 in {f}")
    return (x_train, y_train), (x_test, y_test)
