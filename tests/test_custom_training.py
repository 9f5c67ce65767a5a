"""Custom training loops (Keras 3's API on cnnfast's layer-wise backward): GradientTape and
Model.compute_gradients against PyTorch autograd, optimizer.apply / apply_gradients against fit,
overridden train_step / test_step / predict_step driven by fit / evaluate / predict, and the errors
for what cannot be differentiated."""
import warnings

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, metrics, models, optimizers, regularizers
from cnnfast.saving import load_torch_state_dict


def small_cnn(dropout=0.0, seed=3):
    return models.Sequential([
        layers.Input((6, 6, 2)),
        # no bias before batch norm: its true gradient is zero, and Adam would amplify the rounding
        layers.Conv2D(4, 3, padding="same", use_bias=False), layers.BatchNormalization(epsilon=1e-3, momentum=0.9),
        layers.ReLU(), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(8, activation="relu"), layers.Dropout(dropout, seed=seed), layers.Dense(5)])


def logits_loss():
    return cnnfast.losses.SparseCategoricalCrossentropy(from_logits=True)


def data(rng, n=8):
    return rng.standard_normal((n, 6, 6, 2)).astype(np.float32), rng.integers(0, 5, n)


# -- gradients against PyTorch ----------------------------------------------------------------------------
def test_gradients_match_torch_autograd(rng):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    tm = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4, eps=1e-3, momentum=0.1), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 8), nn.ReLU(), nn.Dropout(0.0),
                       nn.Linear(8, 5))
    with torch.no_grad():
        tm[1].weight.uniform_(0.5, 1.5)
        tm[1].bias.uniform_(-0.5, 0.5)
    state = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    cm = small_cnn()
    load_torch_state_dict(cm, state)
    cm.compile(optimizers.SGD(0.1), cnnfast.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(rng)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(True)
    tloss = nn.CrossEntropyLoss()(tm(xt), torch.from_numpy(y))
    tloss.backward()
    # torch's gradients in cnnfast's layout: loaded as if they were weights
    as_weights = models.Sequential.from_config(cm.get_config())
    load_torch_state_dict(as_weights, {**state, **{n: p.grad.numpy().copy() for n, p in tm.named_parameters()}})
    ref = [v.numpy() for v in as_weights.trainable_variables]
    ref_dx = xt.grad.numpy().transpose(0, 2, 3, 1)

    w0 = cm.get_weights()
    loss, grads = cm.compute_gradients(x, y)
    assert loss == pytest.approx(tloss.item(), rel=1e-5)
    assert len(grads) == len(cm.trainable_variables) == len(ref)
    for g, r, v in zip(grads, ref, cm.trainable_variables):
        assert g.shape == v.shape
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)

    cm.set_weights(w0)  # the moving statistics moved; the batch statistics are the same anyway
    with cnnfast.GradientTape() as tape:
        tape.watch(x)
        y_pred = cm(x, training=True)
        loss = cm.compute_loss(x=x, y=y, y_pred=y_pred)
    assert isinstance(loss, float) and loss == pytest.approx(tloss.item(), rel=1e-5)
    sources = cm.trainable_variables + [x]
    *grads, dx = tape.gradient(loss, sources)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-6)
    # Keras 3's names for the variable lists
    assert cm.trainable_weights == cm.trainable_variables
    assert [v.path for v in cm.non_trainable_variables] == [v.path for v in cm.non_trainable_weights]
    assert {v.name for v in cm.non_trainable_variables} == {"moving_mean", "moving_variance"}


def test_tape_in_inference_mode_and_regularizers_match_the_fused_path(rng):
    model = models.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3, kernel_regularizer=regularizers.L2(0.1)),
                               layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Flatten(),
                               layers.Dense(4, activation="softmax", kernel_regularizer=regularizers.L1(0.01))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data(rng)
    y %= 4
    w0 = model.get_weights()
    loss_fit, ref = model.compute_gradients(x, y)
    model.set_weights(w0)
    with cnnfast.GradientTape() as tape:
        loss = model.compute_loss(y=y, y_pred=model(x, training=True))
    assert loss == pytest.approx(loss_fit, rel=1e-6)
    for g, r in zip(tape.gradient(loss, model.trainable_variables), ref):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    # inference mode: batch norm uses its moving statistics; compare with finite differences
    loss_eval, grads = model.compute_gradients(x, y, training=False)
    assert loss_eval == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    kernel = model.layers[-1].kernel
    # the largest weight: away from the L1 penalty's kink at 0
    eps, (i, j) = 1e-2, np.unravel_index(np.argmax(np.abs(kernel.value)), kernel.shape)
    kernel.value[i, j] += eps
    up = model.evaluate(x, y, verbose=0, batch_size=8)
    kernel.value[i, j] -= 2 * eps
    down = model.evaluate(x, y, verbose=0, batch_size=8)
    kernel.value[i, j] += eps
    assert grads[-2][i, j] == pytest.approx((up - down) / (2 * eps), rel=2e-2, abs=1e-4)


def test_chained_model_calls_match_the_combined_model(rng):
    base = models.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"), layers.Flatten()])
    head = models.Sequential([layers.Input((48,)), layers.Dense(4)])
    head.compile("sgd", "mse")
    inp = cnnfast.Input((6, 6, 2))
    whole = models.Model(inp, head(base(inp)))
    whole.compile("sgd", "mse")
    x = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((5, 4)).astype(np.float32)
    _, ref = whole.compute_gradients(x, y)
    with cnnfast.GradientTape(persistent=True) as tape:
        loss = head.compute_loss(y=y, y_pred=head(base(x, training=True), training=True))
    grads = tape.gradient(loss, base.trainable_variables + head.trainable_variables)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    # persistent: again, as a dict of sources; a variable of an unrelated model is unconnected
    other = layers.Dense(2)
    other.build((None, 3))
    again = tape.gradient([loss], {"k": head.layers[0].kernel, "o": other.kernel})
    np.testing.assert_allclose(again["k"], ref[2], rtol=1e-5, atol=1e-6)
    assert again["o"] is None
    assert tape.gradient(loss, [other.kernel], unconnected_gradients="zero")[0].shape == (3, 2)


# -- optimizer.apply against fit ----------------------------------------------------------------------------
OPTIMIZERS = [lambda: optimizers.SGD(0.05), lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
              lambda: optimizers.Adam(0.01, amsgrad=True), lambda: optimizers.AdamW(0.01, global_clipnorm=0.5),
              lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True, clipnorm=0.1)]


@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_manual_loop_gives_the_weights_of_fit(make_opt, rng):
    x, y = data(rng, 20)
    ref = small_cnn(dropout=0.3)
    w0 = ref.get_weights()
    ref.compile(make_opt(), logits_loss())
    ref.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

    # compute_gradients + model.optimizer.apply: fit's own step, dropout noise included
    loop = small_cnn(dropout=0.3)
    loop.set_weights(w0)
    loop.compile(make_opt(), logits_loss())
    for _ in range(2):
        for start in range(0, 20, 8):
            _, grads = loop.compute_gradients(x[start:start + 8], y[start:start + 8])
            loop.optimizer.apply(grads, loop.trainable_variables)
    assert loop.optimizer.iterations == ref.optimizer.iterations == 6
    for a, b in zip(loop.get_weights(), ref.get_weights()):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_tape_loop_with_apply_gradients_on_loose_variables(make_opt, rng):
    """A tape and a separate optimizer over variables outside any flat buffer (the per-variable
    path) against fit (the fused flat path)."""
    x, y = data(rng, 16)
    ref = small_cnn()
    w0 = ref.get_weights()
    ref.compile(make_opt(), logits_loss())
    ref.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    loop = small_cnn()
    loop.set_weights(w0)
    loop.compile("sgd", logits_loss())
    opt = make_opt()
    for start in range(0, 16, 8):
        with cnnfast.GradientTape() as tape:
            y_pred = loop(x[start:start + 8], training=True)
            loss = loop.compute_loss(y=y[start:start + 8], y_pred=y_pred)
        grads = tape.gradient(loss, loop.trainable_variables)
        assert opt.apply_gradients(zip(grads, loop.trainable_variables)) == start // 8 + 1
    assert not opt._state.get("flat")  # the variables were never laid out flat
    # the tape differentiates the loss on its own, fit fuses it: float32 rounding apart, which
    # Adam's and RMSprop's division by sqrt(v) magnifies on tiny gradients
    for a, b in zip(loop.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_optimizer_apply_keras_semantics(rng):
    dense = layers.Dense(3)
    dense.build((None, 4))
    opt = optimizers.SGD(learning_rate=lambda step: 0.1 / (1 + step))  # a schedule of iterations
    g = [np.ones((4, 3), np.float32), np.ones(3, np.float32)]
    with pytest.raises(ValueError, match="optimizer.build"):
        opt.apply(g)
    opt.build(dense.trainable_variables)
    assert opt.iterations == 0 and not opt._state  # state is created on the first step
    k0 = dense.kernel.numpy()
    opt.apply(g)
    opt.apply(g)
    np.testing.assert_allclose(dense.kernel.numpy(), k0 - 0.1 - 0.05, rtol=1e-6, atol=1e-6)
    assert opt.iterations == 2
    with pytest.raises(ValueError, match="2 gradients for 1 variables"):
        opt.apply(g, [dense.kernel])
    with pytest.warns(UserWarning, match="Gradients do not exist for variables"):
        opt.apply_gradients([(None, dense.kernel), (g[1], dense.bias)])
    np.testing.assert_allclose(dense.kernel.numpy(), k0 - 0.15, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        opt.apply_gradients([(None, dense.kernel)])
    with pytest.raises(ValueError, match="gradient of shape"):
        opt.apply([np.ones(5, np.float32)], [dense.bias])
    with pytest.raises(TypeError, match="Variables"):
        opt.apply([np.ones(3, np.float32)], [np.zeros(3, np.float32)])


def test_custom_loop_optimizer_state_is_saved(rng, tmp_path):
    """apply() on a model's trainable_variables uses fit's flat state, which saving keeps."""
    x, y = data(rng)
    model = small_cnn()
    model.compile(optimizers.Adam(0.01), logits_loss())
    _, grads = model.compute_gradients(x, y)
    model.optimizer.apply(grads, model.trainable_variables)
    model.save(tmp_path / "m.keras")
    back = models.load_model(tmp_path / "m.keras")
    assert back.optimizer.iterations == 1
    np.testing.assert_array_equal(back.optimizer._state["flat"]["momentum"],
                                  model.optimizer._state["flat"]["momentum"])


# -- overridden steps ---------------------------------------------------------------------------------------
class GuideModel(models.Model):
    """The Keras guide's lower-level example: own loss tracker and metric, compile without a loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_tracker = metrics.Mean(name="loss")
        self.mae_metric = metrics.MeanAbsoluteError(name="mae")
        self.loss_fn = cnnfast.losses.MeanSquaredError()
        self.steps_seen = 0

    def train_step(self, data):
        x, y = data
        self.steps_seen += 1
        with cnnfast.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        self.loss_tracker.update_state(loss)
        self.mae_metric.update_state(y, y_pred)
        return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.mae_metric]


def regression(rng, n=64):
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32) + 0.3).astype(np.float32)


def test_overridden_train_step_trains_through_fit(rng):
    cnnfast.utils.set_random_seed(1)
    x, y = regression(rng)
    inp = cnnfast.Input((4,))
    model = GuideModel(inp, layers.Dense(1)(inp))
    model.compile(optimizer=optimizers.Adam(0.05), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    assert set(history.history) == {"loss", "mae"}
    assert model.steps_seen == 24 and model.optimizer.iterations == 24
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    # the trackers were reset at each epoch start: 4 batches counted in the last epoch
    assert model.loss_tracker.count == 4
    # the built-in evaluate reports through self.metrics, here the model's own trackers (as Keras)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(result) == {"loss", "mae"}


class MetricsLoopModel(models.Sequential):
    """The Keras guide's first example: compiled loss and metrics, updated through self.metrics,
    with sample weights and an extra tracker assigned as an attribute."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.grad_norm = metrics.Mean(name="grad_norm")

    def train_step(self, data):
        x, y, sample_weight = data if len(data) == 3 else (*data, None)
        with cnnfast.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.grad_norm.update_state(float(np.sqrt(sum(np.sum(g * g) for g in grads))))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            elif metric is not self.grad_norm:
                metric.update_state(y, y_pred, sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        loss = self.compute_loss(y=y, y_pred=y_pred)
        self._loss_tracker.update_state(loss)
        return {"custom_val": loss, **self.compute_metrics(x, y, y_pred)}


def test_train_and_test_step_with_compiled_metrics_and_validation(rng):
    x, y = regression(rng)
    sw = np.linspace(0.5, 1.5, 64).astype(np.float32)
    model = MetricsLoopModel([layers.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1)])
    model.compile(optimizer=optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    assert [m.name for m in model.metrics] == ["loss", "mae", "grad_norm"]
    history = model.fit(x[:48], y[:48], sample_weight=sw[:48], batch_size=16, epochs=3, verbose=0,
                        validation_data=(x[48:], y[48:]))
    assert set(history.history) == {"loss", "mae", "grad_norm", "val_loss", "val_mae", "val_grad_norm",
                                    "val_custom_val"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    # evaluate uses test_step: its extra key comes after the metrics, in Keras's order
    loss, mae, grad_norm, custom = model.evaluate(x, y, batch_size=64, verbose=0)
    assert custom == pytest.approx(loss, rel=1e-6)
    assert mae == pytest.approx(float(np.mean(np.abs(model.predict(x, verbose=0) - y))), rel=1e-5)
    assert model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)["custom_val"] == pytest.approx(custom)


def test_overridden_predict_step_and_data_sets(rng):
    class Doubling(models.Sequential):
        def predict_step(self, data):
            return {"double": 2 * self(data, training=False), "raw": super().predict_step(data)}

    x, y = regression(rng, 10)
    model = Doubling([layers.Input((4,)), layers.Dense(2)])
    ref = models.Sequential([layers.Input((4,)), layers.Dense(2)])
    ref.set_weights(model.get_weights())
    out = model.predict(x, batch_size=4, verbose=0)
    np.testing.assert_allclose(out["raw"], ref.predict(x, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(out["double"], 2 * out["raw"], rtol=1e-6)
    # a generator of batches through an overridden train_step
    inp = cnnfast.Input((4,))
    guide = GuideModel(inp, layers.Dense(1)(inp))
    guide.compile(optimizers.SGD(0.01), loss="mse")
    batches = [(x[i:i + 5], y[i:i + 5]) for i in (0, 5)]
    history = guide.fit(iter(batches), epochs=1, verbose=0)
    assert guide.steps_seen == 2 and set(history.history) == {"loss", "mae"}


def test_default_path_is_kept_when_no_step_is_overridden(rng, monkeypatch):
    x, y = data(rng)
    model = small_cnn()
    model.compile("sgd", logits_loss())
    assert not any(model._custom_step(s) for s in ("train_step", "test_step", "predict_step"))
    from cnnfast.models import custom_steps
    for name in ("fit", "evaluate", "predict"):
        monkeypatch.setattr(custom_steps, name, lambda *a, **k: pytest.fail("custom path used"))
    model.fit(x, y, verbose=0, validation_split=0.25)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    # the public default steps work when called directly (Keras: super().train_step(data))
    logs = model.train_step((x, y))
    assert set(logs) == {"loss"} and model.optimizer.iterations == 2
    assert model.predict_step(x).shape == (8, 5)


# -- errors ----------------------------------------------------------------------------------------------------
def test_clear_errors_for_what_cannot_be_differentiated(rng):
    x, y = data(rng)
    model = small_cnn()
    model.compile("sgd", cnnfast.losses.SparseCategoricalCrossentropy(from_logits=True))
    with cnnfast.GradientTape(persistent=True) as tape:
        y_pred = model(x, training=True)
        numpy_loss = float(np.mean(y_pred ** 2))
        sliced = model.compute_loss(y=y[:4], y_pred=y_pred[:4])
        loss = model.compute_loss(y=y, y_pred=y_pred)
        scaled = loss * 2
        copied = model.compute_loss(y=y, y_pred=np.array(y_pred))
    with pytest.raises(ValueError, match="not a loss recorded by this tape.*compute_loss"):
        tape.gradient(numpy_loss, model.trainable_variables)
    with pytest.raises(ValueError, match="not a loss recorded"):
        tape.gradient(scaled, model.trainable_variables)
    with pytest.raises(ValueError, match="NumPy operations"):
        tape.gradient(sliced, model.trainable_variables)
    with pytest.raises(ValueError, match="not the output of a model call"):
        tape.gradient(copied, model.trainable_variables)
    with pytest.raises(TypeError, match="sources must be Variables"):
        tape.gradient(loss, ["kernel"])
    assert tape.gradient(loss, model.trainable_variables)[0].shape == (3, 3, 2, 4)

    once = cnnfast.GradientTape()
    with once:
        loss = model.compute_loss(y=y, y_pred=model(x, training=True))
    once.gradient(loss, model.trainable_variables)
    with pytest.raises(RuntimeError, match="only be called once"):
        once.gradient(loss, model.trainable_variables)

    # an input derived by NumPy from a recorded output cuts the gradient: refused, not silent
    head = models.Sequential([layers.Input((5,)), layers.Dense(2)])
    head.compile("sgd", "mse")
    with cnnfast.GradientTape() as tape:
        out = head(model(x, training=True) * 2.0, training=True)
        loss = head.compute_loss(y=np.zeros((8, 2), np.float32), y_pred=out)
    with pytest.raises(ValueError, match="computed by NumPy operations from the output of a recorded call"):
        tape.gradient(loss, model.trainable_variables)

    plain = small_cnn()
    plain.compile("sgd")
    with pytest.raises(ValueError, match="no loss to compute"):
        plain.compute_loss(y=y, y_pred=plain(x))
    with pytest.raises(RuntimeError, match=r"compile\(\) before using the model \(compute_gradients\)"):
        small_cnn().compute_gradients(x, y)


def test_outputs_outside_a_tape_are_plain_and_losses_are_floats(rng):
    x, y = data(rng)
    model = small_cnn()
    model.compile("sgd", cnnfast.losses.SparseCategoricalCrossentropy(from_logits=True))
    out = model(x)
    assert type(out) is np.ndarray
    loss = model.compute_loss(y=y, y_pred=out)
    assert type(loss) is float
    assert loss == pytest.approx(model.evaluate(x, y, verbose=0, batch_size=8), rel=1e-5)


def test_loss_object_entry_point_for_the_tape(rng):
    """``gradients.loss_call`` (what ``Loss.__call__`` returns inside a tape): the gradient of a
    loss object's value, as compute_loss gives for the same compiled loss."""
    from cnnfast.models import gradients
    x, y = data(rng)
    model = small_cnn()
    loss_fn = cnnfast.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    model.compile("sgd", loss_fn)
    sw = np.linspace(0.5, 2.0, 8).astype(np.float32)
    w0 = model.get_weights()
    _, ref = model.compute_gradients(x, y, sample_weight=sw)
    model.set_weights(w0)
    assert gradients.loss_call(loss_fn, y, model(x)) is None  # outside a tape: the plain call
    with cnnfast.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = gradients.loss_call(loss_fn, y, y_pred, sw)
        assert gradients.loss_call(cnnfast.losses.MeanSquaredError(reduction="none"), y_pred, y_pred) is None
    assert loss == pytest.approx(loss_fn(y, np.asarray(y_pred), sample_weight=sw), rel=1e-6)
    for g, r in zip(tape.gradient(loss, model.trainable_variables), ref):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


def test_on_batch_methods_use_the_overridden_steps(rng):
    x, y = regression(rng, 16)
    inp = cnnfast.Input((4,))
    model = GuideModel(inp, layers.Dense(1)(inp))
    model.compile(optimizers.SGD(0.01), loss="mse")
    logs = model.train_on_batch(x, y, return_dict=True)
    assert model.steps_seen == 1 and set(logs) == {"loss", "mae"}
    loss, mae = model.train_on_batch(x, y)
    assert model.steps_seen == 2 and model.optimizer.iterations == 2

    class Halving(models.Sequential):
        def predict_step(self, data):
            return 0.5 * self(data, training=False)

    half = Halving([layers.Input((4,)), layers.Dense(2)])
    full = models.Sequential([layers.Input((4,)), layers.Dense(2)])
    full.set_weights(half.get_weights())
    np.testing.assert_allclose(half.predict_on_batch(x), 0.5 * full.predict_on_batch(x), rtol=1e-6)
    with pytest.raises(NotImplementedError, match="overrides train_step"):
        model.fit(x, y, distributed=True)


def test_a_loss_object_called_inside_the_tape(rng):
    """Keras's loop as its guides write it: ``loss = loss_fn(y, y_pred)`` on a recorded model output."""
    from cnnfast import losses
    cnnfast.utils.set_random_seed(3)
    model = models.Sequential([cnnfast.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
                               layers.Flatten(), layers.Dense(4, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = data(rng)
    y %= 4
    _, ref = model.compute_gradients(x, y)
    loss_fn = losses.SparseCategoricalCrossentropy()
    with cnnfast.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    assert float(loss) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    for g, r in zip(tape.gradient(loss, model.trainable_variables), ref):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    # outside a tape the same call is a plain float
    assert isinstance(loss_fn(y, model(x)), float)
