"""ResNet50 as Keras 3 builds it (``keras.applications.ResNet50``): the same layers, layer names
and arguments, so Keras's weights load by name or by position.

Inputs are BGR images minus the ImageNet mean (:func:`preprocess_input`, Keras's "caffe" mode).
"""
from __future__ import annotations

from .. import layers
from ..models.functional import Model
from . import imagenet_utils
from ._keras_weights import check_weights_argument, load_model_weights
from ._model_inputs import check_top_arguments, image_input, source_inputs

__all__ = ["ResNet50", "preprocess_input", "decode_predictions"]

_BN_EPSILON = 1.001e-5


def _residual_block(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    """Keras's ``residual_block_v1``: 1x1 -> kxk -> 1x1 (4 * filters), plus the shortcut.

    The layers are called in the order Keras's functional model lists them (by depth from the
    output, the shortcut first among equals), which is the order Keras's HDF5 weight files store
    them in: the shortcut's convolution after the main branch's second ReLU."""
    bn = dict(axis=3, epsilon=_BN_EPSILON)
    y = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    y = layers.BatchNormalization(**bn, name=f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_2_conv")(y)
    y = layers.BatchNormalization(**bn, name=f"{name}_2_bn")(y)
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        y = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(y)
        shortcut = layers.BatchNormalization(**bn, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
        y = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(y)
    y = layers.BatchNormalization(**bn, name=f"{name}_3_bn")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _stack(x, filters, blocks, stride1=2, name=None):
    x = _residual_block(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = _residual_block(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="resnet50"):
    """ResNet50 (Keras 3's architecture; 25,636,712 parameters with the top).

    Args:
        include_top: end with global average pooling and the ``predictions`` Dense layer.
        weights: None (random initialisation), ``"imagenet"`` (Keras's published weights,
            downloaded once) or the path of a weights file to load.
        input_tensor: a symbolic tensor to use as the image input.
        input_shape: ``(height, width, 3)``; default (224, 224, 3), at least 32x32; exactly
            (224, 224, 3) with ``include_top`` and ImageNet weights.
        pooling: without the top, None (4-D feature map), ``"avg"`` or ``"max"`` (global pooling).
        classes: classifier size (1000 with ImageNet weights).
        classifier_activation: the classifier's activation (None or "softmax" with pretrained
            weights).
        name: the model's name.
    """
    caller = "ResNet50"
    check_weights_argument(weights, caller)
    check_top_arguments(caller, weights, include_top, classes, pooling)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last",
                                                    require_flatten=include_top, weights=weights)
    img_input = image_input(caller, input_tensor, input_shape)

    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=True, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    x = _stack(x, 64, 3, stride1=1, name="conv2")
    x = _stack(x, 128, 4, name="conv3")
    x = _stack(x, 256, 6, name="conv4")
    x = _stack(x, 512, 3, name="conv5")

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    inputs = source_inputs(input_tensor) if input_tensor is not None else img_input
    model = Model(inputs, x, name=name)
    load_model_weights(model, weights, "resnet50", include_top)
    return model


def preprocess_input(x, data_format=None):
    """Keras's "caffe" preprocessing: RGB -> BGR, then minus the ImageNet mean per channel."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


decode_predictions = imagenet_utils.decode_predictions
