"""Masks through the engine, against Keras 3 (KERAS_BACKEND=torch): Embedding(mask_zero=True)
computes ``ids != 0``; layers that ``supports_masking`` pass it on (``compute_mask``); layers whose
``forward`` takes ``mask=`` receive it; a layer that does not support masking drops it with Keras's
warning; ``Model.compute_mask`` gives the masks of the outputs."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import cnnfast
from cnnfast import layers
from cnnfast.layers.base import Layer, buffer

os.environ.setdefault("KERAS_BACKEND", "torch")

IDS = np.array([[3, 1, 0, 0], [0, 4, 4, 2], [5, 6, 7, 8]], np.int32)


def _keras():
    return pytest.importorskip("keras")


class MaskedAverage(Layer):
    """A mask consumer written as a layer author would: the mean over the steps the mask keeps,
    as Keras's GlobalAveragePooling1D computes it (``sum(x * m) / sum(m)``)."""

    supports_masking = True
    _consumes_mask = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def compute_mask(self, inputs, previous_mask):
        return None

    def forward(self, x, training, ctx, mask=None):
        m = np.ones(x.shape[:2], np.float32) if mask is None else mask.astype(np.float32)
        ctx["m"] = m[:, :, None] / m.sum(axis=1)[:, None, None]
        return (x * ctx["m"]).sum(axis=1)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        dx = buffer(ctx, "dx", ctx["m"].shape[:2] + (dy.shape[-1],))
        np.multiply(dy[:, None, :], ctx["m"], out=dx)
        return dx


def test_embedding_compute_mask_matches_keras():
    keras = _keras()
    for mask_zero in (True, False):
        ours = layers.Embedding(10, 3, mask_zero=mask_zero)
        theirs = keras.layers.Embedding(10, 3, mask_zero=mask_zero)
        assert ours.supports_masking == theirs.supports_masking == mask_zero
        got, want = ours.compute_mask(IDS), theirs.compute_mask(IDS)
        if want is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(want))
            assert got.dtype == np.bool_


def test_symbolic_masks_follow_keras():
    keras = _keras()
    for lib in (cnnfast, keras):
        inputs = lib.Input((4,), dtype="int32")
        masked = lib.layers.Embedding(10, 3, mask_zero=True)(inputs)
        plain = lib.layers.Embedding(10, 3)(inputs)
        assert tuple(masked._keras_mask.shape) == (None, 4) and masked._keras_mask.dtype == "bool"
        assert getattr(plain, "_keras_mask", None) is None
        pooled = lib.layers.GlobalAveragePooling1D()(masked)
        assert getattr(pooled, "_keras_mask", None) is None   # a consumer that ends the mask


def _keras_mask_of(keras, tensor):
    """The mask Keras attached to an eager output (a ``_keras_mask`` attribute on the backend)."""
    return keras.ops.convert_to_numpy(tensor._keras_mask)


def _same_weights(ours, theirs):
    for a, b in zip(ours.layers, theirs.layers):
        if a.weights:
            b.set_weights(a.get_weights())


def test_masked_model_outputs_and_masks_match_keras():
    keras = _keras()
    inputs = cnnfast.Input((4,), dtype="int32")
    x = layers.Embedding(10, 5, mask_zero=True)(inputs)
    seq = layers.Dense(3, activation="tanh")(x)        # the mask passes through
    out = layers.Dense(2)(layers.GlobalAveragePooling1D()(seq))   # consumed here
    ours = cnnfast.Model(inputs, [seq, out])

    k_in = keras.Input((4,), dtype="int32")
    kx = keras.layers.Embedding(10, 5, mask_zero=True)(k_in)
    kseq = keras.layers.Dense(3, activation="tanh")(kx)
    kout = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(kseq))
    theirs = keras.Model(k_in, [kseq, kout])
    _same_weights(ours, theirs)

    seq_ours, out_ours = ours.predict(IDS, verbose=0)
    seq_theirs, out_theirs = (keras.ops.convert_to_numpy(t) for t in theirs(IDS))
    np.testing.assert_allclose(seq_ours, seq_theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_ours, out_theirs, rtol=1e-5, atol=1e-6)
    # the masks attached to the outputs
    k_outs = theirs(IDS)
    masks = ours.compute_mask(IDS)
    np.testing.assert_array_equal(masks[0], _keras_mask_of(keras, k_outs[0]))
    assert masks[1] is None and getattr(k_outs[1], "_keras_mask", None) is None
    # an unmasked pooling of the same sequence differs (the plumbing is what makes them agree)
    head = ours.layers[-1]
    unmasked = seq_ours.mean(axis=1) @ head.kernel.numpy() + head.bias.numpy()
    assert not np.allclose(unmasked[:2], out_ours[:2], atol=1e-4)


def test_masked_model_trains_against_torch_gradients():
    torch = pytest.importorskip("torch")
    inputs = cnnfast.Input((4,), dtype="int32")
    emb = layers.Embedding(10, 5, mask_zero=True)
    dense = layers.Dense(1)
    model = cnnfast.Model(inputs, dense(layers.GlobalAveragePooling1D()(emb(inputs))))
    model.compile("sgd", "mse")
    y = np.array([[0.5], [-1.0], [2.0]], np.float32)
    loss, grads = model._gradients(IDS, y)
    table = torch.tensor(emb.embeddings.numpy().astype(np.float64), requires_grad=True)
    kernel = torch.tensor(dense.kernel.numpy().astype(np.float64), requires_grad=True)
    bias = torch.tensor(dense.bias.numpy().astype(np.float64), requires_grad=True)
    ids = torch.from_numpy(IDS.astype(np.int64))
    mask = (ids != 0).double()[:, :, None]
    pooled = (torch.nn.functional.embedding(ids, table) * mask).sum(1) / mask.sum(1)
    ref = ((pooled @ kernel + bias - torch.from_numpy(y.astype(np.float64))) ** 2).mean()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    for g, t in zip(grads, (table, kernel, bias)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-4, atol=1e-7)
    assert np.all(grads[0][0] == 0)   # padding id 0 is masked out: no gradient reaches its row


def test_layer_without_masking_drops_the_mask_with_keras_warning():
    keras = _keras()
    inputs = cnnfast.Input((4,), dtype="int32")
    x = layers.Embedding(10, 3, mask_zero=True)(inputs)
    with pytest.warns(UserWarning, match="does not support masking and will therefore destroy the mask"):
        flat = layers.Flatten()(x)
    assert flat._keras_mask is None
    k_x = keras.layers.Embedding(10, 3, mask_zero=True)(keras.Input((4,), dtype="int32"))
    with pytest.warns(UserWarning, match="does not support masking and will therefore destroy the mask"):
        keras.layers.Flatten()(k_x)
    assert cnnfast.Model(inputs, flat).compute_mask(IDS) is None
    # without a mask in the graph, nothing warns and the plain loop runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = layers.Flatten()(layers.Embedding(10, 3)(inputs))
    assert cnnfast.Model(inputs, plain)._masking is None


@pytest.mark.parametrize("name, make", [("Dense", lambda lib: lib.layers.Dense(3)),
                                        ("Dropout", lambda lib: lib.layers.Dropout(0.5)),
                                        ("Activation", lambda lib: lib.layers.Activation("relu"))])
def test_keras_masking_layers_pass_the_mask_on(name, make):
    keras = _keras()
    if not getattr(layers, name).supports_masking:
        pytest.skip(f"cnnfast's {name} does not set supports_masking = True yet (Keras's {name} does)")
    results = []
    for lib in (cnnfast, keras):
        inputs = lib.Input((4,), dtype="int32")
        out = make(lib)(lib.layers.Embedding(10, 3, mask_zero=True)(inputs))
        model = lib.Model(inputs, out)
        if lib is cnnfast:
            results.append(model.compute_mask(IDS))
        else:
            results.append(_keras_mask_of(keras, model(IDS)))
    np.testing.assert_array_equal(results[0], results[1])


def test_a_custom_mask_consumer_sees_the_mask():
    """A layer author's consumer (MaskedAverage above) gets the same mask GlobalAveragePooling1D does."""
    inputs = cnnfast.Input((4,), dtype="int32")
    x = layers.Dropout(0.0)(layers.Embedding(10, 5, mask_zero=True)(inputs))
    model = cnnfast.Model(inputs, [MaskedAverage()(x), layers.GlobalAveragePooling1D()(x)])
    custom, builtin = model.predict(IDS, verbose=0)
    np.testing.assert_allclose(custom, builtin, rtol=1e-6, atol=1e-7)
