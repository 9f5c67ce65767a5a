"""Convolution, pooling and spatial layers: forward and backward against float64 references and
finite differences; output shapes as Keras; bad hyper-parameters."""
import numpy as np
import pytest

from cnnfast import layers, ops

from reference.model import check_layer

CONV_CASES = [
    # (input shape, filters, kernel, strides, padding, dilation, groups)
    ((1, 5, 5, 1), 2, 3, 1, "valid", 1, 1),
    ((2, 7, 6, 3), 4, (3, 2), 1, "same", 1, 1),
    ((2, 7, 7, 2), 3, 3, 2, "same", 1, 1),
    ((1, 8, 9, 2), 2, 3, (2, 3), "valid", 1, 1),
    ((1, 9, 9, 2), 3, 3, 1, "same", 2, 1),
    ((2, 6, 6, 4), 6, 3, 1, "valid", 1, 2),
    ((1, 5, 7, 3), 5, 1, 1, "valid", 1, 1),
]


@pytest.mark.parametrize("shape,filters,kernel,strides,padding,dilation,groups", CONV_CASES)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv2d_matches_reference(shape, filters, kernel, strides, padding, dilation, groups, activation, rng):
    layer = layers.Conv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                          groups=groups, activation=activation, bias_initializer="random_normal")
    y, dx, grads = check_layer(layer, rng.standard_normal(shape), rng)
    n = shape[0]
    assert y.shape == ops.conv2d_output_shape(shape, layer.kernel.shape, layer.strides, padding,
                                              layer.dilation_rate)
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + y.shape[1:]
    assert y.shape[0] == n and dx.shape == shape


def test_conv2d_every_isa_and_thread_count(isa, threads, rng):
    layer = layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer="random_normal")
    check_layer(layer, rng.standard_normal((3, 6, 5, 4)), rng, fd=False)
    check_layer(layers.Conv2D(3, 2, strides=2), rng.standard_normal((1, 5, 5, 2)), rng)


def test_conv2d_softmax_and_sigmoid_activations(rng):
    check_layer(layers.Conv2D(3, 2, activation="softmax"), rng.standard_normal((1, 4, 4, 2)), rng)
    check_layer(layers.Conv2D(2, 3, activation="tanh", use_bias=False), rng.standard_normal((1, 4, 5, 2)), rng)


@pytest.mark.parametrize("multiplier,strides,padding", [(1, 1, "valid"), (2, 1, "same"), (3, 2, "same")])
def test_depthwise_conv2d(multiplier, strides, padding, rng):
    layer = layers.DepthwiseConv2D(3, strides=strides, padding=padding, depth_multiplier=multiplier,
                                   bias_initializer="random_normal")
    y, _, grads = check_layer(layer, rng.standard_normal((2, 6, 5, 3)), rng)
    assert layer.kernel.shape == (3, 3, 3, multiplier)
    assert y.shape[-1] == 3 * multiplier
    assert layer.count_params() == 9 * 3 * multiplier + 3 * multiplier


@pytest.mark.parametrize("kernel,strides,padding,output_padding", [
    (3, 1, "valid", None), (3, 2, "same", None), (2, 2, "valid", None), (3, 2, "valid", 1),
    (4, 2, "same", None), (3, 2, "same", 1)])
def test_conv2d_transpose(kernel, strides, padding, output_padding, rng):
    layer = layers.Conv2DTranspose(3, kernel, strides=strides, padding=padding, output_padding=output_padding,
                                   bias_initializer="random_normal")
    x = rng.standard_normal((2, 4, 3, 2))
    y, _, _ = check_layer(layer, x, rng)
    assert layer.kernel.shape == (kernel, kernel, 3, 2)
    assert y.shape == ops.conv2d_transpose_output_shape(x.shape, layer.kernel.shape, layer.strides, padding,
                                                        layer.output_padding)
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]


@pytest.mark.parametrize("pool,strides,padding", [(2, None, "valid"), (3, 2, "same"), ((2, 3), (1, 2), "valid"),
                                                  (3, 1, "same"), (2, None, "same")])
def test_pooling_layers(pool, strides, padding, rng):
    x = rng.standard_normal((2, 7, 6, 3))
    y, _, _ = check_layer(layers.MaxPooling2D(pool, strides, padding), x, rng)
    assert y.shape == ops.pool2d_output_shape(x.shape, layers.MaxPooling2D(pool, strides).pool_size,
                                              strides or pool, padding)
    check_layer(layers.AveragePooling2D(pool, strides, padding), x, rng)


def test_pooling_every_isa_and_thread_count(isa, threads, rng):
    x = rng.standard_normal((3, 8, 8, 16))
    check_layer(layers.MaxPooling2D(), x, rng, fd=False)
    check_layer(layers.AveragePooling2D(3, 2, "same"), x, rng, fd=False)
    check_layer(layers.GlobalAveragePooling2D(), x, rng, fd=False)
    check_layer(layers.GlobalMaxPooling2D(keepdims=True), x, rng, fd=False)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(keepdims, rng):
    x = rng.standard_normal((2, 4, 3, 5))
    y, _, _ = check_layer(layers.GlobalAveragePooling2D(keepdims=keepdims), x, rng)
    assert y.shape == ((2, 1, 1, 5) if keepdims else (2, 5))
    check_layer(layers.GlobalMaxPooling2D(keepdims=keepdims), x, rng)


def test_upsampling_and_zero_padding(rng):
    x = rng.standard_normal((2, 3, 4, 2))
    y, _, _ = check_layer(layers.UpSampling2D((2, 3)), x, rng)
    assert y.shape == (2, 6, 12, 2)
    y, _, _ = check_layer(layers.ZeroPadding2D(((1, 2), (0, 3))), x, rng)
    assert y.shape == (2, 6, 7, 2)
    layer = layers.ZeroPadding2D(1)
    ctx = {}
    for _ in range(2):  # the reused buffer keeps a zero border
        y = layer.forward(x.astype(np.float32), True, ctx)
        np.testing.assert_array_equal(y[:, 0], 0)
        np.testing.assert_array_equal(y[:, 1:-1, 1:-1], x.astype(np.float32))
    crop = layers.Cropping2D(((1, 0), (1, 2)))
    y = crop(x)
    np.testing.assert_array_equal(y, x[:, 1:, 1:2].astype(np.float32))
    ctx = {}
    crop.forward(x.astype(np.float32), True, ctx)
    dx = crop.backward(np.ones_like(y), ctx, True)
    assert dx.shape == x.shape and dx.sum() == y.size


def test_conv_output_shapes_match_keras():
    inp = layers.Input((28, 28, 1))
    assert layers.Conv2D(32, 3)(inp).shape == (None, 26, 26, 32)
    assert layers.Conv2D(8, 5, strides=2, padding="same")(inp).shape == (None, 14, 14, 8)
    assert layers.Conv2D(8, 3, dilation_rate=2)(inp).shape == (None, 24, 24, 8)
    assert layers.MaxPooling2D()(inp).shape == (None, 14, 14, 1)
    assert layers.MaxPooling2D(3, 2, "same")(inp).shape == (None, 14, 14, 1)
    assert layers.AveragePooling2D(5, 3)(inp).shape == (None, 8, 8, 1)
    assert layers.Conv2DTranspose(4, 3, strides=2)(inp).shape == (None, 57, 57, 4)
    assert layers.Conv2DTranspose(4, 3, strides=2, padding="same")(inp).shape == (None, 56, 56, 4)
    assert layers.DepthwiseConv2D(3, depth_multiplier=2)(inp).shape == (None, 26, 26, 2)
    assert layers.GlobalAveragePooling2D()(inp).shape == (None, 1)
    free = layers.Input((None, None, 3))
    assert layers.Conv2D(4, 3)(free).shape == (None, None, None, 4)


def test_conv_bad_hyper_parameters():
    with pytest.raises(ValueError, match=r"padding must be one of \['valid', 'same'\], got 'full'"):
        layers.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="padding must be one of"):
        layers.MaxPooling2D(padding="causal")
    with pytest.raises(ValueError, match="kernel_size"):
        layers.Conv2D(4, (3, 3, 3))
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        layers.Conv2D(4, 0)
    with pytest.raises(ValueError, match="strides > 1 not supported in conjunction with dilation_rate > 1"):
        layers.Conv2D(4, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="channels_last"):
        layers.Conv2D(4, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="divisible by groups"):
        layers.Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match=r"input channels \(3\) must be divisible by groups \(2\)"):
        layers.Conv2D(4, 3, groups=2)(layers.Input((8, 8, 3)))
    with pytest.raises(ValueError, match="output size would be zero or negative"):
        layers.Conv2D(4, 5)(layers.Input((3, 3, 1)))
    with pytest.raises(ValueError, match="output size would be zero or negative"):
        layers.MaxPooling2D(4)(layers.Input((3, 3, 1)))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, height, width, channels\)"):
        layers.Conv2D(4, 3)(layers.Input((8, 8)))
    with pytest.raises(TypeError, match="AveragePooling2D.*pool_size"):
        layers.AveragePooling2D()
    with pytest.raises(ValueError, match="interpolation"):
        layers.UpSampling2D(interpolation="bicubic")


def test_conv_rejects_wrong_channels_on_call(rng):
    layer = layers.Conv2D(4, 3)
    layer(rng.standard_normal((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="expected axis -1 of the input shape to have value 2"):
        layer(rng.standard_normal((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        layer(rng.standard_normal((5, 5, 2)))


@pytest.mark.parametrize("make", [
    lambda: layers.Conv2D(5, 3, padding="same", activation="relu6", bias_initializer="random_normal"),
    lambda: layers.DepthwiseConv2D(3, strides=2, activation="relu6", bias_initializer="random_normal"),
    lambda: layers.SeparableConv2D(4, 3, activation="relu6", bias_initializer="random_normal"),
    lambda: layers.Conv2DTranspose(3, 3, strides=2, activation="relu6"),
    lambda: layers.Dense(7, activation="relu6", bias_initializer="random_normal"),
    lambda: layers.ReLU(max_value=6.0),
    lambda: layers.ReLU(max_value=0.7),
])
def test_relu6_is_capped_in_the_layer(make, isa, rng):
    """ReLU6 runs as the kernel's fused ReLU followed by an in-place cap; values reach both kinks
    (inputs scaled so that many outputs exceed 6)."""
    layer = make()
    x = rng.standard_normal((2, 7, 6, 3)) * 12
    y, _, _ = check_layer(layer, x, rng, fd=False)
    cap = 6.0 if not isinstance(layer, layers.ReLU) else layer.max_value
    assert y.min() == 0 and y.max() == np.float32(cap)
    small = rng.standard_normal((2, 5, 5, 3))   # away from the kinks: finite differences
    check_layer(make(), small * 0.5 + 0.1 if isinstance(layer, layers.ReLU) else small, rng)


def test_relu6_activation_layer_leaves_its_input_alone(rng):
    x = (rng.standard_normal((3, 8)) * 10).astype(np.float32)
    before = x.copy()
    y = layers.Activation("relu6")(x)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(y, np.clip(before, 0, 6))


def test_relu6_layers_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((2, 9, 9, 4)) * 3).astype(np.float32)
    layer = layers.DepthwiseConv2D(3, padding="same", activation="relu6", bias_initializer="random_normal")
    layer.build(x.shape)
    w, b = (v.numpy() for v in layer.weights)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    wt = torch.from_numpy(w.transpose(2, 3, 0, 1).copy())   # (3, 3, c, 1) -> (c, 1, 3, 3)
    yt = torch.nn.functional.relu6(torch.nn.functional.conv2d(xt, wt, torch.from_numpy(b), padding=1, groups=4))
    dy = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    ctx = {}
    y = layer.forward(x, True, ctx)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    dx = layer.backward(np.ascontiguousarray(dy.transpose(0, 2, 3, 1)), ctx, True)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [layers.Conv2D, layers.DepthwiseConv2D])
def test_explicit_padding_matches_zero_padding_then_valid(cls, rng, tmp_path):
    """((top, bottom), (left, right)) padding equals ZeroPadding2D + 'valid', forward and
    backward; it survives get_config, saving and ONNX export's geometry."""
    import cnnfast
    kw = dict(filters=4) if cls is layers.Conv2D else {}
    pads = ((1, 1), (0, 2))
    conv = cls(kernel_size=3, strides=2, padding=pads, bias_initializer="random_normal", **kw)
    x = rng.standard_normal((2, 8, 7, 3)).astype(np.float32)
    y, dx, grads = check_layer(conv, x, rng)
    plain = cls(kernel_size=3, strides=2, padding="valid", **kw)
    padded = layers.ZeroPadding2D(pads)(x)
    plain(padded)
    plain.set_weights(conv.get_weights())
    np.testing.assert_allclose(conv(x), plain(padded), rtol=1e-5, atol=1e-6)
    assert conv.compute_output_shape((None, 8, 7, 3)) == (None, 4, 4, y.shape[-1])
    config = conv.get_config()
    assert config["padding"] == [[1, 1], [0, 2]]
    clone = cls.from_config(config)
    assert clone.padding == pads
    inp = cnnfast.Input((8, 7, 3))
    model = cnnfast.Model(inp, conv(inp))
    model.save(tmp_path / "m.keras")
    back = cnnfast.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="padding"):
        cls(kernel_size=3, padding=((1, -1), (0, 0)), **kw)
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2DTranspose(2, 3, padding=((1, 1), (1, 1)))
