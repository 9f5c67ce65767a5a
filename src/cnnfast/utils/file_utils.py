"""Downloading files into a local cache, verifying their hash, unpacking archives (``keras.utils.get_file``).

Design:
  * :func:`get_file` has Keras 3's signature and cache layout rules; its cache root is
    ``$CNNFAST_HOME`` if set, else ``~/.cache/cnnfast`` (:func:`cnnfast_home`), falling back to
    ``/tmp/.cnnfast`` when that cannot be written to (as Keras falls back to ``/tmp/.keras``).
  * :func:`download_file` is the one streaming downloader of the package (``cnnfast.datasets`` uses
    it too): the bytes stream into a temporary file in the target directory while being hashed,
    and the file is renamed into place only when it is complete and its hash matches. An
    interrupted, truncated or mismatching download never lands; the temporary file is removed.
  * Every failure to fetch a URL is a :class:`DownloadError` that names the URL and the reason;
    a hash mismatch is a :class:`HashMismatchError` (also a ``ValueError``, as in Keras) that names
    the expected and the actual hash.
  * Archives (tar, tar.gz/bz2/xz, zip) are checked member by member before anything is written:
    an absolute path, a ``..`` that leaves the folder, a link pointing outside it or a device file
    refuses the whole archive (:class:`UnsafeArchiveError`). Keras skips such members with a
    warning; refusing is safer and says clearly that the archive is not what it should be.
    ``get_file`` extracts into a temporary folder renamed into place, so a failed extraction
    leaves no half-filled folder behind.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import sys
import tempfile
import urllib.parse
import warnings

# http.client, urllib.request, tarfile and zipfile are imported where used: importing
# cnnfast.utils (and cnnfast.datasets) stays light.

__all__ = ["get_file", "validate_file", "hash_file", "resolve_hasher", "extract_archive", "cnnfast_home",
           "download_file", "DownloadError", "HashMismatchError", "UnsafeArchiveError"]

ENV_HOME = "CNNFAST_HOME"
DEFAULT_HOME = os.path.join("~", ".cache", "cnnfast")
TIMEOUT_SECONDS = 30.0
URL_SCHEMES = ("http", "https", "ftp", "file")
HASH_ALGORITHMS = ("auto", "sha256", "md5")
ARCHIVE_FORMATS = ("tar", "zip")
_READ_CHUNK = 1 << 20
# tarfile's "data" filter exists from Python 3.11.4 (and is the default from 3.14).
def _data_filter(tarfile_module) -> dict:
    return {"filter": "data"} if hasattr(tarfile_module, "data_filter") else {}


# ----------------------------------------------------------------------------------- errors


class DownloadError(OSError):
    """A URL could not be fetched: unreachable, an HTTP error, or not the whole file arrived.

    Attributes: ``url``; ``reason`` (short, e.g. ``"HTTP 404 Not Found"``); ``unreachable`` (True
    when the server could not be reached at all, so other files from it would fail too); ``hint``
    (how to do without the download), filled in by the caller that knows where the file belongs.
    """

    def __init__(self, url: str, reason: str, *, unreachable: bool = False, hint: str = "",
                 caller: str = "cnnfast.utils.download_file"):
        super().__init__(reason)
        self.url = url
        self.reason = reason
        self.unreachable = unreachable
        self.hint = hint
        self.caller = caller

    def __str__(self) -> str:
        text = f"{self.caller}: cannot download {self.url}: {self.reason}."
        return f"{text} {self.hint}" if self.hint else text


class IncompleteDownloadError(DownloadError):
    """The connection ended, or the byte count disagreed, before the whole file had arrived."""


class HashMismatchError(DownloadError, ValueError):
    """The downloaded bytes do not have the expected hash (corrupted, or not the expected file)."""

    def __init__(self, url: str, algorithm: str, expected: str, actual: str, **kwargs):
        super().__init__(url, f"its {algorithm} hash is {actual}, expected {expected} "
                              f"(corrupted or not the expected file; it was not kept)", **kwargs)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class UnsafeArchiveError(ValueError):
    """An archive has members that would be written outside the folder it is extracted into."""


# ----------------------------------------------------------------------------------- hashing


def resolve_hasher(algorithm: str, file_hash: str | None = None):
    """A new hashlib object for ``algorithm``: ``"sha256"``, ``"md5"``, or ``"auto"`` (sha256 for a
    64-character hash, else md5, as Keras decides)."""
    return hashlib.new(_algorithm_name(algorithm, file_hash, "cnnfast.utils.resolve_hasher"))


def _algorithm_name(algorithm, file_hash, caller: str) -> str:
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"{caller}: hash_algorithm must be one of {', '.join(map(repr, HASH_ALGORITHMS))}, "
                         f"got {algorithm!r}")
    if algorithm == "auto":
        return "sha256" if file_hash is not None and len(str(file_hash)) == 64 else "md5"
    return algorithm


def hash_file(fpath, algorithm="sha256", chunk_size=65535) -> str:
    """The hex digest of the file at ``fpath``.

    Args:
        fpath: path to the file.
        algorithm: ``"sha256"``, ``"md5"`` or ``"auto"`` (which, with no hash to compare with,
            means md5 as in Keras), or a hashlib object to update.
        chunk_size: bytes read at a time.
    """
    hasher = resolve_hasher(algorithm) if isinstance(algorithm, str) else algorithm
    if not hasattr(hasher, "update") or not hasattr(hasher, "hexdigest"):
        raise TypeError(f"cnnfast.utils.hash_file: algorithm must be 'sha256', 'md5', 'auto' or a hashlib "
                        f"object, got {algorithm!r}")
    with open(os.fspath(fpath), "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash, algorithm="auto", chunk_size=65535) -> bool:
    """True when the file at ``fpath`` has the hash ``file_hash`` (sha256 or md5; ``"auto"`` picks
    sha256 for a 64-character hash, else md5). Hex digits compare case-insensitively."""
    hasher = resolve_hasher(algorithm, file_hash)
    return hash_file(fpath, hasher, chunk_size) == str(file_hash).strip().lower()


def _check_hash(file_hash, algorithm: str, caller: str) -> str:
    """``file_hash`` as lower-case hex, after checking it is one for ``algorithm``."""
    digits = {"sha256": 64, "md5": 32}[algorithm]
    text = file_hash.strip().lower() if isinstance(file_hash, str) else None
    if text is None or len(text) != digits or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{caller}: file_hash must be the {digits} hex digits of a {algorithm} hash, "
                         f"got {file_hash!r}")
    return text


# ----------------------------------------------------------------------------------- downloading


def _describe_open_error(e: BaseException, timeout: float) -> tuple[str, bool]:
    """(reason, unreachable) for an error raised while connecting."""
    import urllib.error

    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}", False
    if isinstance(e, urllib.error.URLError):
        return f"cannot connect ({e.reason})", True
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g} s (timed out)", True
    return f"{type(e).__name__}: {e}", isinstance(e, ConnectionError)


def _umask() -> int:
    # The only way to read the umask is to set it; it is put back at once.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file (mkstemp's files are private to the owner)."""
    return 0o666 & ~_umask()


def download_file(url: str, dest, *, algorithm: str = "sha256", expected_hash: str | None = None,
                  expected_size: int | None = None, progress: bool = False, announce: str | None = None,
                  timeout: float = TIMEOUT_SECONDS) -> str:
    """Download ``url`` to ``dest`` atomically and return the file's hex digest.

    The bytes stream into a temporary file beside ``dest`` while being hashed with ``algorithm``;
    it is renamed to ``dest`` only once complete (``Content-Length`` and ``expected_size`` agree
    with the bytes received) and, when ``expected_hash`` is given, matching it. On any failure,
    including KeyboardInterrupt, the temporary file is removed and ``dest`` is left as it was.

    Args:
        progress: draw a :class:`~cnnfast.utils.Progbar` on stderr when the size is known and
            stderr is a terminal.
        announce: a line printed to stderr once the server has answered.

    Raises:
        DownloadError: the server could not be reached or answered with an error, or the transfer
            broke off (:class:`IncompleteDownloadError`), or the bytes do not have
            ``expected_hash`` (:class:`HashMismatchError`).
        OSError: ``dest``'s directory cannot be created or written.
    """
    import http.client
    import urllib.request

    from .. import __version__

    dest = pathlib.Path(dest)
    request = urllib.request.Request(url, headers={"User-Agent": f"cnnfast/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (OSError, http.client.HTTPException) as e:
        reason, unreachable = _describe_open_error(e, timeout)
        raise DownloadError(url, reason, unreachable=unreachable) from e
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length is not None and length.strip().isdigit() else None
        if announce:
            print(announce, file=sys.stderr, flush=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = pathlib.Path(tmp_name)
        try:
            hasher = hashlib.new(algorithm)
            received = 0
            bar = _progress_bar(total) if progress else None
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = response.read(_READ_CHUNK)
                    except http.client.IncompleteRead as e:
                        got = received + len(e.partial)
                        expected = f" of {total:,}" if total is not None else ""
                        raise IncompleteDownloadError(
                            url, f"the connection closed after {got:,}{expected} bytes (truncated)") from e
                    except (OSError, http.client.HTTPException) as e:
                        raise IncompleteDownloadError(
                            url, f"{type(e).__name__} after {received:,} bytes: {e} (truncated)") from e
                    if not chunk:
                        break
                    received += len(chunk)
                    if expected_size is not None and received > expected_size:
                        raise DownloadError(url, f"more than the expected {expected_size:,} bytes")
                    hasher.update(chunk)
                    out.write(chunk)
                    if bar is not None:
                        bar.update(min(received, total))
                out.flush()
                os.fsync(out.fileno())
            for size in (total, expected_size):
                if size is not None and received < size:
                    raise IncompleteDownloadError(url, f"got {received:,} bytes, expected {size:,} (truncated)")
                if size is not None and received > size:
                    raise DownloadError(url, f"got {received:,} bytes, more than the {size:,} announced")
            actual = hasher.hexdigest()
            if expected_hash is not None and actual != expected_hash.lower():
                raise HashMismatchError(url, algorithm, expected_hash.lower(), actual)
            os.chmod(tmp, _new_file_mode())
            os.replace(tmp, dest)
            return actual
        finally:
            if tmp.exists():
                tmp.unlink()


def _progress_bar(total):
    from .progbar import Progbar, is_dynamic_display

    if not total or not is_dynamic_display(sys.stderr):
        return None
    return Progbar(total, stream=sys.stderr)


# ----------------------------------------------------------------------------------- archives


def _unsafe_reason(name: str, base: str, members_that_are_links: set[str]) -> str | None:
    """Why writing archive member ``name`` under ``base`` would be unsafe, or None."""
    if not name:
        return "empty name"
    if name.startswith(("/", "\\")) or pathlib.PureWindowsPath(name).drive:
        return "absolute path"
    target = os.path.normpath(os.path.join(base, name))
    if os.path.commonpath([target, base]) != base:
        return "path leaves the folder"
    parts = pathlib.PurePosixPath(os.path.relpath(target, base)).parts
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in members_that_are_links:
            return "path goes through a link of the archive"
    return None


def _inside(path: str, base: str) -> bool:
    return os.path.commonpath([os.path.normpath(path), base]) == base


def _tar_problems(archive, base: str) -> list[str]:
    members = archive.getmembers()
    links = {os.path.normpath(m.name) for m in members if m.issym() or m.islnk()}
    problems = []
    for m in members:
        reason = _unsafe_reason(m.name, base, links)
        if reason is None and m.issym():
            destination = os.path.join(base, m.name)
            if os.path.isabs(m.linkname) or not _inside(os.path.join(os.path.dirname(destination), m.linkname), base):
                reason = f"symlink to {m.linkname!r}, outside the folder"
        elif reason is None and m.islnk():
            if os.path.isabs(m.linkname) or not _inside(os.path.join(base, m.linkname), base):
                reason = f"hard link to {m.linkname!r}, outside the folder"
        elif reason is None and not (m.isfile() or m.isdir()):
            reason = "device or special file"
        if reason is not None:
            problems.append(f"{m.name!r} ({reason})")
    return problems


def _zip_problems(archive, base: str) -> list[str]:
    problems = []
    for info in archive.infolist():
        reason = _unsafe_reason(info.filename, base, set())
        if reason is not None:
            problems.append(f"{info.filename!r} ({reason})")
    return problems


def _archive_formats(archive_format, caller: str) -> list[str]:
    if archive_format is None:
        return []
    if archive_format == "auto":
        return list(ARCHIVE_FORMATS)
    formats = [archive_format] if isinstance(archive_format, str) else archive_format
    if not isinstance(formats, (list, tuple)) or any(f not in ARCHIVE_FORMATS for f in formats):
        raise ValueError(f"{caller}: archive_format must be 'auto', 'tar', 'zip', a list of those, or None, "
                         f"got {archive_format!r}")
    return list(formats)


def extract_archive(file_path, path=".", archive_format="auto") -> bool:
    """Extract the tar (plain, gz, bz2, xz) or zip archive at ``file_path`` into ``path``.

    Every member is checked before anything is written; an archive with a member that would land
    outside ``path`` (absolute path, ``..``, a link pointing outside, a device file) is refused
    with :class:`UnsafeArchiveError` and nothing is extracted.

    Args:
        archive_format: ``"auto"`` (``["tar", "zip"]``), ``"tar"``, ``"zip"``, a list of those,
            or None (extract nothing).

    Returns:
        True if the file was an archive of one of the formats and was extracted, else False.
    """
    import tarfile
    import zipfile

    caller = "cnnfast.utils.extract_archive"
    formats = _archive_formats(archive_format, caller)
    file_path = os.fspath(file_path)
    path = os.fspath(path)
    base = os.path.realpath(path)
    for kind in formats:
        if kind == "tar" and tarfile.is_tarfile(file_path):
            with tarfile.open(file_path) as archive:
                problems = _tar_problems(archive, base)
                _refuse_if_unsafe(problems, file_path, base, caller)
                os.makedirs(base, exist_ok=True)
                # The "data" filter repeats the checks as each member is written, seeing the links
                # extracted before it, and drops set-uid bits and ownership.
                archive.extractall(base, **_data_filter(tarfile))
            return True
        if kind == "zip" and zipfile.is_zipfile(file_path):
            with zipfile.ZipFile(file_path) as archive:
                _refuse_if_unsafe(_zip_problems(archive, base), file_path, base, caller)
                archive.extractall(base)
            return True
    return False


def _refuse_if_unsafe(problems: list[str], file_path: str, base: str, caller: str) -> None:
    if problems:
        shown = ", ".join(problems[:10]) + (f" and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise UnsafeArchiveError(f"{caller}: refusing to extract {file_path}: {len(problems)} member(s) would "
                                 f"be written outside {base}: {shown}. Nothing was extracted.")


def _extract_into_fresh_dir(file_path: str, extraction_dir: str, archive_format) -> bool:
    """Extract into a temporary sibling folder, then rename it to ``extraction_dir`` (replacing an
    older extraction), so the folder is either the complete new content or untouched."""
    parent = os.path.dirname(extraction_dir) or "."
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(extraction_dir)}.", suffix=".extracting")
    try:
        if not extract_archive(file_path, staging, archive_format):
            return False
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's folders are private to the owner
        if os.path.lexists(extraction_dir):
            old = staging + ".old"
            os.replace(extraction_dir, old)
            os.replace(staging, extraction_dir)
            _remove(old)
        else:
            os.replace(staging, extraction_dir)
        return True
    finally:
        if os.path.lexists(staging):
            _remove(staging)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


# ----------------------------------------------------------------------------------- get_file


def cnnfast_home() -> str:
    """The cache root of :func:`get_file`: ``$CNNFAST_HOME`` if set, else ``~/.cache/cnnfast``."""
    env = os.environ.get(ENV_HOME, "").strip()
    return os.path.expanduser(env if env else DEFAULT_HOME)


def _writable_dir(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _temp_root() -> str:
    """Where an unwritable cache falls back to (``/tmp`` as in Keras, else the system temp folder)."""
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


def _cache_root(cache_dir) -> str:
    root = os.path.expanduser(os.fspath(cache_dir)) if cache_dir is not None else cnnfast_home()
    if _writable_dir(root):
        return root
    fallback = os.path.join(_temp_root(), ".cnnfast")
    warnings.warn(f"cnnfast.utils.get_file: the cache directory {root} cannot be written to; "
                  f"using {fallback} instead", stacklevel=3)
    return fallback


def _file_name(fname, origin: str, caller: str) -> str:
    if fname is not None and not isinstance(fname, (str, os.PathLike)):
        raise TypeError(f"{caller}: fname must be a file name (str) or None, got {type(fname).__name__}")
    name = os.fspath(fname) if fname is not None else ""
    if not name:
        name = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not name or name in (".", ".."):
            raise ValueError(f"{caller}: cannot take a file name from the origin {origin!r}; pass fname=")
        return name
    if os.sep in name or (os.altsep and os.altsep in name) or "/" in name:
        raise ValueError(f"{caller}: fname must be a file name, not a path; to choose the directory, pass "
                         f"cache_dir= (and cache_subdir=). Received: fname={name!r}")
    if name in (".", ".."):
        raise ValueError(f"{caller}: fname must be a file name, got {name!r}")
    return name


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None,
             force_download=False):
    """Download a file from a URL unless it is already in the cache; return its local path.

    The file goes to ``cache_dir/cache_subdir/fname``: ``cache_dir`` defaults to
    :func:`cnnfast_home` (``$CNNFAST_HOME`` or ``~/.cache/cnnfast``, falling back to
    ``/tmp/.cnnfast`` when not writable); an absolute ``cache_subdir`` is used as it is.

    Args:
        fname: local file name; None takes the last part of ``origin``'s path. Not a path: use
            ``cache_dir`` to choose the directory. With ``extract``, a name without a dot names
            the extraction folder, a name with one names the archive (Keras's rules, see Returns).
        origin: URL of the file (http, https, ftp or file).
        untar: deprecated, as ``extract=True, archive_format="tar"``.
        md5_hash: deprecated, as ``file_hash=md5_hash, hash_algorithm="md5"``.
        file_hash: expected sha256 or md5 hash (hex). A cached file is checked against it (a
            mismatch downloads again) and so is every download.
        cache_subdir: sub-directory of ``cache_dir``, or an absolute directory.
        hash_algorithm: ``"sha256"``, ``"md5"``, or ``"auto"`` (sha256 for 64 hex digits, else md5).
        extract: extract the archive (tar, tar.gz/bz2/xz or zip).
        archive_format: ``"auto"`` (tar then zip), ``"tar"``, ``"zip"``, a list, or None.
        cache_dir: cache root, instead of :func:`cnnfast_home`.
        force_download: download even when a cached copy exists.

    Returns:
        The path of the file, or with ``extract``, of the folder it was extracted into:
        ``fname`` given with a dot (``"data.tar.gz"``): archive ``data.tar.gz``, folder
        ``data_extracted``; ``fname`` given without a dot, or derived from the URL (``x.zip``):
        archive ``<name>_archive``, folder ``<name>``.

    Raises:
        DownloadError: the file is not cached and cannot be downloaded (the message names the URL,
            the reason and where to put a local copy instead).
        HashMismatchError: the download does not have ``file_hash`` (also a ValueError).
        UnsafeArchiveError: the archive has members that would land outside its folder.
    """
    caller = "cnnfast.utils.get_file"
    if origin is None:
        raise ValueError(f'{caller}: please specify the "origin" argument (URL of the file to download)')
    if not isinstance(origin, str):
        raise TypeError(f"{caller}: origin must be a URL string, got {type(origin).__name__}")
    scheme = urllib.parse.urlsplit(origin).scheme.lower()
    if scheme not in URL_SCHEMES:
        raise ValueError(f"{caller}: origin must be an {', '.join(URL_SCHEMES)} URL, got {origin!r}; for a local "
                         f"file, pass its file:// URL (pathlib.Path(p).resolve().as_uri())")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    algorithm = _algorithm_name(hash_algorithm, file_hash, caller)
    if file_hash is not None:
        file_hash = _check_hash(file_hash, algorithm, caller)
    if untar:
        archive_format = "tar"
    if extract or untar:
        _archive_formats(archive_format, caller)
    provided_fname = fname
    fname = _file_name(fname, origin, caller)
    if not isinstance(cache_subdir, (str, os.PathLike)):
        raise TypeError(f"{caller}: cache_subdir must be a directory name or path, got {type(cache_subdir).__name__}")

    datadir = os.path.join(_cache_root(cache_dir), os.fspath(cache_subdir))
    os.makedirs(datadir, exist_ok=True)

    extraction_dir = None
    if extract or untar:
        if provided_fname and "." in fname:
            download_target = os.path.join(datadir, fname)
            extraction_dir = os.path.join(datadir, f"{fname[: fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            download_target = os.path.join(datadir, f"{fname}_archive")
    else:
        download_target = os.path.join(datadir, fname)

    if os.path.isdir(download_target):
        raise IsADirectoryError(f"{caller}: cannot save {origin} as {download_target}: a folder of that name is in "
                                f"the way (an extraction folder of an earlier call?); pass another fname")
    stale = ""
    if force_download or not os.path.isfile(download_target):
        download = True
    elif file_hash is not None and not validate_file(download_target, file_hash, algorithm):
        actual = hash_file(download_target, algorithm)
        stale = (f"The copy already at {download_target} has {algorithm} {actual}, not {file_hash}, "
                 f"and was left as it was.")
        print(f"A local file was found at {download_target}, but its {algorithm} hash {actual} does not match "
              f"{file_hash} (incomplete or outdated): downloading it again.", file=sys.stderr, flush=True)
        download = True
    else:
        download = False

    if download:
        try:
            download_file(origin, download_target, algorithm=algorithm, expected_hash=file_hash,
                          progress=True, announce=f"Downloading data from {origin}")
        except DownloadError as e:
            e.caller = caller
            local = "archive" if extraction_dir is not None else "file"
            checked = ", after checking file_hash" if file_hash else ""
            advice = (f"To use a local copy instead, put the {local} at {download_target} "
                      f"(get_file then uses it without downloading{checked}).")
            e.hint = f"{stale} {advice}" if stale else advice
            raise

    if extraction_dir is not None:
        if download or not os.path.isdir(extraction_dir):
            if not _extract_into_fresh_dir(download_target, extraction_dir, archive_format):
                warnings.warn(f"{caller}: could not extract {download_target}: it is not a "
                              f"{' or '.join(_archive_formats(archive_format, caller)) or 'known'} archive",
                              stacklevel=2)
        return extraction_dir
    return download_target
