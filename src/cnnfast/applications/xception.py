"""Xception as Keras 3 builds it (``keras.applications.Xception``): the same layers and names.

Keras leaves the four strided shortcut convolutions, their BatchNormalizations and the residual
``add`` layers unnamed, so they get the automatic names (``conv2d``, ``batch_normalization``,
``add``, with a ``_<n>`` suffix when the name was already used in this process), as in Keras;
Keras's legacy HDF5 weights load by position, which does not depend on those names.

Inputs are scaled to [-1, 1] (:func:`preprocess_input`, Keras's "tf" mode).
"""
from __future__ import annotations

from .. import layers
from ..models.functional import Model
from . import imagenet_utils
from ._keras_weights import check_weights_argument, load_model_weights
from ._model_inputs import check_top_arguments, image_input, source_inputs

__all__ = ["Xception", "preprocess_input", "decode_predictions"]


def _sepconv_bn(x, filters, name, relu_before):
    if relu_before:
        x = layers.Activation("relu", name=f"{name}_act")(x)
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x)


def _downsampling_end(x, block_input, filters, pool_name):
    """The end of an entry/exit-flow block: max-pool the main branch, add the strided 1x1
    shortcut of the block's input. Called in the order Keras's functional model lists these
    layers (the order of Keras's HDF5 weight files): shortcut conv, pool, shortcut BN, add."""
    residual = layers.Conv2D(filters, (1, 1), strides=(2, 2), padding="same", use_bias=False)(block_input)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=pool_name)(x)
    residual = layers.BatchNormalization(axis=-1)(residual)
    return layers.add([x, residual])


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="xception"):
    """Xception (Keras 3's architecture; 22,910,480 parameters with the top).

    Default input (299, 299, 3), at least 71x71; other arguments as
    :func:`cnnfast.applications.ResNet50`.
    """
    caller = "Xception"
    check_weights_argument(weights, caller)
    check_top_arguments(caller, weights, include_top, classes, pooling)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=299, min_size=71,
                                                    data_format="channels_last",
                                                    require_flatten=include_top, weights=weights)
    img_input = image_input(caller, input_tensor, input_shape)

    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(img_input)
    x = layers.BatchNormalization(axis=-1, name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(axis=-1, name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)

    # entry flow: blocks 2-4, each halving the resolution beside a strided 1x1 shortcut
    block_input = x
    x = layers.SeparableConv2D(128, (3, 3), padding="same", use_bias=False, name="block2_sepconv1")(x)
    x = layers.BatchNormalization(axis=-1, name="block2_sepconv1_bn")(x)
    x = layers.Activation("relu", name="block2_sepconv2_act")(x)   # Keras's name for this ReLU
    x = layers.SeparableConv2D(128, (3, 3), padding="same", use_bias=False, name="block2_sepconv2")(x)
    x = layers.BatchNormalization(axis=-1, name="block2_sepconv2_bn")(x)
    x = _downsampling_end(x, block_input, 128, "block2_pool")
    for block, filters in ((3, 256), (4, 728)):
        block_input = x
        x = _sepconv_bn(x, filters, f"block{block}_sepconv1", relu_before=True)
        x = _sepconv_bn(x, filters, f"block{block}_sepconv2", relu_before=True)
        x = _downsampling_end(x, block_input, filters, f"block{block}_pool")

    # middle flow: eight identity-shortcut blocks
    for i in range(8):
        residual = x
        prefix = f"block{i + 5}"
        for k in (1, 2, 3):
            x = _sepconv_bn(x, 728, f"{prefix}_sepconv{k}", relu_before=True)
        x = layers.add([x, residual])

    # exit flow
    block_input = x
    x = _sepconv_bn(x, 728, "block13_sepconv1", relu_before=True)
    x = _sepconv_bn(x, 1024, "block13_sepconv2", relu_before=True)
    x = _downsampling_end(x, block_input, 1024, "block13_pool")
    x = _sepconv_bn(x, 1536, "block14_sepconv1", relu_before=False)
    x = layers.Activation("relu", name="block14_sepconv1_act")(x)
    x = _sepconv_bn(x, 2048, "block14_sepconv2", relu_before=False)
    x = layers.Activation("relu", name="block14_sepconv2_act")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)

    inputs = source_inputs(input_tensor) if input_tensor is not None else img_input
    model = Model(inputs, x, name=name)
    load_model_weights(model, weights, "xception", include_top)
    return model


def preprocess_input(x, data_format=None):
    """Keras's "tf" preprocessing: ``x / 127.5 - 1``."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


decode_predictions = imagenet_utils.decode_predictions
