"""Finding, verifying and downloading the original data-set files.

Design:
  * Every data set is a fixed list of files (name, byte size, hash) of its original distribution,
    kept under one data directory: ``$CNNFAST_DATA`` if set, else ``~/.cache/cnnfast/datasets``,
    one sub-directory per data set (``mnist/``, ``fashion-mnist/``, ``cifar-10/``). A ``path=``
    argument replaces that directory with a local one.
  * A file that is present is checked (size, then SHA-256 or MD5) every time it is loaded; a file
    that fails the check raises :class:`DatasetCorruptError` and is never parsed, let alone
    half-used. Nothing is deleted or overwritten behind the user's back.
  * A missing file is downloaded from the first mirror that delivers it, with
    :func:`cnnfast.utils.file_utils.download_file`: the bytes stream into a temporary file in the
    target directory while being hashed, and the file is renamed into place only when size and
    hash match, so an interrupted, truncated or corrupted download never lands.
    A mirror that cannot be reached at all is not asked again for the next file.
  * Mirrors: ``base_url=`` (a URL of the directory holding the files) if given, else
    ``$CNNFAST_DATASETS_MIRROR`` (a URL mirroring the whole data directory, one sub-directory per
    data set), else the canonical mirrors of the data set.
  * When a file can be neither found nor downloaded, :class:`DatasetNotFoundError` says which
    files to put where (with sizes and hashes), and why each download failed.
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Sequence

from ..utils.file_utils import DownloadError, download_file, hash_file

__all__ = ["RemoteFile", "DataSet", "DatasetError", "DatasetNotFoundError", "DatasetCorruptError",
           "data_home", "fetch", "find", "verify"]

ENV_DATA = "CNNFAST_DATA"
ENV_MIRROR = "CNNFAST_DATASETS_MIRROR"
DEFAULT_HOME = pathlib.Path("~") / ".cache" / "cnnfast" / "datasets"
TIMEOUT_SECONDS = 30.0
_CHUNK = 1 << 20


class DatasetError(Exception):
    """Base class of the errors a data-set loader raises."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The files of a data set are neither present nor downloadable; the message says where to put them."""


class DatasetCorruptError(DatasetError, ValueError):
    """A data-set file is present but is not the original (wrong size or hash, or unreadable)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of an original distribution: its name, exact size in bytes and hash."""

    name: str
    size: int
    digest: str
    algorithm: str = "sha256"  # "sha256", or "md5" where the publisher gives nothing better


@dataclass(frozen=True)
class DataSet:
    """A data set: where its files live under the data directory and where to download them."""

    title: str              # human name, e.g. "MNIST"
    subdir: str             # sub-directory of the data directory, e.g. "mnist"
    files: tuple            # RemoteFile, ...
    mirrors: tuple          # canonical base URLs, each ending in "/", tried in order
    homepage: str = ""
    note: str = ""          # extra advice for the "files missing" message


def data_home() -> pathlib.Path:
    """The data directory: ``$CNNFAST_DATA`` if set, else ``~/.cache/cnnfast/datasets``."""
    env = os.environ.get(ENV_DATA, "").strip()
    return pathlib.Path(env).expanduser() if env else DEFAULT_HOME.expanduser()


def _search_dirs(spec: DataSet, path) -> list[pathlib.Path]:
    """Directories searched for the files, first one is where downloads go."""
    if path is None:
        return [data_home() / spec.subdir]
    base = pathlib.Path(os.fspath(path)).expanduser()
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"{spec.title}: path must be a directory holding the data-set files, "
                                 f"got the file {str(base)!r}")
    return [base, base / spec.subdir]


def verify(file, rf: RemoteFile, title: str = "data set") -> pathlib.Path:
    """Check that ``file`` is byte-identical to ``rf`` (size, then hash); raise DatasetCorruptError if not."""
    file = pathlib.Path(file)
    size = file.stat().st_size
    if size != rf.size:
        what = "truncated" if size < rf.size else "too long"
        raise DatasetCorruptError(
            f"{title}: {file} is {size:,} bytes, expected {rf.size:,} ({what}: not the original file). "
            f"Delete it and load again to download a fresh copy.")
    actual = hash_file(file, rf.algorithm, chunk_size=_CHUNK)
    if actual != rf.digest:
        raise DatasetCorruptError(
            f"{title}: {file} has {rf.algorithm} {actual}, expected {rf.digest} (corrupted or not the "
            f"original file). Delete it and load again to download a fresh copy.")
    return file


def find(spec: DataSet, rf: RemoteFile, path=None) -> pathlib.Path | None:
    """The verified local copy of ``rf``, or None when there is none (a bad copy raises)."""
    for d in _search_dirs(spec, path):
        candidate = d / rf.name
        if candidate.is_file():
            return verify(candidate, rf, spec.title)
    return None


def _mirrors(spec: DataSet, base_url: str | None) -> list[str]:
    if base_url is not None:
        urls = [base_url]
    elif os.environ.get(ENV_MIRROR, "").strip():
        urls = [os.environ[ENV_MIRROR].strip().rstrip("/") + "/" + spec.subdir + "/"]
    else:
        urls = list(spec.mirrors)
    out = []
    for u in urls:
        if not isinstance(u, str) or not u.lower().startswith(("http://", "https://", "file://")):
            source = "base_url" if base_url is not None else f"${ENV_MIRROR}"
            raise ValueError(f"{spec.title}: {source} must be an http://, https:// or file:// URL, got {u!r}")
        out.append(u if u.endswith("/") else u + "/")
    return out


def _download(url: str, dest: pathlib.Path, rf: RemoteFile, quiet: bool) -> None:
    download_file(url, dest, algorithm=rf.algorithm, expected_hash=rf.digest, expected_size=rf.size,
                  progress=not quiet, timeout=TIMEOUT_SECONDS,
                  announce=None if quiet else f"Downloading {url} ({rf.size / 1e6:.1f} MB) to {dest.parent}")


def _not_found_message(spec: DataSet, missing: Sequence[RemoteFile], dirs: list[pathlib.Path],
                       failures: list[str], downloaded: bool, module: str) -> str:
    width = max(len(rf.name) for rf in missing)
    count = "1 file of the data set is" if len(missing) == 1 else f"{len(missing)} files of the data set are"
    lines = [f"{spec.title}: {count} missing"
             + (" and could not be downloaded." if downloaded else " (download=False).")]
    lines.append(f"Put these files of the original distribution, unchanged, in {dirs[0]}:")
    for rf in missing:
        lines.append(f"    {rf.name:<{width}}  {rf.size:>12,} bytes  {rf.algorithm} {rf.digest}")
    if len(dirs) == 1:
        lines.append(f"(the data directory is ${ENV_DATA} if set, else ~/.cache/cnnfast/datasets; "
                     f"or pass path=DIR to {module}.load_data)")
    else:
        lines.append(f"(or in {dirs[1]})")
    if spec.mirrors:
        lines.append("They are published at " + " or ".join(spec.mirrors)
                     + (f" (see {spec.homepage})" if spec.homepage else "") + ".")
    if spec.note:
        lines.append(spec.note)
    if failures:
        lines.append("Download attempts:")
        lines.extend(f"    {f}" for f in failures)
    return "\n".join(lines)


def fetch(spec: DataSet, files: Sequence[RemoteFile] | None = None, path=None, download: bool = True,
          base_url: str | None = None, quiet: bool = False, module: str = "") -> list[pathlib.Path]:
    """Local verified paths of ``files`` (default: all of ``spec``), downloading missing ones."""
    files = list(spec.files if files is None else files)
    module = module or f"cnnfast.datasets.{spec.subdir}"
    dirs = _search_dirs(spec, path)
    found: dict[str, pathlib.Path] = {}
    for rf in files:
        p = find(spec, rf, path)
        if p is not None:
            found[rf.name] = p
    missing = [rf for rf in files if rf.name not in found]
    failures: list[str] = []
    if missing and download:
        mirrors = _mirrors(spec, base_url)
        unreachable: set[str] = set()
        for rf in missing:
            for mirror in mirrors:
                if mirror in unreachable:
                    continue
                url = mirror + rf.name
                dest = dirs[0] / rf.name
                try:
                    _download(url, dest, rf, quiet)
                except DownloadError as e:  # unreachable, HTTP errors, truncated or corrupted bytes
                    if e.unreachable:
                        unreachable.add(mirror)
                        failures.append(f"{url}: {e.reason}; not asked for the other files")
                    else:
                        failures.append(f"{url}: {e.reason}")
                    continue
                except OSError as e:  # the target directory cannot be created or written
                    failures.append(f"{url}: {type(e).__name__}: {e}")
                    continue
                found[rf.name] = dest
                break
        missing = [rf for rf in files if rf.name not in found]
    if missing:
        raise DatasetNotFoundError(_not_found_message(spec, missing, dirs, failures, download, module))
    return [found[rf.name] for rf in files]
