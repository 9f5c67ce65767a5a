"""cnnfast.utils.get_file / validate_file / hash_file: caching, hashes, atomic downloads, archives.

No test touches the network: files are served by an http.server on 127.0.0.1 started here, and
$CNNFAST_HOME points at a temporary directory. The server counts the requests it receives, so
cache hits are seen to make none.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import pathlib
import socket
import sys
import tarfile
import threading
import warnings
import zipfile

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # the Keras oracle runs on torch, if present

from cnnfast import utils  # noqa: E402
from cnnfast.utils import file_utils  # noqa: E402
from cnnfast.utils.file_utils import DownloadError, HashMismatchError, UnsafeArchiveError  # noqa: E402

PAYLOAD = bytes(range(256)) * 300  # 76,800 bytes: several reads, not one
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
MEMBERS = {"pack/a.txt": b"alpha\n", "pack/sub/b.bin": bytes(range(50))}


def _tar_bytes(members: dict, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _tar_with(*infos: tarfile.TarInfo) -> bytes:
    """A tar.gz with a harmless file first, then the given (hostile) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        for info in infos:
            tar.addfile(info, io.BytesIO(b"evil") if info.isfile() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


def _zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(directory: pathlib.Path) -> list[str]:
    """Every file, folder and link under ``directory`` (hidden temporaries included)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/short/"):  # announce the full length, send half, hang up
            data = (pathlib.Path(self.directory) / self.path[len("/short/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """http://127.0.0.1:PORT/ serving a payload, archives of every kind, and hostile archives."""
    root = tmp_path_factory.mktemp("www")
    files = {
        "data.bin": PAYLOAD,
        "other.bin": PAYLOAD[::-1],
        "pack.tar.gz": _tar_bytes(MEMBERS, "w:gz"),
        "pack.tar.bz2": _tar_bytes(MEMBERS, "w:bz2"),
        "pack.tar.xz": _tar_bytes(MEMBERS, "w:xz"),
        "pack.tar": _tar_bytes(MEMBERS, "w"),
        "pack.zip": _zip_bytes(MEMBERS),
        "dotdot.tar.gz": _tar_with(_member("../evil")),
        "absolute.tar.gz": _tar_with(_member("/tmp/cnnfast-absolute-evil")),
        "symlink.tar.gz": _tar_with(_member("link", tarfile.SYMTYPE, "../../outside")),
        "abs-symlink.tar.gz": _tar_with(_member("link", tarfile.SYMTYPE, "/etc")),
        "through-link.tar.gz": _tar_with(_member("d", tarfile.DIRTYPE), _member("link", tarfile.SYMTYPE, "d"),
                                         _member("link/evil")),
        "hardlink.tar.gz": _tar_with(_member("hard", tarfile.LNKTYPE, "../outside")),
        "device.tar.gz": _tar_with(_member("dev", tarfile.CHRTYPE)),
        "dotdot.zip": _zip_bytes({"fine.txt": b"ok", "../evil.txt": b"evil"}),
        "absolute.zip": _zip_bytes({"fine.txt": b"ok", "/evil.txt": b"evil"}),
        "plain.txt": b"not an archive",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "requests": httpd.requests, "root": root}
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """$CNNFAST_HOME in a fresh temporary directory; the tests' own files live beside it."""
    h = tmp_path / "home"
    monkeypatch.setenv("CNNFAST_HOME", str(h))
    return h


# --------------------------------------------------------------------------- downloading and caching


def test_download_then_cache_hit(server, home, capsys):
    before = len(server["requests"])
    path = utils.get_file(origin=server["url"] + "/data.bin")  # fname from the URL
    assert path == str(home / "datasets" / "data.bin")
    assert pathlib.Path(path).read_bytes() == PAYLOAD
    assert server["requests"][before:] == ["/data.bin"]
    assert "Downloading data from " + server["url"] + "/data.bin" in capsys.readouterr().err
    again = utils.get_file("data.bin", server["url"] + "/data.bin", file_hash=SHA256)
    assert again == path and len(server["requests"]) == before + 1
    assert _tree(home / "datasets") == ["data.bin"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("kwargs", [{"file_hash": SHA256}, {"file_hash": MD5}, {"file_hash": SHA256.upper()},
                                    {"file_hash": SHA256, "hash_algorithm": "sha256"},
                                    {"file_hash": MD5, "hash_algorithm": "md5"}, {"md5_hash": MD5}])
def test_matching_hash_is_accepted(kwargs, server, home):
    path = utils.get_file("x.bin", server["url"] + "/data.bin", **kwargs)
    assert pathlib.Path(path).read_bytes() == PAYLOAD


@pytest.mark.parametrize("wrong, algorithm", [(hashlib.sha256(b"x").hexdigest(), "sha256"),
                                              (hashlib.md5(b"x").hexdigest(), "md5")])
def test_mismatching_download_never_lands(wrong, algorithm, server, home):
    url = server["url"] + "/data.bin"
    with pytest.raises(HashMismatchError) as info:
        utils.get_file(origin=url, file_hash=wrong)
    text = str(info.value)
    actual = hashlib.new(algorithm, PAYLOAD).hexdigest()
    assert url in text and wrong in text and actual in text and algorithm in text
    assert isinstance(info.value, ValueError)  # as Keras raises
    assert _tree(home / "datasets") == []  # no partial or temporary file either


def test_truncated_body_leaves_nothing(server, home):
    url = server["url"] + "/short/data.bin"
    with pytest.raises(DownloadError, match="truncated") as info:
        utils.get_file("data.bin", url)
    assert url in str(info.value)
    assert _tree(home / "datasets") == []


def test_interrupted_download_leaves_nothing(server, home, monkeypatch):
    class InterruptingBar:
        def update(self, current):
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-transfer

    monkeypatch.setattr(file_utils, "_progress_bar", lambda total: InterruptingBar())
    with pytest.raises(KeyboardInterrupt):
        utils.get_file(origin=server["url"] + "/data.bin")
    assert _tree(home / "datasets") == []


def test_http_404_is_a_clear_error(server, home):
    url = server["url"] + "/missing.bin"
    with pytest.raises(DownloadError) as info:
        utils.get_file(origin=url)
    text = str(info.value)
    assert "cnnfast.utils.get_file" in text and url in text and "HTTP 404" in text
    assert f"put the file at {home / 'datasets' / 'missing.bin'}" in text
    assert not info.value.unreachable and isinstance(info.value, OSError)
    assert _tree(home / "datasets") == []


def test_unreachable_server_says_how_to_use_a_local_file(home):
    url = f"http://127.0.0.1:{_free_port()}/weights.h5"
    target = home / "models" / "weights.h5"
    with pytest.raises(DownloadError) as info:
        utils.get_file(origin=url, cache_subdir="models", file_hash=SHA256)
    text = str(info.value)
    assert url in text and "cannot connect" in text and "refused" in text.lower()
    assert f"put the file at {target}" in text and "file_hash" in text
    assert info.value.unreachable
    # ... and following the advice works without any server:
    target.write_bytes(PAYLOAD)
    assert utils.get_file(origin=url, cache_subdir="models", file_hash=SHA256) == str(target)


def test_stale_cached_file_is_downloaded_again(server, home):
    target = home / "datasets" / "data.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD[:1000])  # an old, incomplete copy
    before = len(server["requests"])
    assert utils.get_file(origin=server["url"] + "/data.bin", file_hash=SHA256) == str(target)
    assert target.read_bytes() == PAYLOAD and len(server["requests"]) == before + 1


def test_stale_cached_file_and_failed_download_is_a_clear_error(server, home):
    target = home / "datasets" / "missing.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")
    with pytest.raises(DownloadError) as info:
        utils.get_file(origin=server["url"] + "/missing.bin", file_hash=SHA256)
    text = str(info.value)
    assert "HTTP 404" in text and hashlib.sha256(b"old").hexdigest() in text and SHA256 in text
    assert _tree(home / "datasets") == ["missing.bin"] and target.read_bytes() == b"old"


def test_force_download_replaces_the_cached_copy(server, home):
    url = server["url"] + "/data.bin"
    path = pathlib.Path(utils.get_file("f.bin", url))
    path.write_bytes(b"edited")
    before = len(server["requests"])
    assert utils.get_file("f.bin", url) == str(path) and path.read_bytes() == b"edited"  # no hash: trusted
    assert len(server["requests"]) == before
    utils.get_file("f.bin", url, force_download=True)
    assert path.read_bytes() == PAYLOAD and len(server["requests"]) == before + 1


def test_failed_force_download_keeps_the_old_copy(server, home):
    path = pathlib.Path(utils.get_file("g.bin", server["url"] + "/data.bin"))
    with pytest.raises(DownloadError, match="truncated"):
        utils.get_file("g.bin", server["url"] + "/short/other.bin", force_download=True)
    assert path.read_bytes() == PAYLOAD and _tree(home / "datasets") == ["g.bin"]


def test_cache_dir_and_absolute_cache_subdir(server, tmp_path, home):
    mine = tmp_path / "mine"
    path = utils.get_file(origin=server["url"] + "/data.bin", cache_dir=str(mine))
    assert path == str(mine / "datasets" / "data.bin")
    absolute = tmp_path / "elsewhere"
    assert utils.get_file(origin=server["url"] + "/data.bin", cache_subdir=str(absolute)) == str(absolute / "data.bin")
    assert _tree(home) == []  # $CNNFAST_HOME exists (it was checked for writing) but holds nothing


def test_unwritable_cache_falls_back_to_the_temp_folder(server, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    monkeypatch.setattr(file_utils, "_temp_root", lambda: str(tmp_path / "tmp"))
    with pytest.warns(UserWarning, match="cannot be written to"):
        path = utils.get_file(origin=server["url"] + "/data.bin", cache_dir=str(blocker / "cache"))
    assert path == str(tmp_path / "tmp" / ".cnnfast" / "datasets" / "data.bin")


def test_progress_bar_on_a_terminal_only(server, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    utils.get_file("p.bin", server["url"] + "/data.bin")
    assert f"{len(PAYLOAD)}/{len(PAYLOAD)}" in terminal.getvalue() and "━" in terminal.getvalue()
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    utils.get_file("q.bin", server["url"] + "/data.bin")
    assert pipe.getvalue() == f"Downloading data from {server['url']}/data.bin\n"


# --------------------------------------------------------------------------- archives


@pytest.mark.parametrize("name", ["pack.tar.gz", "pack.tar.bz2", "pack.tar.xz", "pack.tar", "pack.zip"])
def test_extract_archives(name, server, home):
    folder = pathlib.Path(utils.get_file(name, server["url"] + "/" + name, extract=True))
    assert folder == home / "datasets" / "pack_extracted"  # fname with a dot names the archive
    for member, data in MEMBERS.items():
        assert (folder / member).read_bytes() == data
    assert (home / "datasets" / name).is_file()
    assert not [p for p in _tree(home / "datasets") if p.startswith(".")]  # no staging folder left


def test_extraction_paths_follow_keras(server, home):
    url = server["url"] + "/pack.tar.gz"
    datasets = home / "datasets"
    # fname derived from the URL: the folder takes the name, the archive gets "_archive"
    assert utils.get_file(origin=url, extract=True) == str(datasets / "pack.tar.gz")
    assert (datasets / "pack.tar.gz_archive").is_file()
    # fname without a dot: the same rule
    assert utils.get_file("packdir", url, untar=True) == str(datasets / "packdir")
    assert (datasets / "packdir_archive").is_file() and (datasets / "packdir" / "pack" / "a.txt").is_file()


def test_extraction_paths_match_keras(server, tmp_path, keras):
    from keras.utils import get_file as keras_get_file

    url = server["url"] + "/pack.tar.gz"
    for i, fname in enumerate((None, "pack.tar.gz", "packdir")):
        mine, keras_cache = tmp_path / f"ours{i}", tmp_path / f"keras{i}"
        keras_cache.mkdir()  # Keras falls back to /tmp/.keras for a cache_dir that does not exist
        ours = utils.get_file(fname, url, extract=True, cache_dir=str(mine))
        theirs = keras_get_file(fname, url, extract=True, cache_dir=str(keras_cache))
        assert os.path.relpath(ours, mine) == os.path.relpath(theirs, keras_cache)
        assert _tree(mine) == _tree(keras_cache)
        assert _tree(pathlib.Path(ours)) == _tree(pathlib.Path(theirs))


def test_folder_in_the_way_of_the_archive(server, home):
    url = server["url"] + "/pack.tar.gz"
    utils.get_file(origin=url, extract=True)  # makes the folder datasets/pack.tar.gz
    with pytest.raises(IsADirectoryError, match="folder of that name is in the way"):
        utils.get_file("pack.tar.gz", url, extract=True)  # whose archive would be datasets/pack.tar.gz


def test_cached_archive_is_not_extracted_again(server, home):
    url = server["url"] + "/pack.zip"
    folder = pathlib.Path(utils.get_file("pack.zip", url, extract=True))
    (folder / "pack" / "a.txt").write_bytes(b"mine")
    before = len(server["requests"])
    utils.get_file("pack.zip", url, extract=True)
    assert len(server["requests"]) == before and (folder / "pack" / "a.txt").read_bytes() == b"mine"
    utils.get_file("pack.zip", url, extract=True, force_download=True)  # a new download: a fresh folder
    assert (folder / "pack" / "a.txt").read_bytes() == MEMBERS["pack/a.txt"]


def test_not_an_archive_warns(server, home):
    with pytest.warns(UserWarning, match="could not extract"):
        folder = utils.get_file("plain.txt", server["url"] + "/plain.txt", extract=True)
    assert not os.path.exists(folder) and (home / "datasets" / "plain.txt").is_file()


@pytest.mark.parametrize("name, reason", [
    ("dotdot.tar.gz", "path leaves the folder"), ("absolute.tar.gz", "absolute path"),
    ("symlink.tar.gz", "symlink to '../../outside'"), ("abs-symlink.tar.gz", "symlink to '/etc'"),
    ("through-link.tar.gz", "goes through a link"), ("hardlink.tar.gz", "hard link to '../outside'"),
    ("device.tar.gz", "device"), ("dotdot.zip", "path leaves the folder"), ("absolute.zip", "absolute path")])
def test_hostile_archive_is_refused_and_writes_nothing(name, reason, server, tmp_path, home):
    before = _tree(tmp_path)
    with pytest.raises(UnsafeArchiveError, match="refusing to extract") as info:
        utils.get_file(name, server["url"] + "/" + name, extract=True)
    assert reason in str(info.value) and "Nothing was extracted" in str(info.value)
    assert isinstance(info.value, ValueError)
    # only the (hash-checkable) archive itself was added; no folder, no member, inside or out
    added = sorted(set(_tree(tmp_path)) - set(before))
    assert added == ["home", "home/datasets", f"home/datasets/{name}"]
    assert not os.path.lexists("/tmp/cnnfast-absolute-evil")


def test_extract_archive_directly(server, tmp_path):
    target = tmp_path / "out"
    assert file_utils.extract_archive(server["root"] / "pack.tar.xz", target) is True
    assert (target / "pack" / "sub" / "b.bin").read_bytes() == MEMBERS["pack/sub/b.bin"]
    assert file_utils.extract_archive(server["root"] / "pack.zip", tmp_path / "z", archive_format="tar") is False
    assert file_utils.extract_archive(server["root"] / "pack.zip", tmp_path / "z", archive_format=None) is False
    with pytest.raises(ValueError, match="archive_format"):
        file_utils.extract_archive(server["root"] / "pack.zip", tmp_path / "z", archive_format="rar")


# --------------------------------------------------------------------------- hashing helpers


def test_hash_file_and_validate_file(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(PAYLOAD)
    assert utils.hash_file(f) == SHA256 and utils.hash_file(str(f), "md5") == MD5
    assert utils.hash_file(f, hashlib.sha1()) == hashlib.sha1(PAYLOAD).hexdigest()
    assert utils.hash_file(f, "auto") == MD5  # Keras: "auto" with no hash to look at is md5
    assert utils.validate_file(f, SHA256) and utils.validate_file(f, MD5) and utils.validate_file(f, MD5.upper())
    assert utils.validate_file(f, SHA256, algorithm="sha256")
    assert not utils.validate_file(f, MD5, algorithm="sha256")
    assert not utils.validate_file(f, hashlib.sha256(b"").hexdigest())
    with pytest.raises(ValueError, match="hash_algorithm"):
        utils.validate_file(f, SHA256, algorithm="sha1")
    with pytest.raises(TypeError, match="hash_file"):
        utils.hash_file(f, 3)


def test_hash_functions_agree_with_keras(tmp_path, keras):
    from keras.src.utils import file_utils as keras_file_utils

    f = tmp_path / "f"
    f.write_bytes(PAYLOAD)
    for algorithm in ("sha256", "md5", "auto"):
        assert utils.hash_file(f, algorithm) == keras_file_utils.hash_file(str(f), algorithm)
    for h in (SHA256, MD5, "0" * 64):
        assert utils.validate_file(f, h) == keras_file_utils.validate_file(str(f), h)


def test_cnnfast_home(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNFAST_HOME", str(tmp_path / "h"))
    assert utils.cnnfast_home() == str(tmp_path / "h")
    monkeypatch.delenv("CNNFAST_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert utils.cnnfast_home() == str(tmp_path / ".cache" / "cnnfast")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, error, message", [
    ({}, ValueError, "origin"),
    ({"origin": 5}, TypeError, "origin must be a URL"),
    ({"origin": "/local/file.bin"}, ValueError, "file:// URL"),
    ({"origin": "gopher://x/y"}, ValueError, "origin must be"),
    ({"origin": "http://127.0.0.1/"}, ValueError, "pass fname="),
    ({"origin": "http://127.0.0.1/x", "fname": "sub/x"}, ValueError, "not a path"),
    ({"origin": "http://127.0.0.1/x", "fname": "../x"}, ValueError, "cache_dir"),
    ({"origin": "http://127.0.0.1/x", "fname": ".."}, ValueError, "file name"),
    ({"origin": "http://127.0.0.1/x", "fname": 3}, TypeError, "fname"),
    ({"origin": "http://127.0.0.1/x", "file_hash": SHA256, "hash_algorithm": "sha1"}, ValueError, "hash_algorithm"),
    ({"origin": "http://127.0.0.1/x", "file_hash": "abc"}, ValueError, "32 hex digits of a md5"),
    ({"origin": "http://127.0.0.1/x", "file_hash": MD5, "hash_algorithm": "sha256"}, ValueError, "64 hex"),
    ({"origin": "http://127.0.0.1/x", "file_hash": "z" * 64}, ValueError, "hex digits"),
    ({"origin": "http://127.0.0.1/x", "extract": True, "archive_format": "rar"}, ValueError, "archive_format"),
    ({"origin": "http://127.0.0.1/x", "cache_subdir": 3}, TypeError, "cache_subdir"),
])
def test_bad_arguments_are_refused_before_any_request(kwargs, error, message, home):
    with pytest.raises(error, match=message) as info:
        utils.get_file(**kwargs)
    assert "cnnfast.utils.get_file" in str(info.value)
    assert not home.exists()


def test_file_url_origin(tmp_path, home):
    src = tmp_path / "local.bin"
    src.write_bytes(PAYLOAD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = utils.get_file(origin=src.as_uri(), file_hash=SHA256)
    assert pathlib.Path(path).read_bytes() == PAYLOAD
