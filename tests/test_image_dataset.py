"""cnnfast.utils.image_dataset_from_directory and the image file helpers (load_img, img_to_array,
array_to_img, save_img).

The image folders are real files written into tmp_path: MNIST test digits (PNG and JPEG) when the
shared data directory has MNIST, else generated images. TensorFlow is not installed, so Keras 3's
default ``tf.data`` pipeline cannot run; the oracle is Keras's own TensorFlow-free pipeline
(``format="grain"``, which needs the ``grain`` package; those tests skip without it), fed the
same folders: the same file_paths, class_names, split and, without shuffling, the same batches.
Everything else is checked against Keras's documented rules and Pillow-decoded references.
"""
from __future__ import annotations

import io
import os
import pathlib

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from cnnfast import layers, models, ops  # noqa: E402
from cnnfast.utils import (array_to_img, image_dataset_from_directory, img_to_array, load_img,  # noqa: E402
                           PyDataset, save_img, set_random_seed)
from tests.conftest import shared_data_dir  # noqa: E402

Image = pytest.importorskip("PIL.Image")
SHARED = shared_data_dir()
CLASSES = ("zero", "one", "two")


def _digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 28x28 images with labels 0..2: MNIST test digits, or generated strokes."""
    if SHARED is not None:
        from cnnfast.datasets import _idx
        x = _idx.read_idx(SHARED / "mnist" / "t10k-images-idx3-ubyte.gz", 3)
        y = _idx.read_idx(SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz", 1)
        picked = np.flatnonzero(y < 3)[:count]
        return x[picked], y[picked].astype(int)
    rng = np.random.default_rng(3)
    y = np.arange(count) % 3
    x = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
    for i, label in enumerate(y):  # a bar whose position is the class
        x[i, 4 + 8 * label:10 + 8 * label, 4:24] = 255
    return x, y


def _write_folder(root: pathlib.Path, count=30, sizes=None, rgb=False) -> pathlib.Path:
    """root/<class>/<i>.png (and every fifth as .jpg), plus a nested folder and ignored files."""
    x, y = _digits(count)
    for name in CLASSES:
        (root / name / "nested").mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y)):
        if sizes is not None:  # images of different sizes and aspect ratios
            img = np.asarray(Image.fromarray(img).resize(sizes[i % len(sizes)]))
        if rgb:
            img = np.stack([img, 255 - img, img // 2], axis=-1)
        where = root / CLASSES[label] / ("nested" if i % 7 == 0 else "")
        Image.fromarray(img).save(where / (f"d{i:03d}.jpg" if i % 5 == 0 else f"d{i:03d}.PNG"))
    (root / CLASSES[0] / "notes.txt").write_text("not an image")
    Image.fromarray(x[0]).save(root / "stray.png")  # outside the class folders: listed only without inferred labels
    (root / ".hidden").mkdir()
    return root


@pytest.fixture
def folder(tmp_path):
    return _write_folder(tmp_path / "digits")


@pytest.fixture(scope="module")
def keras_grain():
    keras = pytest.importorskip("keras")
    pytest.importorskip("grain")
    if keras.backend.backend() != "torch":
        pytest.skip("the oracle is Keras's torch backend (set KERAS_BACKEND=torch)")
    return keras


def _keras_ds(keras, directory, **kwargs):
    return keras.utils.image_dataset_from_directory(directory, format="grain", **kwargs)


def _to_numpy(batch):
    return tuple(np.asarray(b) for b in batch) if isinstance(batch, tuple) else np.asarray(batch)


def _expected_image(path, size, color_mode="rgb", **kwargs):
    """A Pillow-decoded, float32 reference of one file through cnnfast.ops.image.resize."""
    img = load_img(path, color_mode=color_mode)
    return ops.image.resize(img_to_array(img), size, **kwargs)


# --------------------------------------------------------------------------- against Keras (grain)


@pytest.mark.parametrize("kwargs", [
    dict(shuffle=False),
    dict(shuffle=False, color_mode="grayscale", label_mode="categorical"),
    dict(shuffle=False, interpolation="nearest", crop_to_aspect_ratio=True),
    dict(shuffle=False, pad_to_aspect_ratio=True, label_mode="binary", class_names=["two", "zero"]),
    dict(shuffle=False, color_mode="rgba", label_mode=None),
    dict(shuffle=False, batch_size=7, data_format="channels_first"),
])
def test_batches_match_keras(keras_grain, tmp_path, kwargs, capsys):
    folder = _write_folder(tmp_path / "digits", sizes=[(28, 28), (40, 22), (17, 31)])
    kwargs = dict(dict(image_size=(20, 24), batch_size=4), **kwargs)
    theirs = _keras_ds(keras_grain, folder, **kwargs)
    keras_out = capsys.readouterr().out
    ours = image_dataset_from_directory(folder, **kwargs)
    assert capsys.readouterr().out == keras_out
    assert ours.file_paths == theirs.file_paths
    assert ours.class_names == theirs.class_names
    batches = [_to_numpy(b) for b in theirs]
    assert len(ours) == len(batches)
    for mine, want in zip(ours, batches):
        mine, want = (mine, want) if isinstance(want, tuple) else ((mine,), (want,))
        np.testing.assert_allclose(mine[0], want[0], rtol=1e-5, atol=1e-3)
        assert mine[0].dtype == np.float32
        for a, b in zip(mine[1:], want[1:]):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [
    dict(seed=7),
    dict(seed=11, validation_split=0.25, subset="training"),
    dict(seed=11, validation_split=0.25, subset="validation"),
    dict(seed=2, labels="explicit", label_mode="int"),
    dict(seed=2, labels=None),
    dict(shuffle=False, follow_links=True),
])
def test_files_split_and_messages_match_keras(keras_grain, folder, kwargs, capsys):
    if kwargs.get("labels") == "explicit":
        count = sum(1 for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg"))
        kwargs = dict(kwargs, labels=[i % 4 for i in range(count)])  # the stray top-level file counts
    theirs = _keras_ds(keras_grain, folder, image_size=(8, 8), **kwargs)
    keras_out = capsys.readouterr().out
    ours = image_dataset_from_directory(folder, image_size=(8, 8), **kwargs)
    assert capsys.readouterr().out == keras_out
    assert ours.file_paths == theirs.file_paths
    assert ours.class_names == theirs.class_names


def test_both_subsets_match_keras(keras_grain, folder, capsys):
    theirs = _keras_ds(keras_grain, folder, image_size=(8, 8), seed=5, validation_split=0.3, subset="both")
    keras_out = capsys.readouterr().out
    train, val = image_dataset_from_directory(folder, image_size=(8, 8), seed=5, validation_split=0.3,
                                              subset="both")
    assert capsys.readouterr().out == keras_out
    assert train.file_paths == theirs[0].file_paths and val.file_paths == theirs[1].file_paths
    assert not set(train.file_paths) & set(val.file_paths)
    # the validation set is not shuffled: its batches are Keras's, in order
    for mine, want in zip(val, theirs[1]):
        np.testing.assert_allclose(mine[0], np.asarray(want[0]), rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(mine[1], np.asarray(want[1]))


# --------------------------------------------------------------------------- Keras's rules


def test_listing_order_labels_and_message(folder, capsys):
    ds = image_dataset_from_directory(folder, image_size=(28, 28), shuffle=False, batch_size=5)
    assert capsys.readouterr().out == f"Found 30 files belonging to 3 classes.\n"
    assert ds.class_names == ["one", "two", "zero"]  # sorted sub-folders, hidden ones skipped
    rel = [os.path.relpath(p, folder) for p in ds.file_paths]
    # class by class; in each, the directory itself then its sub-directories, files sorted by name
    expected = []
    for name in ds.class_names:
        top = sorted(f for f in os.listdir(folder / name) if f.lower().endswith((".png", ".jpg")))
        nested = sorted(os.listdir(folder / name / "nested"))
        expected += [os.path.join(name, f) for f in top] + [os.path.join(name, "nested", f) for f in nested]
    assert rel == expected
    assert len(ds) == 6 and ds.num_batches == 6
    x, y = ds[0]
    assert x.shape == (5, 28, 28, 3) and x.dtype == np.float32 and y.dtype == np.int32
    for path, image, label in zip(ds.file_paths, x, y):
        assert ds.class_names[label] == pathlib.Path(path).relative_to(folder).parts[0]
        # same size: no resampling, the decoded pixels themselves
        np.testing.assert_array_equal(image, img_to_array(load_img(path)))


def test_shuffle_uses_keras_permutation(folder):
    plain = image_dataset_from_directory(folder, image_size=(8, 8), shuffle=False, verbose=False)
    shuffled = image_dataset_from_directory(folder, image_size=(8, 8), seed=42, verbose=False)
    expected = list(plain.file_paths)
    np.random.RandomState(42).shuffle(expected)
    assert shuffled.file_paths == expected


def test_split_rule(folder, capsys):
    train = image_dataset_from_directory(folder, image_size=(8, 8), seed=1, validation_split=0.2, subset="training")
    val = image_dataset_from_directory(folder, image_size=(8, 8), seed=1, validation_split=0.2, subset="validation")
    out = capsys.readouterr().out
    assert "Using 24 files for training." in out and "Using 6 files for validation." in out
    everything = image_dataset_from_directory(folder, image_size=(8, 8), seed=1, verbose=False)
    assert train.file_paths == everything.file_paths[:-6] and val.file_paths == everything.file_paths[-6:]


def test_shuffled_batches_hold_the_right_images_and_reshuffle_each_epoch(folder):
    ds = image_dataset_from_directory(folder, image_size=(14, 14), seed=3, batch_size=8, verbose=False,
                                      label_mode="categorical")
    epochs = []
    for _ in range(2):
        seen = []
        for x, y in ds:
            assert y.shape[1] == 3 and y.dtype == np.float32
            seen.append((x, y))
        epochs.append(seen)
    # epoch 0 follows file_paths; each image carries its own folder's label
    x0 = np.concatenate([x for x, _ in epochs[0]])
    y0 = np.concatenate([y for _, y in epochs[0]])
    for path, image, onehot in zip(ds.file_paths, x0, y0):
        np.testing.assert_allclose(image, _expected_image(path, (14, 14)), rtol=1e-6, atol=1e-4)
        assert ds.class_names[int(onehot.argmax())] == pathlib.Path(path).relative_to(folder).parts[0]
    x1 = np.concatenate([x for x, _ in epochs[1]])
    assert not np.array_equal(x0, x1)  # a new order...
    key = lambda a: sorted(img.tobytes() for img in a)  # noqa: E731
    assert key(x0) == key(x1)  # ...of the same images
    again = image_dataset_from_directory(folder, image_size=(14, 14), seed=3, batch_size=8, verbose=False)
    list(again)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in again]), x1)  # reproducible from the seed


@pytest.mark.parametrize("interpolation", ["bicubic", "lanczos3", "nearest"])
def test_interpolation_and_aspect_options(tmp_path, interpolation):
    folder = _write_folder(tmp_path / "d", count=9, sizes=[(40, 22), (17, 31)], rgb=True)
    for option in ({}, {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True}):
        ds = image_dataset_from_directory(folder, image_size=(16, 16), shuffle=False, verbose=False,
                                          interpolation=interpolation, **option)
        x, _ = ds[0]
        for path, image in zip(ds.file_paths, x):
            np.testing.assert_allclose(image, _expected_image(path, (16, 16), interpolation=interpolation,
                                                              **option), rtol=1e-6, atol=1e-4)


def test_unbatched_and_int_image_size(folder):
    ds = image_dataset_from_directory(folder, image_size=12, batch_size=None, shuffle=False, verbose=False)
    assert len(ds) == 30
    x, y = ds[3]
    assert x.shape == (12, 12, 3) and y.shape == () and y.dtype == np.int32


def test_grayscale_rgb_png_uses_pillow_luma(tmp_path):
    folder = _write_folder(tmp_path / "d", count=6, rgb=True)
    ds = image_dataset_from_directory(folder, image_size=(28, 28), color_mode="grayscale", shuffle=False,
                                      verbose=False)
    x, _ = ds[0]
    for path, image in zip(ds.file_paths, x):
        with Image.open(path) as img:
            np.testing.assert_array_equal(image[..., 0], np.asarray(img.convert("L"), np.float32))


def test_corrupt_files_are_skipped_with_a_warning(folder):
    (folder / "one" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (folder / "two" / "empty.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipping 2 files that cannot be decoded.*broken\.png.*empty\.jpg|"
                                         r"skipping 2 files that cannot be decoded.*empty\.jpg.*broken\.png"):
        ds = image_dataset_from_directory(folder, image_size=(8, 8), shuffle=False)
    assert len(ds.file_paths) == 30 and not any("broken" in p or "empty" in p for p in ds.file_paths)
    x, y = ds[0]
    assert x.shape == (30, 8, 8, 3) and y.shape == (30,)


def test_a_file_that_fails_while_decoding_is_left_out_of_its_batch(folder):
    ds = image_dataset_from_directory(folder, image_size=(8, 8), shuffle=False, verbose=False, batch_size=4)
    victim = pathlib.Path(ds.file_paths[1])
    data = victim.read_bytes()
    victim.write_bytes(data[:len(data) // 2])  # truncated after the data set was made
    with pytest.warns(UserWarning, match="skipping .* cannot be decoded"):
        x, y = ds[0]
    assert x.shape == (3, 8, 8, 3) and y.shape == (3,)


def test_fit_runs_on_the_data_set_with_background_workers(folder):
    set_random_seed(0)
    train, val = image_dataset_from_directory(folder, image_size=(28, 28), color_mode="grayscale", seed=1,
                                              batch_size=8, validation_split=0.2, subset="both", verbose=False)
    assert isinstance(train, PyDataset) and train.workers >= 1
    model = models.Sequential([layers.Input((28, 28, 1)), layers.Rescaling(1 / 255),
                               layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
                               layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train, validation_data=val, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3 and np.isfinite(history.history["val_loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(val, verbose=0).shape == (len(val.file_paths), 3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(labels="folders"), "list/tuple of integer labels"),
    (dict(labels=[0, 1], class_names=["a"]), "only pass `class_names`"),
    (dict(label_mode="sparse"), "label_mode"),
    (dict(color_mode="cmyk"), "color_mode"),
    (dict(image_size=(8,)), "image_size"),
    (dict(image_size=(0, 8)), "positive"),
    (dict(interpolation="area"), "TensorFlow"),
    (dict(interpolation="cubic"), "interpolation"),
    (dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), "Only one of"),
    (dict(validation_split=0.2), "validation_split` must be set|`subset` is set"),
    (dict(validation_split=1.5, subset="training", seed=1), "between 0 and 1"),
    (dict(validation_split=0.2, subset="testing", seed=1), "subset"),
    (dict(validation_split=0.2, subset="training"), "provide a `seed`"),
    (dict(class_names=["zero", "three"]), "did not match"),
    (dict(labels=[0, 1, 2]), "lengths of `labels`"),
    (dict(label_mode="binary"), "exactly 2"),
    (dict(batch_size=0), "batch_size"),
    (dict(data_format="NHWC"), "data_format"),
])
def test_bad_arguments(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        image_dataset_from_directory(folder, **dict(dict(image_size=(8, 8), verbose=False), **kwargs))


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_dataset_from_directory(tmp_path / "nowhere")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found"):
        image_dataset_from_directory(tmp_path / "empty", verbose=False)
    # Keras's rule: a split of zero validation files leaves no training files
    (tmp_path / "empty" / "a" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="No training images"):
        image_dataset_from_directory(tmp_path / "empty", seed=1, validation_split=0.5, subset="both", verbose=False)


# --------------------------------------------------------------------------- image files


def test_load_img_matches_keras(tmp_path):
    keras = pytest.importorskip("keras")
    x, _ = _digits(1)
    rgb = np.stack([x[0], 255 - x[0], x[0] // 2], axis=-1)
    path = tmp_path / "img.png"
    Image.fromarray(np.pad(rgb, ((0, 0), (6, 6), (0, 0)))).save(path)
    for kwargs in (dict(), dict(color_mode="grayscale"), dict(color_mode="rgba"),
                   dict(target_size=(20, 15), interpolation="bilinear"),
                   dict(target_size=(14, 14), interpolation="lanczos", keep_aspect_ratio=True),
                   dict(target_size=(30, 10), keep_aspect_ratio=True)):
        ours, theirs = load_img(path, **kwargs), keras.utils.load_img(path, **kwargs)
        assert ours.mode == theirs.mode and ours.size == theirs.size
        np.testing.assert_array_equal(img_to_array(ours), keras.utils.img_to_array(theirs))
        np.testing.assert_array_equal(img_to_array(ours, "channels_first"),
                                      keras.utils.img_to_array(theirs, "channels_first"))
    with open(path, "rb") as f:
        assert load_img(io.BytesIO(f.read())).size == (40, 28)
    with pytest.raises(ValueError, match="Invalid interpolation"):
        load_img(path, target_size=(5, 5), interpolation="cubic")
    with pytest.raises(ValueError, match="color_mode"):
        load_img(path, color_mode="hsv")
    with pytest.raises(TypeError, match="path-like"):
        load_img(123)


@pytest.mark.parametrize("shape,scale", [((5, 6, 3), True), ((5, 6, 4), False), ((5, 6, 1), True),
                                         ((3, 5, 6), True), ((5, 6, 1), False)])
def test_array_to_img_matches_keras(shape, scale, rng):
    keras = pytest.importorskip("keras")
    x = rng.uniform(0, 300 if shape[-1] == 1 and not scale else 1, shape).astype(np.float32)
    data_format = "channels_first" if shape[0] == 3 else "channels_last"
    ours = array_to_img(x, data_format=data_format, scale=scale)
    theirs = keras.utils.array_to_img(x, data_format=data_format, scale=scale)
    assert ours.mode == theirs.mode
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(x[0])
    with pytest.raises(ValueError, match="channel number"):
        array_to_img(np.zeros((4, 4, 2)))


def test_save_img_round_trip_and_jpeg_rgba(tmp_path, rng):
    x = rng.integers(0, 256, (6, 7, 3)).astype(np.float32)
    save_img(tmp_path / "a.png", x, scale=False)
    np.testing.assert_array_equal(img_to_array(load_img(tmp_path / "a.png")), x)
    with pytest.warns(UserWarning, match="JPEG format does not support RGBA"):
        save_img(str(tmp_path / "b.jpg"), rng.uniform(size=(6, 7, 4)))
    assert load_img(tmp_path / "b.jpg", color_mode="rgba").size == (7, 6)
    buffer = io.BytesIO()
    save_img(buffer, x, file_format="png", scale=False)
    buffer.seek(0)
    np.testing.assert_array_equal(img_to_array(load_img(buffer)), x)


def test_missing_pillow_says_how_to_install(monkeypatch, folder):
    import builtins
    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    for call in (lambda: load_img(folder / "x.png"), lambda: array_to_img(np.zeros((2, 2, 3))),
                 lambda: image_dataset_from_directory(folder)):
        with pytest.raises(ImportError, match=r"pip install 'cnnfast\[image\]'"):
            call()
