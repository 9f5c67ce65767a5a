"""Image augmentation and resizing layers: Keras 3 as the oracle for everything deterministic
(Resizing, CenterCrop, warps with a fixed draw, inference identities, shapes, configs), statistics
of the random draws, seeds, gradients (adjoint identities), argument errors, saving and fit."""
import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import cnnfast
from cnnfast import layers
from cnnfast.layers import base
from cnnfast.ops._warp import affine_warp

RANDOM_LAYERS = ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
                 "RandomBrightness")


def images(rng, shape=(4, 9, 12, 3)):
    return (rng.random(shape) * 255).astype(np.float32)


def k2np(keras, t):
    return keras.ops.convert_to_numpy(t)


def make_pair(keras, name, *args, **kwargs):
    return getattr(layers, name)(*args, **kwargs), getattr(keras.layers, name)(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Keras 3 as the oracle
@pytest.mark.parametrize("size", [(5, 7), (15, 20), (9, 12), (4, 30)])
@pytest.mark.parametrize("options", [{}, {"interpolation": "nearest"},  # (bicubic: Keras's torch backend differs)
                                     {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True, "fill_value": 7.0},
                                     {"antialias": True}])
def test_resizing_matches_keras(keras, rng, size, options):
    x = images(rng)
    ours, theirs = make_pair(keras, "Resizing", *size, **options)
    want = k2np(keras, theirs(x))
    for training in (False, True):
        np.testing.assert_allclose(ours(x, training=training), want, rtol=1e-5, atol=3e-3)
    assert ours.compute_output_shape((None, 9, 12, 3)) == tuple(theirs.compute_output_shape((None, 9, 12, 3)))


@pytest.mark.parametrize("size", [(5, 6), (9, 12), (11, 6), (3, 20), (12, 14)])
def test_center_crop_matches_keras(keras, rng, size):
    x = images(rng)
    ours, theirs = make_pair(keras, "CenterCrop", *size)
    np.testing.assert_allclose(ours(x), k2np(keras, theirs(x)), rtol=1e-5, atol=3e-3)
    np.testing.assert_allclose(ours(x[0]), k2np(keras, theirs(x[0])), rtol=1e-5, atol=3e-3)  # one image


def test_channels_first_matches_keras(keras, rng):
    x = images(rng, (2, 3, 9, 12))
    for name, args in [("Resizing", (5, 7)), ("CenterCrop", (4, 5)),
                       ("RandomRotation", ((0.1, 0.1),)), ("RandomFlip", ("horizontal",))]:
        ours, theirs = make_pair(keras, name, *args, data_format="channels_first", seed=3) if name.startswith("Random") \
            else make_pair(keras, name, *args, data_format="channels_first")
        got, want = ours(x), k2np(keras, theirs(x))
        if name == "RandomFlip":   # random: each image is itself or its mirror
            assert all(np.array_equal(g, v) or np.array_equal(g, v[:, :, ::-1]) for g, v in zip(got, x))
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=3e-3, err_msg=name)


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_warps_with_a_fixed_draw_match_keras(keras, rng, fill_mode, interpolation):
    """Equal bounds make the draw deterministic, so Keras's matrices and warps can be compared."""
    x = images(rng, (3, 10, 13, 3))
    common = dict(fill_mode=fill_mode, interpolation=interpolation, fill_value=11.0, seed=5)
    cases = [("RandomRotation", ((0.1, 0.1),)), ("RandomRotation", ((-0.3, -0.3),)),
             ("RandomZoom", ((0.3, 0.3), (-0.2, -0.2))), ("RandomZoom", ((-0.45, -0.45),)),
             ("RandomTranslation", ((0.23, 0.23), (-0.31, -0.31)))]
    for name, args in cases:
        ours, theirs = make_pair(keras, name, *args, **common)
        want = k2np(keras, theirs(x, training=True))
        got = ours(x, training=True)
        if interpolation == "nearest":   # float32 vs float64 points may round across a .5 tie
            assert np.mean(np.abs(got - want) > 1e-2) < 0.02, name
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-2, err_msg=f"{name}{args}")


def test_colour_layers_with_a_fixed_draw_match_keras(keras, rng):
    x = images(rng)
    for name, args, kwargs in [("RandomContrast", ((-0.3, 0.3),), {}),       # factor 1.3 exactly
                               ("RandomContrast", ((-0.5, 0.5),), {"value_range": (0, 300)}),  # 1.5
                               ("RandomBrightness", ((0.1, 0.1),), {}),    # + 25.5
                               ("RandomBrightness", ((-0.2, -0.2),), {"value_range": (-1, 400)})]:
        ours, theirs = make_pair(keras, name, *args, seed=1, **kwargs)
        np.testing.assert_allclose(ours(x), k2np(keras, theirs(x)), rtol=1e-5, atol=2e-3, err_msg=name)


def test_zero_factors_and_inference_are_identities_as_in_keras(keras, rng):
    x = images(rng)
    zero = [("RandomRotation", (0.0,)), ("RandomZoom", (0.0,)), ("RandomTranslation", (0.0, 0.0)),
            ("RandomContrast", (0.0,)), ("RandomBrightness", (0.0,))]
    for name, args in zero:
        ours, theirs = make_pair(keras, name, *args, seed=2)
        np.testing.assert_allclose(ours(x, training=True), k2np(keras, theirs(x, training=True)), atol=1e-3)
        np.testing.assert_allclose(ours(x, training=True), x, atol=1e-3, err_msg=name)
    for name, args in [("RandomFlip", ()), ("RandomRotation", (0.3,)), ("RandomZoom", (0.3, 0.2)),
                       ("RandomTranslation", (0.2, 0.3)), ("RandomContrast", (0.5,)), ("RandomBrightness", (0.5,))]:
        ours, theirs = make_pair(keras, name, *args, seed=2)
        np.testing.assert_array_equal(ours(x, training=False), k2np(keras, theirs(x, training=False)))
        np.testing.assert_array_equal(ours(x, training=False), x)


def test_random_crop_training_shapes_and_inference(keras, rng):
    x = images(rng, (3, 10, 13, 2))
    for size in [(6, 7), (10, 13), (4, 13), (12, 5), (14, 16)]:
        ours, theirs = make_pair(keras, "RandomCrop", *size, seed=3)
        got = ours(x, training=True)
        assert got.shape == tuple(k2np(keras, theirs(x, training=True)).shape)
        if size[0] < 10 and size[1] < 13:   # a window of the input
            hits = [(t, l) for t in range(10 - size[0] + 1) for l in range(13 - size[1] + 1)
                    if np.array_equal(got, x[:, t:t + size[0], l:l + size[1]])]
            assert hits, size
        else:   # Keras's deterministic path: compare exactly
            np.testing.assert_allclose(got, k2np(keras, theirs(x, training=True)), rtol=1e-5, atol=3e-3)
        # inference: the centred aspect-ratio window resized (Keras's documented behaviour)
        want = k2np(keras, keras.layers.Resizing(*size, crop_to_aspect_ratio=True)(x))
        np.testing.assert_allclose(ours(x, training=False), want, rtol=1e-5, atol=3e-3)
        assert ours.compute_output_shape((None, 10, 13, 2)) == tuple(theirs.compute_output_shape((None, 10, 13, 2)))


def test_configs_match_keras_and_round_trip(keras):
    pairs = [("RandomFlip", ("horizontal",), {"seed": 1}),
             ("RandomFlip", (), {}),
             ("RandomRotation", ((-0.2, 0.3),), {"fill_mode": "constant", "fill_value": 2.0, "seed": 4}),
             ("RandomRotation", (0.1,), {"interpolation": "nearest"}),
             ("RandomZoom", (0.1,), {"seed": 3}),
             ("RandomZoom", ((-0.3, 0.2), (0.1, 0.4)), {"fill_mode": "wrap"}),
             ("RandomTranslation", (0.1, (-0.2, 0.3)), {"seed": 7}),
             ("RandomCrop", (3, 4), {"seed": 9}),
             ("RandomContrast", (0.3,), {"value_range": (0, 1)}),
             ("RandomContrast", ((0.1, 0.4),), {"seed": 2}),
             ("RandomBrightness", (0.2,), {"value_range": (255, 0)}),
             ("Resizing", (3, 4), {"interpolation": "lanczos3", "pad_to_aspect_ratio": True, "fill_value": 1.0}),
             ("CenterCrop", (2, 3), {})]
    ignored = {"name", "trainable", "dtype"}
    for name, args, kwargs in pairs:
        ours, theirs = make_pair(keras, name, *args, **kwargs)
        mine, want = ours.get_config(), theirs.get_config()
        assert set(mine) - ignored == set(want) - ignored, name
        for key in set(mine) - ignored:
            assert mine[key] == want[key], (name, key, mine[key], want[key])
        type(theirs).from_config({k: v for k, v in mine.items() if k != "dtype"})
        again = type(ours).from_config({k: v for k, v in want.items() if k != "dtype"})
        assert again.get_config() == {**mine, "name": again.name}
        copy = type(ours).from_config(json.loads(json.dumps(mine)))
        assert json.loads(json.dumps(copy.get_config())) == json.loads(json.dumps(mine))


def test_factor_rules_match_keras(keras):
    for name, args in [("RandomRotation", (0.2,)), ("RandomRotation", ((0.3, -0.2),)), ("RandomRotation", (-0.5,)),
                       ("RandomRotation", ((-5, 0.5),)), ("RandomContrast", (0.2,)),
                       ("RandomContrast", ((0.5, 0.1),)), ("RandomBrightness", (-0.3,)), ("RandomBrightness", (None,))]:
        ours, theirs = make_pair(keras, name, *args)
        assert tuple(ours.factor) == tuple(theirs.factor), (name, args)
    for name, args in [("RandomRotation", (1.5,)), ("RandomRotation", ((2, 3),)), ("RandomRotation", ((1, 2, 3),)),
                       ("RandomRotation", ("big",)), ("RandomContrast", (-0.1,)), ("RandomContrast", ((-2, -1),)),
                       ("RandomBrightness", (1.1,)), ("RandomZoom", (-1.0,)), ("RandomZoom", ((0.1, 1.5),)),
                       ("RandomZoom", ("x",)), ("RandomTranslation", (1.2, 0.1)), ("RandomTranslation", (0.1, (0, 1, 2)))]:
        with pytest.raises(ValueError):
            getattr(keras.layers, name)(*args)
        with pytest.raises(ValueError, match="factor"):
            getattr(layers, name)(*args)


# ---------------------------------------------------------------------------------------------
# statistics of the random draws
def blob(h, w, cy, cx, sigma=1.2):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2)).astype(np.float32)[..., None]


def centroid(img):
    m = img[..., 0]
    yy, xx = np.mgrid[0:m.shape[0], 0:m.shape[1]]
    return (m * yy).sum() / m.sum(), (m * xx).sum() / m.sum()


def test_flip_fraction_and_modes(rng):
    x = images(rng, (2000, 3, 4, 1))
    for mode, flip in [("horizontal", lambda a: a[:, ::-1]), ("vertical", lambda a: a[::-1]),
                       ("horizontal_and_vertical", lambda a: a[::-1, ::-1])]:
        y = layers.RandomFlip(mode, seed=11)(x, training=True)
        same = np.array([np.array_equal(a, b) for a, b in zip(y, x)])
        flipped = np.array([np.array_equal(a, flip(b)) for a, b in zip(y, x)])
        assert np.all(same | flipped), mode
        assert 0.45 < flipped.mean() < 0.55, (mode, flipped.mean())


def test_rotation_angles_cover_the_factor_range(rng):
    h = w = 41
    c = (h - 1) / 2
    x = np.repeat(blob(h, w, c, c + 12)[None], 300, axis=0)
    lo, hi = -0.05, 0.15
    y = layers.RandomRotation((hi, lo), fill_mode="constant", seed=3)(x, training=True)
    angles = []
    for img in y:
        cy, cx = centroid(img)
        angles.append(math.atan2(-(cy - c), cx - c))  # counter-clockwise positive (rows grow downwards)
    angles = np.array(angles) / (2 * math.pi)
    assert angles.min() >= lo - 0.005 and angles.max() <= hi + 0.005
    assert angles.min() < lo + 0.02 and angles.max() > hi - 0.02   # the whole range is used
    assert abs(np.mean(angles) - (lo + hi) / 2) < 0.015


def test_zoom_and_translation_ranges(rng):
    h = w = 41
    c = (h - 1) / 2
    x = np.repeat(blob(h, w, c - 8, c + 8)[None], 200, axis=0)
    y = layers.RandomZoom((-0.3, 0.25), seed=5, fill_mode="constant")(x, training=True)
    # output - c = (input - c) / zoom, the same zoom on both axes without width_factor
    for img in y:
        cy, cx = centroid(img)
        zy, zx = -8 / (cy - c), 8 / (cx - c)
        assert abs(zy - zx) < 0.02 and 0.69 < zx < 1.26
    y = layers.RandomTranslation((-0.1, 0.2), 0.15, seed=6, fill_mode="constant")(x, training=True)
    shifts = np.array([np.subtract(centroid(img), (c - 8, c + 8)) for img in y])
    assert shifts[:, 0].min() >= -0.1 * h - 0.05 and shifts[:, 0].max() <= 0.2 * h + 0.05
    assert np.abs(shifts[:, 1]).max() <= 0.15 * w + 0.05 and shifts[:, 1].std() > 2


def test_contrast_and_brightness_ranges(rng):
    x = images(rng, (300, 6, 5, 3)) * 0.5 + 60
    y = layers.RandomContrast(0.4, seed=1)(x, training=True)
    ratio = (y - y.mean(axis=(1, 2), keepdims=True)).std(axis=(1, 2, 3)) / \
        (x - x.mean(axis=(1, 2), keepdims=True)).std(axis=(1, 2, 3))
    assert ratio.min() >= 1 - 1e-4 and ratio.max() <= 1.4 + 1e-4 and ratio.max() > 1.35   # Keras: (0, f)
    y = layers.RandomBrightness(0.1, seed=2)(x, training=True)
    delta = (y - x).mean(axis=(1, 2, 3))
    assert delta.min() >= -25.5 - 1e-3 and delta.max() <= 25.5 + 1e-3 and delta.std() > 10
    assert layers.RandomBrightness((0.5, 0.9), seed=2)(x, training=True).max() == 255.0   # clipped


# ---------------------------------------------------------------------------------------------
# seeds
@pytest.mark.parametrize("name,args", [("RandomFlip", ()), ("RandomRotation", (0.2,)), ("RandomZoom", (0.2,)),
                                       ("RandomTranslation", (0.2, 0.2)), ("RandomCrop", (5, 6)),
                                       ("RandomContrast", (0.5,)), ("RandomBrightness", (0.3,))])
def test_seeds_reproduce_and_steps_differ(rng, name, args):
    x = images(rng, (16, 20, 24, 3))
    a, b = getattr(layers, name)(*args, seed=42), getattr(layers, name)(*args, seed=42)
    first, second = a(x), a(x)
    np.testing.assert_array_equal(first, b(x))
    np.testing.assert_array_equal(second, b(x))
    assert not np.array_equal(first, second)
    assert not np.array_equal(getattr(layers, name)(*args, seed=43)(x), first)
    base.set_rng_step(7)   # inside fit: a function of (seed, step)
    try:
        np.testing.assert_array_equal(a(x), b(x))
        np.testing.assert_array_equal(a(x), b(x))
    finally:
        base.set_rng_step(None)
    # the draws' seed is an int even for seed=None (distributed fit gives each rank its own), the
    # config keeps what was given, as Keras's does (RandomCrop: the seed it drew)
    layer = getattr(layers, name)(*args)
    assert isinstance(layer.seed, int)
    assert (layer.get_config()["seed"] is None) == (name != "RandomCrop")
    layer.seed = 42
    np.testing.assert_array_equal(layer(x), first)
    cnnfast.utils.set_random_seed(5)
    unseeded = getattr(layers, name)(*args)(x)
    cnnfast.utils.set_random_seed(5)
    np.testing.assert_array_equal(getattr(layers, name)(*args)(x), unseeded)


# ---------------------------------------------------------------------------------------------
# gradients: for a linear map y = A x, <A x, g> == <x, A^T g> checks backward against forward
def adjoint_gap(layer, x, training, rng):
    ctx = {}
    y = layer.forward(x, training, ctx)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(g, ctx, True)
    assert dx.shape == x.shape
    lhs, rhs = float(np.vdot(y.astype(np.float64), g)), float(np.vdot(x.astype(np.float64), dx))
    return abs(lhs - rhs) / max(1.0, abs(lhs))


def test_backward_of_the_linear_layers(rng):
    x = rng.standard_normal((3, 9, 12, 2)).astype(np.float32)
    cases = [(layers.RandomFlip(seed=1), True), (layers.RandomFlip("vertical", seed=2), True),
             (layers.RandomCrop(5, 6, seed=1), True), (layers.RandomCrop(9, 5, seed=1), True),
             (layers.RandomCrop(11, 14, seed=1), True), (layers.RandomCrop(5, 6, seed=1), False),
             (layers.CenterCrop(5, 6), False), (layers.CenterCrop(11, 6), False),
             (layers.Resizing(5, 7), False), (layers.Resizing(20, 30), False),
             (layers.Resizing(5, 7, interpolation="nearest"), False), (layers.Resizing(20, 7, "nearest"), False),
             (layers.Resizing(4, 4, crop_to_aspect_ratio=True), False),
             (layers.Resizing(4, 9, pad_to_aspect_ratio=True), False),
             (layers.Resizing(5, 7, data_format="channels_first"), False)]
    for layer, training in cases:
        assert adjoint_gap(layer, x, training, rng) < 1e-5, layer.name


def test_warps_pass_no_gradient_in_training_and_dy_at_inference(rng):
    x = images(rng)
    g = rng.standard_normal(x.shape).astype(np.float32)
    for layer in (layers.RandomRotation(0.2), layers.RandomZoom(0.2), layers.RandomTranslation(0.1, 0.1),
                  layers.RandomContrast(0.2), layers.RandomBrightness(0.2)):
        ctx = {}
        layer.forward(x, True, ctx)
        assert layer.backward(g, ctx, True) is None
        ctx = {}
        layer.forward(x, False, ctx)
        assert layer.backward(g, ctx, True) is g
    assert layers.Resizing(3, 3, interpolation="bicubic").backward(g[:, :3, :3], {"x_shape": x.shape}, True) is None


# ---------------------------------------------------------------------------------------------
def test_sequential_with_augmentation_first_trains_and_predicts_without_it(rng, tmp_path):
    cnnfast.utils.set_random_seed(0)
    n = 64
    x = rng.random((n, 12, 12, 1)).astype(np.float32) * 0.2
    y = rng.integers(0, 2, n)
    x[y == 1, 3:9, 3:9] += 0.8   # a bright centre square: invariant to flips and small rotations
    model = cnnfast.Sequential([layers.Input((12, 12, 1)), layers.RandomFlip(seed=1),
                                layers.RandomRotation(0.05, seed=2), layers.RandomZoom(0.1, seed=3),
                                layers.Conv2D(4, 3, activation="relu"), layers.GlobalAveragePooling2D(),
                                layers.Dense(2, activation="softmax")])
    model.compile(optimizer=cnnfast.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
    # inference: the augmentation layers are identities
    h = x
    for layer in model.layers[3:]:
        h = layer(h, training=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), h, rtol=1e-5, atol=1e-6)
    path = tmp_path / "augmented.keras"
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_crop_and_resize_in_a_model_keep_the_built_shape(rng):
    model = cnnfast.Sequential([layers.Input((10, 14, 3)), layers.Resizing(12, 12), layers.RandomCrop(8, 8, seed=1),
                                layers.CenterCrop(6, 6), layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = images(rng, (8, 10, 14, 3)) / 255
    model.fit(x, np.zeros((8, 2), np.float32), epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (8, 2)
    assert model.layers[1].output_shape == (None, 8, 8, 3)


def test_argument_and_input_errors():
    with pytest.raises(NotImplementedError, match="fill_mode"):
        layers.RandomRotation(0.1, fill_mode="mirror")
    with pytest.raises(NotImplementedError, match="interpolation"):
        layers.RandomZoom(0.1, interpolation="bicubic")
    with pytest.raises(ValueError, match="mode"):
        layers.RandomFlip("diagonal")
    with pytest.raises(ValueError, match="height"):
        layers.RandomCrop(0, 3)
    with pytest.raises(TypeError, match="width"):
        layers.CenterCrop(3, 2.5)
    with pytest.raises(ValueError, match="only one"):
        layers.Resizing(3, 3, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="interpolation"):
        layers.Resizing(3, 3, interpolation="area")
    with pytest.raises(ValueError, match="fill_mode"):
        layers.Resizing(3, 3, fill_mode="reflect")
    with pytest.raises(ValueError, match="value_range"):
        layers.RandomBrightness(0.1, value_range=255)
    with pytest.raises(ValueError, match="value_range"):
        layers.RandomContrast(0.1, value_range=(0, 1, 2))
    with pytest.raises(ValueError, match="seed"):
        layers.RandomFlip(seed=-1)
    with pytest.raises(ValueError, match="data_format"):
        layers.RandomFlip(data_format="NHWC")
    with pytest.raises(TypeError, match="fill_value"):
        layers.RandomTranslation(0.1, 0.1, fill_value="black")
    with pytest.raises(ValueError, match="rank 3"):
        layers.RandomRotation(0.1)(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        layers.RandomFlip()(np.array([["a"]]))
