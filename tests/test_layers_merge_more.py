"""Maximum, Minimum, Dot, RepeatVector and Lambda: forward and backward against PyTorch autograd,
shapes, parameter counts and configs against Keras 3, saving, and the Lambda's refusals."""
import json
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import cnnfast  # noqa: E402
from cnnfast import activations, layers, models  # noqa: E402
from cnnfast.layers import base  # noqa: E402


def _run(layer, xs, rng, training=True):
    """Forward and backward of a built layer with a random upstream gradient."""
    multi = isinstance(xs, list)
    arrays = [x.astype(np.float32) for x in xs] if multi else xs.astype(np.float32)
    layer._maybe_build([(None,) + a.shape[1:] for a in arrays] if multi else (None,) + arrays.shape[1:])
    ctx = {}
    y = layer.forward(arrays, training, ctx)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    base.new_grad_generation()
    return y, dy, layer.backward(dy, ctx, True)


def _torch_grads(torch, fn, xs, dy):
    ts = [torch.tensor(x.astype(np.float64), requires_grad=True) for x in xs]
    out = fn(*ts)
    (out * torch.tensor(dy.astype(np.float64))).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def _keras_expand(torch, ts):
    """Keras's merge broadcasting: lower-rank inputs get axes inserted at 1."""
    ndim = max(t.ndim for t in ts)
    out = []
    for t in ts:
        while t.ndim < ndim:
            t = t.unsqueeze(1)
        out.append(t)
    return out


# --- Maximum / Minimum --------------------------------------------------------------------------
@pytest.mark.parametrize("cls,torch_op", [("Maximum", "maximum"), ("Minimum", "minimum")])
@pytest.mark.parametrize("shapes", [[(3, 4, 2)] * 2, [(3, 4, 2)] * 3, [(2, 3, 1, 4), (2, 1, 5, 4)],
                                    [(2, 1, 1, 3), (2, 4, 4, 3), (2, 4, 4, 1)], [(2, 3), (2, 4, 3)]])
def test_maximum_minimum_match_torch(cls, torch_op, shapes, rng):
    torch = pytest.importorskip("torch")
    xs = [rng.standard_normal(s) for s in shapes]
    y, dy, grads = _run(getattr(layers, cls)(), xs, rng)

    def fn(*ts):
        ts = _keras_expand(torch, ts)
        out = ts[0]
        for t in ts[1:]:
            out = getattr(torch, torch_op)(out, t)
        return out
    ry, rgrads = _torch_grads(torch, fn, xs, dy)
    np.testing.assert_allclose(y, ry, rtol=1e-6)
    for g, r, x in zip(grads, rgrads, xs):
        assert g.shape == x.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,torch_op", [("Maximum", "maximum"), ("Minimum", "minimum")])
def test_ties_split_the_gradient_as_torch(cls, torch_op, rng):
    torch = pytest.importorskip("torch")
    base_values = np.round(rng.standard_normal((4, 6)))   # many exact ties
    xs = [base_values, np.round(rng.standard_normal((4, 6))), base_values.copy()]
    xs[1][0] = xs[0][0]   # a row where all three tie
    y, dy, grads = _run(getattr(layers, cls)(), xs, rng)

    def fn(*ts):
        out = ts[0]
        for t in ts[1:]:
            out = getattr(torch, torch_op)(out, t)
        return out
    _, rgrads = _torch_grads(torch, fn, xs, dy)
    for g, r in zip(grads, rgrads):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7)
    # three-way tie: x0 and x1 a quarter each, x2 half
    np.testing.assert_allclose(grads[0][0], 0.25 * dy[0], rtol=1e-6)
    np.testing.assert_allclose(grads[2][0], 0.5 * dy[0], rtol=1e-6)


def test_maximum_minimum_shapes_and_errors(keras):
    for cls in ("Maximum", "Minimum"):
        a, b = layers.Input((3, 1)), layers.Input((1, 4))
        ka, kb = keras.Input((3, 1)), keras.Input((1, 4))
        assert getattr(layers, cls)()([a, b]).shape == getattr(keras.layers, cls)()([ka, kb]).shape == (None, 3, 4)
        with pytest.raises(ValueError, match="same shape after the batch axis"):
            getattr(layers, cls)()([layers.Input((3,)), layers.Input((4,))])
    out = layers.maximum([layers.Input((5,)), layers.Input((5,))])
    assert out.shape == (None, 5)
    assert layers.minimum([layers.Input((5,)), layers.Input((5,))]).shape == (None, 5)


# --- Dot ----------------------------------------------------------------------------------------
DOT_CASES = [
    ((4,), (4,), 1), ((4,), (4,), -1), ((3, 4), (5, 4), (2, 2)), ((3, 4), (5, 4), -1),
    ((3, 4), (4, 5), (2, 1)), ((3, 4), (4, 5), (-1, -2)), ((3,), (3, 5), 1), ((5, 3), (3,), (2, 1)),
    ((2, 3, 4), (2, 4, 5), (3, 2)), ((2, 3, 4), (4, 2), (3, 1)), ((6, 2), (3, 6), [1, 2]),
]


def _torch_dot(torch, x, y, a0, a1, normalize):
    if normalize:
        x = x * torch.clamp(torch.rsqrt((x * x).sum(a0, keepdim=True)), max=1e7)
        y = y * torch.clamp(torch.rsqrt((y * y).sum(a1, keepdim=True)), max=1e7)
    xm = torch.movedim(x, a0, -1)
    ym = torch.movedim(y, a1, 1)
    n, k = x.shape[0], x.shape[a0]
    out = torch.bmm(xm.reshape(n, -1, k), ym.reshape(n, k, -1))
    shape = (n,) + tuple(xm.shape[1:-1]) + tuple(ym.shape[2:])
    return out.reshape(shape if len(shape) > 1 else (n, 1))


@pytest.mark.parametrize("shape_x,shape_y,axes", DOT_CASES)
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_matches_torch_and_keras(shape_x, shape_y, axes, normalize, keras, rng):
    torch = pytest.importorskip("torch")
    n = 3
    x, y = rng.standard_normal((n,) + shape_x), rng.standard_normal((n,) + shape_y)
    layer = layers.Dot(axes=axes, normalize=normalize)
    out, dy, (dx, dyy) = _run(layer, [x, y], rng)
    pair = axes if isinstance(axes, (list, tuple)) else (axes, axes)
    a0, a1 = (a % (len(s) + 1) for a, s in zip(pair, (shape_x, shape_y)))
    ref, (rdx, rdy) = _torch_grads(torch, lambda p, q: _torch_dot(torch, p, q, a0, a1, normalize), [x, y], dy)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dyy, rdy, rtol=1e-4, atol=1e-5)
    # Keras 3 itself: values and symbolic shapes
    kl = keras.layers.Dot(axes=axes, normalize=normalize)
    kout = keras.ops.convert_to_numpy(kl([x.astype(np.float32), y.astype(np.float32)]))
    np.testing.assert_allclose(out, kout, rtol=1e-5, atol=1e-5)
    sym = layers.Dot(axes=axes, normalize=normalize)([layers.Input(shape_x), layers.Input(shape_y)])
    ksym = keras.layers.Dot(axes=axes, normalize=normalize)([keras.Input(shape_x), keras.Input(shape_y)])
    assert sym.shape == tuple(ksym.shape) == (None,) + out.shape[1:]


def test_dot_normalize_on_zero_vectors_is_finite(rng):
    x = np.zeros((2, 4), np.float32)
    y = rng.standard_normal((2, 4)).astype(np.float32)
    out, dy, (dx, dyy) = _run(layers.Dot(axes=1, normalize=True), [x, y], rng)
    assert np.all(out == 0) and np.all(np.isfinite(dx)) and np.all(np.isfinite(dyy))


def test_dot_errors():
    a, b = layers.Input((3, 4)), layers.Input((4, 5))
    with pytest.raises(ValueError, match=r"axis values 3 \(at axis 1\) != 4 \(at axis 1\)"):
        layers.Dot(axes=1)([a, b])
    with pytest.raises(ValueError, match="batch axis"):
        layers.Dot(axes=0)([layers.Input((3,)), layers.Input((3,))])
    with pytest.raises(ValueError, match="list of 2 inputs"):
        layers.Dot(axes=1)([layers.Input((3,))] * 3)
    with pytest.raises(ValueError, match="out of range"):
        layers.Dot(axes=3)([a, b])
    with pytest.raises(TypeError, match="axes must be an integer or a pair"):
        layers.Dot(axes="1")
    with pytest.raises(ValueError, match="axes must be an integer or a pair"):
        layers.Dot(axes=(1, 2, 3))
    assert layers.dot([layers.Input((4,)), layers.Input((4,))], axes=1).shape == (None, 1)


# --- RepeatVector -------------------------------------------------------------------------------
def test_repeat_vector(keras, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 5))
    y, dy, dx = _run(layers.RepeatVector(4), x, rng)
    ry, (rdx,) = _torch_grads(torch, lambda t: t.unsqueeze(1).expand(-1, 4, -1), [x], dy)
    np.testing.assert_allclose(y, ry, rtol=1e-6)
    np.testing.assert_allclose(dx, rdx, rtol=1e-5, atol=1e-6)
    assert layers.RepeatVector(4)(layers.Input((5,))).shape == \
        tuple(keras.layers.RepeatVector(4)(keras.Input((5,))).shape) == (None, 4, 5)
    with pytest.raises(ValueError, match="expected ndim=2, found ndim=3"):
        layers.RepeatVector(3)(layers.Input((3, 2)))
    with pytest.raises(TypeError, match="integer value for `n`"):
        layers.RepeatVector(2.0)
    with pytest.raises(ValueError, match="positive integer"):
        layers.RepeatVector(0)


# --- configs, summaries, saving -----------------------------------------------------------------
def _config_without_base(config):
    return {k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")}


@pytest.mark.parametrize("make", [
    lambda L: L.Maximum(), lambda L: L.Minimum(), lambda L: L.Dot(axes=1),
    lambda L: L.Dot(axes=(1, 2), normalize=True), lambda L: L.Dot(axes=[-1, 1]), lambda L: L.RepeatVector(3),
])
def test_configs_match_keras(make, keras):
    ours, theirs = make(layers), make(keras.layers)
    assert json.loads(json.dumps(_config_without_base(ours.get_config()))) == \
        json.loads(json.dumps(_config_without_base(theirs.get_config())))
    rebuilt = type(ours).from_config(ours.get_config())
    assert rebuilt.get_config() == ours.get_config()


def _model(lib, extra_lambda=None):
    a, b = lib.Input((6,)), lib.Input((6,))
    ha = lib.layers.Dense(4, name="da")(a)
    hb = lib.layers.Dense(4, name="db")(b)
    hi = lib.layers.Maximum(name="mx")([ha, hb])
    lo = lib.layers.Minimum(name="mn")([ha, hb])
    d = lib.layers.Dot(axes=1, normalize=True, name="cos")([hi, lo])
    r = lib.layers.RepeatVector(3, name="rep")(hi)
    s = lib.layers.Dot(axes=(2, 1), name="seq")([r, lib.layers.Reshape((4, 1))(lo)])
    out = lib.layers.Concatenate(name="cat")([d, lib.layers.Flatten()(s)])
    return lib.Model([a, b], out)


def test_summary_shapes_and_params_match_keras(keras):
    ours, theirs = _model(cnnfast), _model(keras)
    assert ours.count_params() == theirs.count_params()
    for name in ("mx", "mn", "cos", "rep", "seq", "cat"):
        assert ours.get_layer(name).output.shape == tuple(theirs.get_layer(name).output.shape), name
        assert ours.get_layer(name).count_params() == 0


def test_model_trains_and_round_trips(tmp_path, rng):
    model = _model(cnnfast)
    model.compile(optimizer="adam", loss="mse")
    xs = [rng.standard_normal((32, 6)).astype(np.float32) for _ in range(2)]
    t = rng.standard_normal((32, 4)).astype(np.float32)
    history = model.fit(xs, t, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = models.load_model(path)
    np.testing.assert_allclose(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-6)
    assert loaded.get_layer("cos").get_config() == model.get_layer("cos").get_config()


# --- Lambda -------------------------------------------------------------------------------------
@layers.register_keras_serializable(package="cnnfast_tests")
def _double(x):
    return 2 * x


@layers.register_keras_serializable(package="cnnfast_tests")
def _double_backward(dy, x, y):
    return 2 * dy


@layers.register_keras_serializable(package="cnnfast_tests", name="pair_sum")
def _pair_sum(xs, scale=1.0):
    return scale * (xs[0] + xs[1])


def test_lambda_forward_shapes_and_arguments(keras, rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(layers.Lambda(lambda v: v ** 2)(x), x ** 2)
    # output shape inferred by a probe call, or declared (tuple or function), as Keras
    inp = layers.Input((6,))
    assert layers.Lambda(lambda v: v[:, :3])(inp).shape == (None, 3)
    assert layers.Lambda(lambda v: v.reshape(-1, 2, 3), output_shape=(2, 3))(inp).shape == (None, 2, 3)
    assert layers.Lambda(lambda v: v, output_shape=lambda s: s)(inp).shape == (None, 6)
    kinp = keras.Input((6,))
    assert tuple(keras.layers.Lambda(lambda v: v[:, :3])(kinp).shape) == (None, 3)
    # arguments are passed as keywords; a list input is passed as a list
    two = layers.Lambda(_pair_sum, arguments={"scale": 3.0})
    np.testing.assert_allclose(two([x, x]), 6 * x, rtol=1e-6)
    assert two.get_config()["arguments"] == {"scale": 3.0}
    # training is passed when the function takes it
    seen = []
    layers.Lambda(lambda v, training=None: seen.append(training) or v)(x, training=True)
    assert seen[-1] is True
    with pytest.raises(ValueError, match="returned shape"):
        layer = layers.Lambda(lambda v: v[:, :2], output_shape=(3,))
        layer(x)


def test_lambda_inside_a_model_predicts_and_trains_where_possible(rng):
    x = rng.standard_normal((16, 5)).astype(np.float32)
    t = rng.standard_normal((16, 2)).astype(np.float32)
    # a Lambda right after the input needs no gradient: training works
    inp = layers.Input((5,))
    out = layers.Dense(2)(layers.Lambda(lambda v: v * 0.5)(inp))
    model = models.Model(inp, out)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, t, epochs=1, verbose=0)
    # in the middle of the network it needs a derivative
    inp = layers.Input((5,))
    mid = layers.Lambda(lambda v: np.tanh(v), name="tanh_lambda")(layers.Dense(3)(inp))
    model = models.Model(inp, layers.Dense(2)(mid))
    model.compile(optimizer="sgd", loss="mse")
    assert model.predict(x, verbose=0).shape == (16, 2)
    model.evaluate(x, t, verbose=0)
    with pytest.raises(NotImplementedError, match="Lambda 'tanh_lambda': cannot compute the gradient.*backward="):
        model.fit(x, t, epochs=1, verbose=0)


def test_lambda_backward_from_activations_and_from_backward_arg(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4))
    y, dy, dx = _run(layers.Lambda(activations.gelu, arguments={"approximate": True}), x, rng)
    _, (rdx,) = _torch_grads(torch, lambda t: torch.nn.functional.gelu(t, approximate="tanh"), [x], dy)
    np.testing.assert_allclose(dx, rdx, rtol=1e-5, atol=1e-6)
    y, dy, dx = _run(layers.Lambda(activations.glu, arguments={"axis": -1}), x, rng)
    assert y.shape == (3, 2)
    _, (rdx,) = _torch_grads(torch, lambda t: torch.nn.functional.glu(t, dim=-1), [x], dy)
    np.testing.assert_allclose(dx, rdx, rtol=1e-5, atol=1e-6)
    y, dy, dx = _run(layers.Lambda(_double, backward=_double_backward), x, rng)
    np.testing.assert_allclose(dx, 2 * dy, rtol=1e-6)
    with pytest.raises(ValueError, match="backward returned a gradient of shape"):
        _run(layers.Lambda(_double, backward=lambda dy, x, y: dy[:1]), x, rng)


def test_lambda_config_round_trip_for_registered_functions(tmp_path, rng, keras):
    layer = layers.Lambda(_double, backward=_double_backward)
    config = layer.get_config()
    # the function entry is written as Keras writes a registered function
    kdouble = keras.saving.register_keras_serializable(package="cnnfast_tests")(_double)
    assert config["function"] == keras.layers.Lambda(kdouble).get_config()["function"] == {
        "module": "builtins", "class_name": "function", "config": "cnnfast_tests>_double",
        "registered_name": "function"}
    rebuilt = layers.Lambda.from_config(json.loads(json.dumps(config)))
    assert rebuilt.function is _double and rebuilt.backward_function is _double_backward
    act = layers.Lambda(activations.leaky_relu, arguments={"negative_slope": 0.1}).get_config()
    assert act["function"]["config"] == "leaky_relu"
    assert layers.Lambda.from_config(act).function is activations.leaky_relu
    # inside a saved model
    inp = layers.Input((4,))
    model = models.Model(inp, layers.Lambda(_double, name="dbl")(layers.Dense(3)(inp)))
    path = tmp_path / "lambda.keras"
    model.save(path)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))
    # a Lambda called on a list is called on a list again after loading
    a, b = layers.Input((3,)), layers.Input((3,))
    model = models.Model([a, b], layers.Dense(2)(layers.Lambda(_pair_sum, arguments={"scale": 2.0})([a, b])))
    model.save(path)
    xs = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(2)]
    np.testing.assert_allclose(models.load_model(path).predict(xs, verbose=0), model.predict(xs, verbose=0),
                               rtol=1e-6)


def test_lambda_refuses_to_save_or_load_code(tmp_path, keras):
    with pytest.raises(ValueError, match="saves functions by name only"):
        layers.Lambda(lambda v: v).get_config()
    inp = layers.Input((4,))
    model = models.Model(inp, layers.Lambda(lambda v: v + 1, name="anon")(inp))
    with pytest.raises(ValueError, match="Lambda 'anon'.*register"):
        model.save(tmp_path / "x.keras")
    assert not (tmp_path / "x.keras").exists()
    # a config as Keras writes a Python lambda: bytecode, refused before anything runs
    kconfig = keras.layers.Lambda(lambda v: v * 2).get_config()
    assert kconfig["function"]["class_name"] == "__lambda__"
    kconfig.pop("dtype")   # Keras's dtype policy object
    with pytest.raises(ValueError, match="Python bytecode.*never does"):
        layers.Lambda.from_config(kconfig)
    spec = {"class_name": "Lambda", "config": {"name": "evil", "function": kconfig["function"]}}
    from cnnfast.models.serialization import ConfigError, deserialize_layer
    with pytest.raises(ConfigError, match="bytecode"):
        deserialize_layer(spec)
    # an unregistered name is refused, naming what is registered
    with pytest.raises(ValueError, match="'nowhere>f' is not registered"):
        layers.Lambda({"module": "builtins", "class_name": "function", "config": "nowhere>f",
                       "registered_name": "function"})
    with pytest.raises(NotImplementedError, match="mask is not supported"):
        layers.Lambda(_double, mask=lambda x, m: m)
    with pytest.raises(ValueError, match="cannot save arguments"):
        layers.Lambda(_double, arguments={"a": object()}).get_config()


def test_register_keras_serializable_rules():
    with pytest.raises(TypeError, match="registers functions"):
        layers.register_keras_serializable()(layers.Dense)
    with pytest.raises(ValueError, match="already registered"):
        layers.register_keras_serializable(package="cnnfast_tests", name="_double")(lambda x: x)
    with pytest.raises(ValueError, match="without '>'"):
        layers.register_keras_serializable(package="a>b")


# --- ONNX export --------------------------------------------------------------------------------
def _export_and_run(model, xs, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    cnnfast.onnx.export(model, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs)})[0]


def test_onnx_export_of_the_merges_and_repeat_vector(tmp_path, rng):
    model = _model(cnnfast)
    for batch in (1, 3):
        xs = [rng.standard_normal((batch, 6)).astype(np.float32) for _ in range(2)]
        np.testing.assert_allclose(_export_and_run(model, xs, tmp_path), model.predict(xs, verbose=0),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape_x,shape_y,axes", DOT_CASES)
def test_onnx_export_of_dot(shape_x, shape_y, axes, tmp_path, rng):
    a, b = layers.Input(shape_x), layers.Input(shape_y)
    model = models.Model([a, b], layers.Dot(axes=axes, normalize=True)([a, b]))
    xs = [rng.standard_normal((2,) + s).astype(np.float32) for s in (shape_x, shape_y)]
    xs[0][0] = 0   # a zero vector: Keras's capped 1 / norm
    np.testing.assert_allclose(_export_and_run(model, xs, tmp_path), model.predict(xs, verbose=0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn,arguments", [
    (activations.gelu, {"approximate": True}), (activations.leaky_relu, {"negative_slope": 0.05}),
    (activations.relu, {"max_value": 1.0, "threshold": 0.2, "negative_slope": 0.1}),
    (activations.celu, {"alpha": 0.5}), (activations.soft_shrink, {"threshold": 0.3}),
    (activations.threshold, {"threshold": 0.1, "default_value": -1.0}), (activations.squareplus, {"b": 2}),
    (activations.log_softmax, {"axis": 1}), (activations.softmax, {"axis": -2}), (activations.sparsemax, {}),
    (activations.mish, {}),
])
def test_onnx_export_of_activation_lambdas(fn, arguments, tmp_path, rng):
    inp = layers.Input((4, 5))
    model = models.Model(inp, layers.Lambda(fn, arguments=arguments)(inp))
    x = (rng.standard_normal((3, 4, 5)) * 2).astype(np.float32)
    np.testing.assert_allclose(_export_and_run(model, [x], tmp_path), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_onnx_export_refuses_python_lambdas(tmp_path):
    pytest.importorskip("onnx")
    inp = layers.Input((4,))
    model = models.Model(inp, layers.Lambda(lambda v: v * 2, name="anon")(inp))
    with pytest.raises(ValueError, match="Lambda 'anon' wraps a Python function"):
        cnnfast.onnx.export(model, tmp_path / "x.onnx")
