"""The ``.keras`` and ``.weights.npz`` file formats, under their ``cnnfast.saving`` name.

Implemented in ``cnnfast.models.archive`` (see the format description there).
"""
from __future__ import annotations

from ..models.archive import (FORMAT, FORMAT_VERSION, MAX_ARRAY_BYTES, MAX_ENTRIES, MAX_JSON_BYTES,
                              MAX_RATIO, MEMBERS, WEIGHTS_FORMAT, InvalidFileError, json_bytes, metadata,
                              npz_bytes, parse_json, read_archive, read_npz, write_atomic)

__all__ = ["InvalidFileError", "write_atomic", "read_archive", "npz_bytes", "read_npz", "json_bytes",
           "metadata", "parse_json", "FORMAT", "FORMAT_VERSION", "WEIGHTS_FORMAT", "MEMBERS",
           "MAX_JSON_BYTES", "MAX_ARRAY_BYTES", "MAX_RATIO", "MAX_ENTRIES"]
