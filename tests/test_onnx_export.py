"""cnnfast models exported to ONNX run in ONNX Runtime with cnnfast's outputs (1e-5 relative).

Every layer cnnfast can save is exportable (checked against the loader's allow-list); each graph
passes ``onnx.checker.check_model(full_check=True)`` (the exporter runs it) and has a dynamic batch
axis (run at two batch sizes).
"""
import subprocess
import sys

import numpy as np
import pytest

import cnnfast
from cnnfast import layers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.name == "moving_variance":
            v.assign(rng.uniform(0.5, 2.0, v.shape))
        else:
            v.assign(rng.normal(0, 0.3, v.shape))


def _run_ort(path, xs):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), xs)}
    return sess.run(None, feeds)


def _check(model, tmp_path, shapes=None, batches=(1, 3), seed=0, randomize=True):
    if randomize:
        _randomize(model, seed)
    path = tmp_path / "m.onnx"
    assert cnnfast.onnx.export(model, path) == str(path)
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    rng = np.random.default_rng(seed + 1)
    shapes = shapes or [t.shape[1:] for t in model.inputs]
    for n in batches:
        xs = [rng.normal(size=(n,) + tuple(s)).astype(np.float32) for s in shapes]
        want = model.predict_on_batch(xs if len(xs) > 1 else xs[0])
        want = want if isinstance(want, list) else [want]
        got = _run_ort(path, xs)
        assert len(got) == len(want)
        for g, e in zip(got, want):
            assert g.shape == e.shape
            scale = max(float(np.abs(e).max()), 1e-3)
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * scale)
    return proto


def _seq(input_shape, *stack):
    return cnnfast.Sequential([cnnfast.Input(shape=input_shape), *stack])


def test_tutorial_mnist_cnn(tmp_path):
    model = cnnfast.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)), layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
    proto = _check(model, tmp_path, randomize=False)
    # NCHW from the first convolution to the Flatten: one transpose in, one out, none between
    assert [n.op_type for n in proto.graph.node].count("Transpose") == 2


def test_keras_export_method(tmp_path):
    model = _seq((8, 8, 3), layers.Conv2D(4, 3), layers.GlobalAveragePooling2D())
    _randomize(model)
    path = tmp_path / "k.onnx"
    model.export(str(path), format="onnx", opset_version=13)
    assert onnx.load(str(path)).opset_import[0].version == 13
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(_run_ort(path, [x])[0], model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="format='onnx' only"):
        model.export(str(path), format="tf_saved_model")
    with pytest.raises(TypeError, match="unexpected arguments"):
        model.export(str(path), format="onnx", bogus=1)


@pytest.mark.parametrize("kwargs", [
    dict(filters=5, kernel_size=3, padding="valid"),
    dict(filters=5, kernel_size=3, padding="same"),
    dict(filters=4, kernel_size=(3, 2), strides=2, padding="same"),
    dict(filters=4, kernel_size=(2, 3), strides=(2, 3), padding="valid"),
    dict(filters=3, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=6, kernel_size=3, groups=2, padding="same", use_bias=False),
    dict(filters=4, kernel_size=5, strides=2, padding="same", activation="relu"),
    dict(filters=4, kernel_size=1, activation="sigmoid"),
])
def test_conv2d(tmp_path, kwargs):
    _check(_seq((13, 11, 4), layers.Conv2D(**kwargs)), tmp_path)


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding="same"), dict(kernel_size=3, strides=2, padding="same"),
    dict(kernel_size=(3, 5), depth_multiplier=2, padding="valid", activation="relu"),
])
def test_depthwise_conv2d(tmp_path, kwargs):
    _check(_seq((12, 9, 3), layers.DepthwiseConv2D(**kwargs)), tmp_path)


@pytest.mark.parametrize("kwargs", [
    dict(filters=3, kernel_size=3, padding="valid"), dict(filters=3, kernel_size=3, padding="same"),
    dict(filters=2, kernel_size=3, strides=2, padding="same"),
    dict(filters=2, kernel_size=2, strides=2, padding="valid", activation="relu"),
    dict(filters=2, kernel_size=3, strides=3, padding="valid"),
    dict(filters=2, kernel_size=4, strides=2, padding="same", use_bias=False),
    dict(filters=2, kernel_size=3, strides=2, padding="valid", output_padding=1),
    dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=0),
    dict(filters=2, kernel_size=3, dilation_rate=2, padding="same"),
])
def test_conv2d_transpose(tmp_path, kwargs):
    _check(_seq((5, 7, 3), layers.Conv2DTranspose(**kwargs)), tmp_path)


@pytest.mark.parametrize("pool", [layers.MaxPooling2D, layers.AveragePooling2D])
@pytest.mark.parametrize("kwargs", [dict(pool_size=2), dict(pool_size=3, strides=2, padding="same"),
                                    dict(pool_size=(2, 3), strides=1, padding="valid"),
                                    dict(pool_size=3, strides=2, padding="valid")])
def test_pooling(tmp_path, pool, kwargs):
    _check(_seq((11, 10, 3), pool(**kwargs)), tmp_path)


@pytest.mark.parametrize("pool", [layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(tmp_path, pool, keepdims):
    _check(_seq((6, 5, 4), layers.Conv2D(3, 1), pool(keepdims=keepdims)), tmp_path)


@pytest.mark.parametrize("act", sorted(cnnfast.activations._TABLE))
def test_every_activation_name(tmp_path, act):
    _check(_seq((7,), layers.Dense(5, activation=act)), tmp_path)
    _check(_seq((4, 4, 2), layers.Conv2D(3, 1, activation=act)), tmp_path)


@pytest.mark.parametrize("layer", [
    lambda: layers.ReLU(), lambda: layers.ReLU(max_value=0.5), lambda: layers.ReLU(negative_slope=0.1),
    lambda: layers.ReLU(max_value=1.0, negative_slope=0.2, threshold=0.1), lambda: layers.LeakyReLU(0.3),
    lambda: layers.Softmax(), lambda: layers.Softmax(axis=1), lambda: layers.Softmax(axis=2),
    lambda: layers.Rescaling(1 / 255.0), lambda: layers.Rescaling(2.0, offset=-1.0),
    lambda: layers.Activation("tanh"), lambda: layers.Dropout(0.3),
])
@pytest.mark.parametrize("after_conv", [False, True])
def test_elementwise_layers_in_both_layouts(tmp_path, layer, after_conv):
    stack = [layers.Conv2D(3, 1)] if after_conv else []
    _check(_seq((5, 4, 3), *stack, layer()), tmp_path)


def test_batch_norm_ranks(tmp_path):
    _check(_seq((6, 6, 3), layers.Conv2D(4, 3), layers.BatchNormalization(epsilon=1e-3)), tmp_path)
    _check(_seq((6, 6, 3), layers.BatchNormalization(center=False)), tmp_path)
    _check(_seq((5,), layers.BatchNormalization(scale=False)), tmp_path)
    _check(_seq((4, 6), layers.BatchNormalization()), tmp_path)


def test_dense_on_any_rank(tmp_path):
    _check(_seq((6, 5), layers.Dense(3)), tmp_path)
    _check(_seq((4, 3, 2), layers.Conv2D(3, 1), layers.Dense(2, activation="relu")), tmp_path)


def test_reshaping_layers(tmp_path):
    _check(_seq((6, 8, 2), layers.Conv2D(3, 1), layers.Reshape((12, 12)), layers.Dense(2)), tmp_path)
    _check(_seq((6, 8, 2), layers.Reshape((-1, 2))), tmp_path)
    _check(_seq((5, 4, 2), layers.Conv2D(2, 1), layers.UpSampling2D((2, 3))), tmp_path)
    _check(_seq((5, 4, 2), layers.ZeroPadding2D(((1, 2), (0, 3))), layers.Conv2D(2, 3)), tmp_path)
    _check(_seq((9, 8, 2), layers.Conv2D(2, 1), layers.Cropping2D(((1, 2), (3, 0)))), tmp_path)
    _check(_seq((5, 4, 2), layers.Conv2D(3, 2), layers.Flatten(), layers.Dense(4)), tmp_path)


@pytest.mark.parametrize("merge", [layers.Add, layers.Subtract, layers.Multiply, layers.Average,
                                   lambda: layers.Concatenate(), lambda: layers.Concatenate(axis=1),
                                   lambda: layers.Concatenate(axis=2)])
def test_merging_with_mixed_layouts(tmp_path, merge):
    inp = cnnfast.Input(shape=(6, 5, 3))
    a = layers.Conv2D(3, 1)(inp)          # NCHW inside the graph
    b = layers.Activation("tanh")(inp)    # NHWC
    model = cnnfast.Model(inp, layers.Conv2D(2, 1)(merge()([a, b])))
    _check(model, tmp_path)


def test_residual_block_nested_model_shared_layer_two_inputs_two_outputs(tmp_path):
    inner_in = cnnfast.Input(shape=(8, 8, 4))
    h = layers.Conv2D(4, 3, padding="same", use_bias=False)(inner_in)
    h = layers.BatchNormalization()(h)
    h = layers.ReLU()(h)
    block = cnnfast.Model(inner_in, layers.Add()([h, inner_in]), name="block")
    a = cnnfast.Input(shape=(8, 8, 4))
    b = cnnfast.Input(shape=(8, 8, 4))
    shared = layers.Conv2D(4, 1, name="shared")
    x = block(layers.Add()([shared(a), shared(b)]))
    out1 = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    out2 = layers.Conv2D(1, 1, activation="sigmoid")(x)
    _check(cnnfast.Model([a, b], [out1, out2]), tmp_path)


def test_output_that_is_an_input(tmp_path):
    inp = cnnfast.Input(shape=(3,))
    model = cnnfast.Model(inp, [layers.Dense(2)(inp), layers.Dropout(0.1)(inp)])
    _check(model, tmp_path)


def test_every_saveable_layer_is_exportable():
    from cnnfast.layers import SERIALIZABLE
    from cnnfast.onnx._export import EXPORTABLE, NOT_EXPORTABLE
    missing = set(SERIALIZABLE) - {"InputLayer"} - EXPORTABLE - set(NOT_EXPORTABLE)
    assert not missing, f"layers without an ONNX export: {sorted(missing)}"


def test_a_layer_without_export_is_named(tmp_path):
    class Scale(layers.Layer):
        def forward(self, x, training, ctx):
            return x * 2

    inp = cnnfast.Input(shape=(3,))
    model = cnnfast.Model(inp, Scale(name="my_scale")(inp))
    with pytest.raises(ValueError, match=r"layer 'my_scale' \(Scale\) cannot be exported"):
        cnnfast.onnx.export(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_bad_arguments(tmp_path):
    model = _seq((3,), layers.Dense(2))
    for opset in (7, 99, "17", True):
        with pytest.raises(ValueError, match="opset must be an int"):
            cnnfast.onnx.export(model, tmp_path / "x.onnx", opset=opset)
    with pytest.raises(TypeError, match="expected a cnnfast Model"):
        cnnfast.onnx.export(layers.Dense(2), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="is not built"):
        cnnfast.onnx.export(cnnfast.Sequential([layers.Dense(2)]), tmp_path / "x.onnx")


def test_opsets_in_range(tmp_path):
    model = _seq((6, 6, 2), layers.Conv2D(2, 3, padding="same"), layers.UpSampling2D(),
                 layers.ZeroPadding2D(1), layers.Cropping2D(1), layers.ReLU(max_value=6.0))
    _randomize(model)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype(np.float32)
    for opset in (cnnfast.onnx.MIN_OPSET, cnnfast.onnx.DEFAULT_OPSET, 19):
        path = tmp_path / f"o{opset}.onnx"
        cnnfast.onnx.export(model, path, opset=opset)
        np.testing.assert_allclose(_run_ort(path, [x])[0], model.predict_on_batch(x), rtol=1e-5, atol=1e-6)


def test_import_cnnfast_does_not_import_onnx_and_export_without_it_says_how_to_install():
    code = ("import sys, cnnfast; from cnnfast import layers;"
            "assert 'onnx' not in sys.modules;"
            "sys.modules['onnx'] = None;"
            "m = cnnfast.Sequential([cnnfast.Input(shape=(3,)), layers.Dense(2)]);"
            "\ntry:\n    m.export('x.onnx', format='onnx')\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'cnnfast[onnx]'" in out
