"""Saving and loading: round trips, exact resumption of training, atomic writes, and files that
must be refused (corrupt, truncated, zip bombs, path traversal, forged classes, shapes, pickles)."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

from cnnfast import layers, models, optimizers, saving
from cnnfast.saving import InvalidFileError
from cnnfast.saving.archive import write_atomic
from cnnfast.utils import set_random_seed


def cnn(seed=0, compile=True):
    set_random_seed(seed)
    m = models.Sequential([
        layers.Input((6, 6, 1)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(8, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])
    if compile:
        m.compile(optimizers.Adam(learning_rate=0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def residual(seed=0):
    set_random_seed(seed)
    inputs = layers.Input((5, 5, 2))
    a = layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    b = layers.DepthwiseConv2D(3, padding="same")(a)
    up = layers.ZeroPadding2D(((0, 1), (0, 1)))(layers.UpSampling2D()(layers.MaxPooling2D()(a)))
    c = layers.Concatenate()([layers.Add()([a, b]), up])
    inner = models.Sequential([layers.Input((6,)), layers.Dense(4, activation="tanh")], name="inner")
    out = layers.Dense(2, activation="softmax")(inner(layers.GlobalAveragePooling2D()(c)))
    model = models.Model(inputs, out, name="residual")
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    return model


@pytest.fixture
def data(rng):
    x = rng.standard_normal((40, 6, 6, 1)).astype(np.float32)
    return x, (x[:, :3].sum((1, 2, 3)) > 0).astype(int) + (x.mean((1, 2, 3)) > 0.2)


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights())) and \
        len(a.get_weights()) == len(b.get_weights())


def test_round_trip_sequential(data, tmp_path):
    x, y = data
    model = cnn()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = models.load_model(path)
    assert type(loaded) is models.Sequential and loaded.name == model.name
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert same_weights(model, loaded)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_config() == model.get_config()
    assert isinstance(loaded.optimizer, optimizers.Adam) and loaded.optimizer.learning_rate == 0.01
    assert loaded.optimizer.iterations == model.optimizer.iterations == 5
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    names = zipfile.ZipFile(path).namelist()
    assert names == ["metadata.json", "config.json", "model.weights.npz", "optimizer.npz"]
    assert not [p for p in os.listdir(tmp_path) if p != "m.keras"]  # no temporary file left


def test_round_trip_functional_with_nested_model(rng, tmp_path):
    model = residual()
    x = rng.standard_normal((4, 5, 5, 2)).astype(np.float32)
    model.fit(x, np.array([0, 1, 1, 0]), verbose=0)
    model.save(tmp_path / "r.keras")
    loaded = models.load_model(tmp_path / "r.keras")
    assert type(loaded) is models.Model and loaded.name == "residual"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_config() == model.get_config()
    uncompiled = models.load_model(tmp_path / "r.keras", compile=False)
    assert not uncompiled.compiled


def test_resumed_training_is_bit_identical(data, tmp_path):
    """2 epochs in one go == 1 epoch, save, load, 1 more epoch (Adam state, BN statistics, dropout
    masks and shuffling all continue exactly)."""
    x, y = data
    straight = cnn(seed=4)
    set_random_seed(99)
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0)

    first = cnn(seed=4)
    set_random_seed(99)
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    first.save(tmp_path / "half.keras")
    resumed = models.load_model(tmp_path / "half.keras")
    resumed.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, verbose=0)
    assert same_weights(straight, resumed)
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 10


def test_weights_files(data, tmp_path):
    x, _ = data
    model = cnn(seed=1)
    path = tmp_path / "w.weights.npz"
    model.save_weights(path)
    other = cnn(seed=2)  # same architecture, other weights and other layer names
    assert not same_weights(model, other)
    other.load_weights(path)
    assert same_weights(model, other)
    model.save(tmp_path / "full.keras")
    third = cnn(seed=3)
    third.load_weights(tmp_path / "full.keras")
    assert same_weights(model, third)
    with np.load(path, allow_pickle=False) as npz:
        assert "layers/conv2d/vars/0" in npz.files and "layers/dense_1/vars/1" in npz.files
    wrong = models.Sequential([layers.Input((6, 6, 1)), layers.Flatten(), layers.Dense(3)])
    with pytest.raises(InvalidFileError, match="unexpected array 'layers/conv2d/vars/0'"):
        wrong.load_weights(path)
    with pytest.raises(ValueError, match="must end in '.weights.npz'"):
        model.save_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match=r"must end in '\.weights\.h5'.*legacy \.h5 layout is read"):
        model.save_weights(tmp_path / "w.h5")  # .weights.h5 is written (tests/test_h5_weights.py)
    with pytest.raises(ValueError, match="must end in '.keras'"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(FileExistsError):
        model.save_weights(path, overwrite=False)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def failing(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(str(path), failing)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


# --- hostile files ---------------------------------------------------------------------------
def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _write(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.fixture
def saved(tmp_path):
    model = cnn(compile=False)
    path = tmp_path / "good.keras"
    model.save(path)
    return path, _members(path)


def _config(members):
    return json.loads(members["config.json"])


def test_refuses_non_zip_and_truncated(saved, tmp_path):
    path, members = saved
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"\x80\x04not a zip, maybe a pickle")
    with pytest.raises(InvalidFileError, match="not a valid zip archive"):
        models.load_model(bad)
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InvalidFileError):
        models.load_model(bad)
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="HDF5 files are not supported"):
        models.load_model(tmp_path / "model.h5")


def test_refuses_path_traversal_and_unknown_members(saved, tmp_path):
    _, members = saved
    for name in ("../evil.json", "/etc/passwd", "a/../../b", "payload.py", "model.weights.h5"):
        bad = tmp_path / "bad.keras"
        _write(bad, {**members, name: b"x"} if name != "model.weights.h5" else
               {k: v for k, v in members.items() if k != "model.weights.npz"} | {name: b"x"})
        with pytest.raises(InvalidFileError, match="unsafe member name|unexpected member|members, expected"):
            models.load_model(bad)


def test_refuses_zip_bombs(saved, tmp_path):
    _, members = saved
    bad = tmp_path / "bomb.keras"
    cfg = members["config.json"] + b" " * (8 << 20)  # valid JSON padded with 8 MB of spaces
    _write(bad, {**members, "config.json": cfg}, zipfile.ZIP_DEFLATED)
    with pytest.raises(InvalidFileError, match="refused as a zip bomb"):
        models.load_model(bad)


def test_refuses_code_and_unknown_classes(saved, tmp_path):
    _, members = saved
    bad = tmp_path / "bad.keras"
    for class_name, extra in (("Lambda", {}), ("os.system", {}), ("Dense", {"function": "print"}),
                              ("Dense", {"units": "__import__('os')"})):
        cfg = _config(members)
        entry = cfg["config"]["layers"][-1]
        entry["class_name"] = class_name
        entry["config"].update(extra)
        _write(bad, {**members, "config.json": json.dumps(cfg).encode()})
        with pytest.raises(InvalidFileError, match="disallowed layer class|does not take the argument|units"):
            models.load_model(bad)
    cfg = _config(members)
    cfg["class_name"] = "Model"
    cfg["module"] = "subprocess"
    _write(bad, {**members, "config.json": json.dumps(cfg).encode()})
    with pytest.raises(InvalidFileError, match="Sequential or Functional"):
        models.load_model(bad)
    _write(bad, {**members, "metadata.json": b'{"keras_version": "3.15.1"}'})   # Keras's, with cnnfast's members
    with pytest.raises(InvalidFileError, match="unexpected member 'model.weights.npz' in a Keras 3 .keras file"):
        models.load_model(bad)
    _write(bad, {**members, "config.json": b"[" * 100000})
    with pytest.raises(InvalidFileError, match="invalid JSON"):
        models.load_model(bad)


def test_refuses_huge_declared_shapes(saved, tmp_path):
    _, members = saved
    bad = tmp_path / "huge.keras"
    cfg = _config(members)
    cfg["config"]["layers"][-1]["config"]["units"] = 10 ** 9  # would need 32 GB
    _write(bad, {**members, "config.json": json.dumps(cfg).encode()})
    with pytest.raises(InvalidFileError, match="more than the file's weights can hold"):
        models.load_model(bad)
    # an .npy header claiming far more data than the member holds
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(members["model.weights.npz"])) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "layers/dense_1/vars/1.npy":
                header = {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)}
                hbuf = io.BytesIO()
                np.lib.format.write_array_header_1_0(hbuf, header)
                data = hbuf.getvalue() + b"\0" * 12
            dst.writestr(info.filename, data)
    _write(bad, {**members, "model.weights.npz": buf.getvalue()})
    with pytest.raises(InvalidFileError, match=r"array 'layers/dense_1/vars/1' has shape \(1000000000000,\)"):
        models.load_model(bad)


def test_refuses_pickled_and_mismatched_arrays(saved, tmp_path):
    _, members = saved
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(io.BytesIO(members["model.weights.npz"])) as zf:
        arrays = {n[:-4]: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist()}
    evil = dict(arrays)
    evil["layers/dense_1/vars/1"] = np.array([print, os.system], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **evil)
    _write(bad, {**members, "model.weights.npz": buf.getvalue()})
    with pytest.raises(InvalidFileError, match="holds Python objects; refused"):
        models.load_model(bad)
    wrong = dict(arrays)
    wrong["layers/dense_1/vars/1"] = np.zeros(4, np.float32)
    buf = io.BytesIO()
    np.savez(buf, **wrong)
    _write(bad, {**members, "model.weights.npz": buf.getvalue()})
    with pytest.raises(InvalidFileError, match=r"has shape \(4,\) and dtype float32; the model expects \(3,\)"):
        models.load_model(bad)
    missing = {k: v for k, v in arrays.items() if k != "layers/dense/vars/0"}
    buf = io.BytesIO()
    np.savez(buf, **missing)
    _write(bad, {**members, "model.weights.npz": buf.getvalue()})
    with pytest.raises(InvalidFileError, match="missing arrays for weights"):
        models.load_model(bad)


def test_load_refuses_custom_objects(saved):
    path, _ = saved
    with pytest.raises(ValueError, match="custom_objects are not supported"):
        models.load_model(path, custom_objects={"Lambda": object})
    assert isinstance(saving.load_model(path, compile=False), models.Sequential)


def test_load_model_in_a_process_that_imported_only_cnnfast_saving(tmp_path):
    """``cnnfast.saving.load_model`` (the Keras 3 spelling) must not rely on someone having
    imported ``cnnfast.models`` first: the model classes it rebuilds come with ``cnnfast.saving``."""
    import subprocess
    import sys
    path = tmp_path / "m.keras"
    residual().save(path)
    code = ("import sys, cnnfast\n"
            "model = cnnfast.saving.load_model(sys.argv[1])\n"
            "print(type(model).__name__, type(model.layers[-2]).__name__, model.compiled)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Model", "Sequential", "True"]
