"""Files: saving is atomic, loading hostile files fails cleanly and never runs code, data-set files
are verified before they are parsed.

* A process that saves a large model over and over is SIGKILLed at random moments; the file on
  disk must always load and hold exactly one of the saved states.
* Truncated, bit-flipped, oversized and forged archives (unknown classes, path traversal, huge
  declared shapes, zip bombs, pickled .npy members, encrypted members, nested configs) must raise
  ``InvalidFileError`` naming the file; a planted pickle that would create a canary file proves
  nothing is ever unpickled.
* Data-set files with the wrong size or hash are rejected before parsing.
* A short run of each fuzz target in ``fuzz/`` (the long campaigns run outside the suite).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import pathlib
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from cnnfast import layers, models
from cnnfast.datasets import _fetch, cifar10, mnist
from cnnfast.datasets._fetch import DatasetCorruptError
from cnnfast.saving import InvalidFileError, load_torch_state_dict
from cnnfast.utils import set_random_seed
from conftest import shared_data_dir

from _hardening import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "fuzz"))
import targets as fuzz_targets  # noqa: E402
import run as fuzz_run  # noqa: E402

F32 = np.float32


# --------------------------------------------------------------------------------------------
# Atomic saving under SIGKILL

SAVER = """
import sys, numpy as np
from cnnfast import layers, models
path, mode = sys.argv[1], sys.argv[2]
m = models.Sequential([layers.Input((512,)), layers.Dense(2048), layers.Dense(1536)])  # ~4.2 M weights, 17 MB
m.compile("sgd", "mse")
k = int(sys.argv[3])
while True:
    k += 1
    for v in m.weights:
        v.value[...] = k
    (m.save if mode == "model" else m.save_weights)(path)
    print(k, flush=True)
"""


def _consistent_state(path, mode):
    """The single value every weight of the file holds (a file mixing two saves fails)."""
    if mode == "model":
        weights = models.load_model(path).get_weights()
    else:
        m = models.Sequential([layers.Input((512,)), layers.Dense(2048), layers.Dense(1536)])
        m.load_weights(path)
        weights = m.get_weights()
    values = {float(v) for w in weights for v in np.unique(w)}
    assert len(values) == 1, f"the file mixes states {sorted(values)[:5]}"
    return values.pop()


@pytest.mark.parametrize("mode", ["model", "weights"])
def test_save_killed_at_random_moments_leaves_a_complete_file(tmp_path, mode):
    path = tmp_path / ("m.keras" if mode == "model" else "m.weights.npz")
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    rnd = random.Random(1234)
    last_state = 0
    for round_ in range(4):
        proc = subprocess.Popen([sys.executable, str(script), str(path), mode, str(1000 * round_)],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "CNNFAST_NUM_THREADS": "1"})
        try:
            first = proc.stdout.readline()  # one complete save has landed
            assert first.strip(), "the saver died before its first save"
            time.sleep(rnd.uniform(0.0, 0.35))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        completed = [int(line) for line in [first, *proc.stdout.read().split()] if line.strip()]
        state = _consistent_state(path, mode)
        # the file holds the last completed save, or the one in flight if its rename had happened
        assert state in (completed[-1], completed[-1] + 1), (state, completed[-3:])
        assert state > last_state
        last_state = state
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert all(p.startswith("." + path.name + ".") for p in leftovers)  # only the killed saves' temporaries


def test_failed_save_keeps_the_previous_file(tmp_path):
    set_random_seed(0)
    m = models.Sequential([layers.Input((3,)), layers.Dense(2)])
    path = tmp_path / "m.keras"
    m.save(path)
    before = path.read_bytes()

    class Boom(Exception):
        pass

    original = m.get_config

    def failing():
        raise Boom()
    m.get_config = failing
    with pytest.raises(Boom):
        m.save(path)
    m.get_config = original
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_saved_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        m = models.Sequential([layers.Input((3,)), layers.Dense(2)])
        m.save(tmp_path / "m.keras")
        m.save_weights(tmp_path / "m.weights.npz")
    finally:
        os.umask(old)
    for name in ("m.keras", "m.weights.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, oct((tmp_path / name).stat().st_mode)
    old = os.umask(0o077)
    try:
        m.save(tmp_path / "private.keras")
        os.chmod(tmp_path / "m.keras", 0o640)
        m.save(tmp_path / "m.keras")  # overwriting keeps the file's mode, as open(path, "wb") does
    finally:
        os.umask(old)
    assert (tmp_path / "private.keras").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "m.keras").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.weights.npz", "private.keras"]


# --------------------------------------------------------------------------------------------
# Hostile archives


@pytest.fixture(scope="module")
def keras_bytes(tmp_path_factory):
    return fuzz_targets.seed_keras()


def _members(blob):
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zip(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _load_bytes(tmp_path, blob, name="x.keras"):
    path = tmp_path / name
    path.write_bytes(blob)
    return models.load_model(path)


def _refused(tmp_path, blob, match=None, names_file=True):
    with pytest.raises(InvalidFileError) as info:
        _load_bytes(tmp_path, blob)
    if names_file:  # see test_config_errors_name_the_file for the errors that do not yet
        assert "x.keras" in str(info.value), str(info.value)
    if match:
        assert any(m in str(info.value) for m in match.split("|")), str(info.value)
    assert not fuzz_targets.CANARY.exists()


def test_the_seed_file_loads(tmp_path, keras_bytes):
    model = _load_bytes(tmp_path, keras_bytes)
    assert model.optimizer.iterations == 1


def test_every_truncation_is_refused(tmp_path, keras_bytes):
    for cut in list(range(0, 64)) + list(range(64, len(keras_bytes), max(1, len(keras_bytes) // 97))):
        _refused(tmp_path, keras_bytes[:cut])


def test_every_single_bit_flip_in_the_zip_structure_is_refused(tmp_path, keras_bytes):
    positions = set(range(0, 64))  # local header of the first member
    positions |= set(range(_central_directory(keras_bytes), len(keras_bytes)))  # central directory, ECD
    for pos in sorted(positions):
        for bit in (0, 3, 7):
            blob = bytearray(keras_bytes)
            blob[pos] ^= 1 << bit
            try:
                _load_bytes(tmp_path, bytes(blob))
            except InvalidFileError:
                pass


def _with_member(blob, name, data):
    members = _members(blob)
    members[name] = data
    return _zip(members)


def _config(blob):
    return json.loads(_members(blob)["config.json"])


def _with_config(blob, config):
    return _with_member(blob, "config.json", json.dumps(config).encode())


@pytest.mark.parametrize("name", ["../evil.json", "/etc/passwd", "a/../../b", "..\\x", "C:/x", "payload.py",
                                  "model.weights.h5", "config.json/", "./config.json"])
def test_path_traversal_and_unknown_members_are_refused(tmp_path, keras_bytes, name):
    _refused(tmp_path, _with_member(keras_bytes, name, b"x"), "unsafe member name|unexpected member|members, expected")


def test_duplicate_members_are_refused(tmp_path, keras_bytes):
    members = list(_members(keras_bytes).items())
    buf = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buf, "w") as zf:
        for name, data in members + [members[1]]:
            zf.writestr(name, data)
    _refused(tmp_path, buf.getvalue(), "duplicate|members, expected")


@pytest.mark.parametrize("class_name,extra", [
    ("Lambda", {}), ("os.system", {}), ("builtins.eval", {}), ("__import__", {}),
    ("Dense", {"function": "print"}), ("Dense", {"module": "os", "registered_name": "system"}),
    ("Dense", {"units": "__import__('os').system('id')"}), ("Dense", {"activation": "eval"}),
    ("Dense", {"kernel_initializer": {"class_name": "os.system", "config": {}}}),
])
def test_unknown_classes_and_code_are_refused(tmp_path, keras_bytes, class_name, extra):
    config = _config(keras_bytes)
    entry = config["config"]["layers"][-1]
    entry["class_name"] = class_name
    entry["config"].update(extra)
    _refused(tmp_path, _with_config(keras_bytes, config), names_file=False)


@pytest.mark.parametrize("where,value", [
    (("compile_config", "optimizer"), {"class_name": "subprocess.Popen", "config": {"args": ["id"]}}),
    (("compile_config", "loss"), {"class_name": "builtins.exec", "config": {}}),
    (("compile_config", "metrics"), [{"class_name": "Lambda", "config": {}}]),
    (("class_name",), "Model"),
])
def test_forged_compile_and_model_classes_are_refused(tmp_path, keras_bytes, where, value):
    config = _config(keras_bytes)
    target = config
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    if where == ("class_name",):
        config["module"] = "subprocess"
    _refused(tmp_path, _with_config(keras_bytes, config))


def test_huge_declared_layer_sizes_are_refused_before_allocating(tmp_path, keras_bytes):
    for units in (10**9, 2**62, 10**30):
        config = _config(keras_bytes)
        config["config"]["layers"][-1]["config"]["units"] = units
        _refused(tmp_path, _with_config(keras_bytes, config), "more than the file's weights can hold|units",
                 names_file=False)


def _npy(header: dict | str, body=b"", version=1):
    buf = io.BytesIO()
    if isinstance(header, dict):
        if version == 1:
            np.lib.format.write_array_header_1_0(buf, header)
        else:
            np.lib.format.write_array_header_2_0(buf, header)
        return buf.getvalue() + body
    magic = b"\x93NUMPY\x01\x00"
    hb = header.encode("latin1")
    hb += b" " * (16 - (len(magic) + 2 + len(hb) + 1) % 16) + b"\n"
    return magic + struct.pack("<H", len(hb)) + hb + body


def _with_weight(blob, array_name, npy_bytes):
    weights = _members(_members(blob)["model.weights.npz"])
    weights[array_name + ".npy"] = npy_bytes
    return _with_member(blob, "model.weights.npz", _zip(weights))


def _weight_names(blob):
    return sorted(n[:-4] for n in _members(_members(blob)["model.weights.npz"]))


@pytest.mark.parametrize("shape", [(10**12,), (2**31, 2**31), (2**62,), (0,)])
def test_huge_or_wrong_npy_shapes_are_refused(tmp_path, keras_bytes, shape):
    name = _weight_names(keras_bytes)[-1]
    blob = _with_weight(keras_bytes, name, _npy({"descr": "<f4", "fortran_order": False, "shape": shape}, b"\0" * 12))
    _refused(tmp_path, blob, f"array '{name}'")


@pytest.mark.parametrize("descr", ["<f8", ">f4", "<i4", "|b1", "<c8", "<U4", "|V4"])
def test_other_npy_dtypes_are_refused(tmp_path, keras_bytes, descr):
    name = _weight_names(keras_bytes)[-1]
    shape = np.lib.format.read_array(io.BytesIO(_members(_members(keras_bytes)["model.weights.npz"])[name + ".npy"])).shape
    itemsize = np.dtype(descr).itemsize
    body = b"\0" * (int(np.prod(shape)) * itemsize)
    _refused(tmp_path, _with_weight(keras_bytes, name, _npy({"descr": descr, "fortran_order": False, "shape": shape}, body)),
             f"array '{name}'")


def test_pickled_npy_members_are_refused_and_never_unpickled(tmp_path, keras_bytes):
    buf = io.BytesIO()
    np.save(buf, np.array([fuzz_targets.Canary()], dtype=object), allow_pickle=True)
    for name in _weight_names(keras_bytes)[:2]:
        _refused(tmp_path, _with_weight(keras_bytes, name, buf.getvalue()), "Python objects")
    optimizer = _members(_members(keras_bytes)["optimizer.npz"])
    optimizer["iterations.npy"] = buf.getvalue()
    _refused(tmp_path, _with_member(keras_bytes, "optimizer.npz", _zip(optimizer)), "Python objects")


def test_zip_bombs_are_refused(tmp_path, keras_bytes):
    members = _members(keras_bytes)
    bomb = members["config.json"] + b" " * (64 << 20)  # 64 MB of spaces, ~64 KB deflated
    _refused(tmp_path, _zip({**members, "config.json": bomb}, zipfile.ZIP_DEFLATED), "zip bomb|limit")
    weights = _members(members["model.weights.npz"])
    name = sorted(weights)[0]
    weights[name] = weights[name] + b"\0" * (256 << 20)
    inner = _zip(weights, zipfile.ZIP_DEFLATED)
    assert len(inner) < (2 << 20)
    _refused(tmp_path, _zip({**members, "model.weights.npz": inner}), "zip bomb|bytes|declares")


def test_deep_json_is_refused(tmp_path, keras_bytes):
    _refused(tmp_path, _with_member(keras_bytes, "config.json", b"[" * 200000), "invalid JSON")


def test_deeply_nested_models_are_refused(tmp_path, keras_bytes):
    inner = '{"class_name": "Dense", "config": {"units": 2}}'
    for i in range(200):
        inner = '{"class_name": "Sequential", "config": {"name": "s%d", "layers": [%s]}}' % (i, inner)
    config = ('{"class_name": "Sequential", "config": {"name": "top", "layers": [{"class_name": "InputLayer", '
              '"config": {"batch_shape": [null, 4]}}, %s]}, "compile_config": null}' % inner)
    _refused(tmp_path, _with_member(keras_bytes, "config.json", config.encode()), names_file=False)


def test_config_errors_name_the_file(tmp_path, keras_bytes):
    config = _config(keras_bytes)
    config["config"]["layers"][-1]["class_name"] = "Lambda"
    _refused(tmp_path, _with_config(keras_bytes, config), "Lambda")
    with pytest.raises(InvalidFileError) as info:
        _load_bytes(tmp_path, _with_config(keras_bytes, config))
    from cnnfast.saving import ConfigError
    assert isinstance(info.value.__cause__, ConfigError)  # chained, not replaced
    assert str(info.value).count("x.keras") == 1, str(info.value)


def test_duplicate_layer_names_are_refused(tmp_path, keras_bytes):
    config = _config(keras_bytes)
    stack = config["config"]["layers"]
    stack[2]["config"]["name"] = stack[1]["config"]["name"]
    with pytest.raises(InvalidFileError, match="unique|duplicate"):
        _load_bytes(tmp_path, _with_config(keras_bytes, config))


@pytest.mark.parametrize("literal", [b"1" + b"0" * 400, b"1" + b"0" * 5000], ids=["1e400", "5001-digits"])
def test_absurd_numbers_in_the_config_are_refused(tmp_path, keras_bytes, literal):
    config = _config(keras_bytes)
    dropout = next(l for l in config["config"]["layers"] if l["class_name"] == "Dropout")
    dropout["config"]["rate"] = 0.123
    text = json.dumps(config).encode().replace(b"0.123", literal)
    _refused(tmp_path, _with_member(keras_bytes, "config.json", text), names_file=False)


def test_non_finite_loss_weights_are_refused(tmp_path, keras_bytes):
    text = _members(keras_bytes)["config.json"].replace(b'"loss_weights": null', b'"loss_weights": Infinity')
    assert b"Infinity" in text
    _refused(tmp_path, _with_member(keras_bytes, "config.json", text), names_file=False)


def _end_of_central_directory(blob):
    return blob.rfind(b"PK\x05\x06")  # the outer archive's: the stored .npz members hold their own


def _central_directory(blob):
    offset = struct.unpack_from("<I", blob, _end_of_central_directory(blob) + 16)[0]
    assert blob[offset:offset + 4] == b"PK\x01\x02"
    return offset


def test_zip_with_an_unknown_version_is_refused(tmp_path, keras_bytes):
    blob = bytearray(keras_bytes)
    blob[_central_directory(blob) + 6] = 0xFF  # "version needed to extract": 25.5
    _refused(tmp_path, bytes(blob))


def test_encrypted_members_are_refused(tmp_path, keras_bytes):
    blob = bytearray(keras_bytes)
    blob[0 + 6] |= 0x01  # general-purpose flags of the first local header and its central entry
    blob[_central_directory(blob) + 8] |= 0x01
    _refused(tmp_path, bytes(blob), "encrypted")


def test_bytes_missing_before_the_central_directory_are_refused(tmp_path, keras_bytes):
    inner = _members(keras_bytes)["model.weights.npz"]
    cd = _central_directory(inner)
    _refused(tmp_path, _with_member(keras_bytes, "model.weights.npz", inner[:cd - 6] + inner[cd:]))


def _corrupt_first_member(blob):
    blob = bytearray(blob)
    start = 30 + len("metadata.json") + 20  # inside the first member's compressed bytes
    for i in range(start, start + 8):
        blob[i] ^= 0x55
    return bytes(blob)


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2], ids=["deflate", "bzip2"])
def test_corrupt_compressed_members_are_refused(tmp_path, keras_bytes, compression):
    _refused(tmp_path, _corrupt_first_member(_zip(_members(keras_bytes), compression)), "metadata.json")


def test_corrupt_lzma_members_are_refused(tmp_path, keras_bytes):
    _refused(tmp_path, _corrupt_first_member(_zip(_members(keras_bytes), zipfile.ZIP_LZMA)), "metadata.json")


def test_unterminated_npy_header_is_refused(tmp_path, keras_bytes):
    name = _weight_names(keras_bytes)[0]
    blob = _with_weight(keras_bytes, name, _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,"))
    _refused(tmp_path, blob, f"array '{name}'")


def test_weights_and_torch_archives_refuse_pickles(tmp_path):
    model = fuzz_targets.target_model()
    buf = io.BytesIO()
    np.savez(buf, a=np.array([fuzz_targets.Canary()], dtype=object), allow_pickle=True)
    path = tmp_path / "evil.weights.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(InvalidFileError, match="Python objects"):
        model.load_weights(path)
    torch_path = tmp_path / "evil.npz"
    torch_path.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="Python objects"):
        load_torch_state_dict(model, torch_path)
    assert not fuzz_targets.CANARY.exists()


def test_weights_file_without_marker_is_refused(tmp_path):
    model = fuzz_targets.target_model()
    buf = io.BytesIO()
    np.savez(buf, **{name: w for name, w in zip(["x"], [np.zeros(3, F32)])})
    path = tmp_path / "plain.weights.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(InvalidFileError):
        model.load_weights(path)


# --------------------------------------------------------------------------------------------
# Data-set files


def _fake_dataset_dir(tmp_path, spec):
    """Files with the right names and sizes but other bytes."""
    d = tmp_path / spec.subdir
    d.mkdir()
    for rf in spec.files:
        (d / rf.name).write_bytes(b"\0" * rf.size)
    return tmp_path


def test_dataset_files_with_a_wrong_hash_are_refused(tmp_path, monkeypatch):
    path = _fake_dataset_dir(tmp_path, mnist.DATASET)
    parsed = []
    monkeypatch.setattr("cnnfast.datasets._idx.read_idx", lambda *a, **k: parsed.append(a))
    with pytest.raises(DatasetCorruptError, match="sha256"):
        mnist.load_data(path=path, download=False)
    assert not parsed  # refused before any parsing


def test_dataset_files_with_a_wrong_size_are_refused(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    rf = mnist.DATASET.files[0]
    (d / rf.name).write_bytes(b"\0" * (rf.size - 1))
    with pytest.raises(DatasetCorruptError, match="truncated"):
        mnist.load_data(path=tmp_path, download=False)


def test_real_dataset_with_one_flipped_byte_is_refused(tmp_path):
    source = shared_data_dir()
    if source is None:
        pytest.skip("MNIST not in the shared data directory (set CNNFAST_DATA)")
    d = tmp_path / "mnist"
    shutil.copytree(source / "mnist", d)
    labels = d / mnist.DATASET.files[3].name
    blob = bytearray(labels.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    labels.chmod(0o644)
    labels.write_bytes(bytes(blob))
    with pytest.raises(DatasetCorruptError, match="sha256"):
        mnist.load_data(path=tmp_path, download=False)
    blob[len(blob) // 2] ^= 0x01
    labels.write_bytes(bytes(blob))
    (x, y), (xt, yt) = mnist.load_data(path=tmp_path, download=False)
    assert x.shape == (60000, 28, 28) and yt.shape == (10000,)


def test_cifar_batch_pickles_never_run_code(tmp_path):
    import pickle
    payloads = [
        pickle.dumps({"data": fuzz_targets.Canary(), "labels": [1]}, protocol=2),
        pickle.dumps(fuzz_targets.Canary(), protocol=4),
        b"cos\nsystem\n(S'touch " + str(fuzz_targets.CANARY).encode() + b"'\ntR.",
        b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03.",
    ]
    for raw in payloads:
        with pytest.raises(DatasetCorruptError, match="CIFAR-10"):
            cifar10._python_batch(raw, "evil")
        assert not fuzz_targets.CANARY.exists()
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(fuzz_targets.seed_cifar_archive())
    (x, y), (xt, yt) = cifar10.read_python_archive(archive)
    assert x.shape == (15, 32, 32, 3) and yt.shape == (3, 1)


def test_cifar_archive_with_a_wrong_hash_is_never_read(tmp_path, monkeypatch):
    d = tmp_path / "cifar-10"
    d.mkdir()
    (d / cifar10.PYTHON_ARCHIVE.name).write_bytes(b"\0" * cifar10.PYTHON_ARCHIVE.size)
    monkeypatch.setattr(cifar10, "read_python_archive", lambda *a: pytest.fail("parsed an unverified archive"))
    with pytest.raises(DatasetCorruptError, match="sha256"):
        cifar10.load_data(path=tmp_path, download=False)


def test_idx_with_a_zero_dimension():
    from cnnfast.datasets._idx import read_idx
    path = fuzz_targets._write("zero.idx.gz", gzip.compress(struct.pack(">HBBII", 0, 8, 2, 0, 5)))
    assert read_idx(path).shape == (0, 5)


def test_idx_headers_claiming_more_than_the_payload_are_refused():
    from cnnfast.datasets._idx import read_idx
    for header in (struct.pack(">HBBI", 0, 8, 1, 2**32 - 1), struct.pack(">HBBIII", 0, 8, 3, 2**16, 2**16, 4),
                   struct.pack(">HBB", 0, 9, 1), struct.pack(">HBB", 1, 8, 1), b"\0\0"):
        path = fuzz_targets._write("bad.idx.gz", gzip.compress(header + b"\x01\x02"))
        with pytest.raises(DatasetCorruptError):
            read_idx(path)


# --------------------------------------------------------------------------------------------
# Short fuzz runs (fixed seeds; fuzz/run.py runs the real campaigns)

@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_fuzz_smoke(name):
    target, seed_factory, mutator = fuzz_targets.TARGETS[name]
    seed = seed_factory()
    target(seed)
    for s in range(400):
        for structured in (False, True) if mutator else (False,):
            target(fuzz_run.make_input(name, seed, s, structured))
