"""MobileNetV2 as Keras 3 builds it (``keras.applications.MobileNetV2``): inverted residual
blocks with ReLU6, the same layer names (``block_{i}_expand``, ``expanded_conv_depthwise``...)
and the width multiplier ``alpha``.

Inputs are scaled to [-1, 1] (:func:`preprocess_input`, Keras's "tf" mode).
"""
from __future__ import annotations

import warnings

from .. import layers
from ..models.functional import Model
from . import imagenet_utils
from ._keras_weights import (MOBILENET_V2_ALPHAS, MOBILENET_V2_SIZES, check_weights_argument,
                             load_model_weights)
from ._model_inputs import check_top_arguments, image_input, source_inputs

__all__ = ["MobileNetV2", "preprocess_input", "decode_predictions"]

# (filters, stride, expansion) of blocks 0..16
_BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6),
           (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6),
           (160, 1, 6), (160, 1, 6), (320, 1, 6))


def _make_divisible(v, divisor, min_value=None):
    """``v`` rounded to a multiple of ``divisor``, never more than 10% below ``v`` (Keras's rule)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _bn(name):
    return layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=name)


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    in_channels = inputs.shape[-1]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same", use_bias=False,
                          activation=None, name=f"{prefix}expand")(x)
        x = _bn(f"{prefix}expand_BN")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None, use_bias=False,
                               padding="same" if stride == 1 else "valid", name=f"{prefix}depthwise")(x)
    x = _bn(f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, kernel_size=1, padding="same", use_bias=False, activation=None,
                      name=f"{prefix}project")(x)
    x = _bn(f"{prefix}project_BN")(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _default_size(input_shape, input_tensor):
    """Keras's choice of the size the ImageNet weights are picked for: a square input of a
    published size keeps its size, anything else uses 224."""
    shape = input_shape if input_shape is not None else (
        tuple(input_tensor.shape[1:]) if input_tensor is not None else None)
    if shape is None or len(shape) < 2:
        return 224
    rows, cols = shape[0], shape[1]
    return rows if rows == cols and rows in MOBILENET_V2_SIZES else 224


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet", input_tensor=None,
                pooling=None, classes=1000, classifier_activation="softmax", name=None):
    """MobileNetV2 (Keras 3's architecture; 3,538,984 parameters at ``alpha=1.0`` with the top).

    Args:
        input_shape: ``(height, width, 3)``, at least 32x32; default (224, 224, 3), or the
            input tensor's size when it is square and one of 96, 128, 160, 192, 224.
        alpha: width multiplier: the filters of every layer are scaled by it (ImageNet weights
            exist for 0.35, 0.5, 0.75, 1.0, 1.3 and 1.4).
        name: default ``f"mobilenetv2_{alpha:0.2f}_{rows}"`` as in Keras.
        Others as :func:`cnnfast.applications.ResNet50`.
    """
    caller = "MobileNetV2"
    check_weights_argument(weights, caller)
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f'{caller}: If using `weights="imagenet"` with `include_top` as true, '
                         f"`classes` should be 1000. Received `classes={classes}`")
    check_top_arguments(caller, weights, include_top, classes, pooling)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ValueError(f"{caller}: alpha must be a positive number, got {alpha!r}")
    if input_shape is not None and input_tensor is not None and len(input_shape) > 1 and \
            getattr(input_tensor, "shape", (None,) * 4)[2] != input_shape[1]:
        raise ValueError(f"{caller}: input_tensor.shape[2] must equal input_shape[1]; Received "
                         f"`input_tensor.shape={input_tensor.shape}`, `input_shape={input_shape}`")
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=_default_size(input_shape, input_tensor), min_size=32,
        data_format="channels_last", require_flatten=include_top, weights=weights)
    rows, cols = input_shape[0], input_shape[1]
    if weights == "imagenet":
        if alpha not in MOBILENET_V2_ALPHAS:
            raise ValueError("If imagenet weights are being loaded, alpha must be one of `0.35`, "
                             f"`0.50`, `0.75`, `1.0`, `1.3` or `1.4` only; Received `alpha={alpha}`")
        if rows != cols or rows not in MOBILENET_V2_SIZES:
            rows = 224
            warnings.warn("`input_shape` is undefined or non-square, or `rows` is not in "
                          "[96, 128, 160, 192, 224]. Weights for input shape (224, 224) will be "
                          "loaded as the default.", stacklevel=2)
    img_input = image_input(caller, input_tensor, input_shape)

    x = layers.Conv2D(_make_divisible(32 * alpha, 8), kernel_size=3, strides=(2, 2), padding="same",
                      use_bias=False, name="Conv1")(img_input)
    x = _bn("bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride, expansion=expansion,
                                block_id=block_id)
    last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_block_filters, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = _bn("Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D()(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)

    inputs = source_inputs(input_tensor) if input_tensor is not None else img_input
    if name is None:
        name = f"mobilenetv2_{alpha:0.2f}_{rows}"
    model = Model(inputs, x, name=name)
    load_model_weights(model, weights, "mobilenet_v2", include_top, alpha=alpha, rows=rows)
    return model


def preprocess_input(x, data_format=None):
    """Keras's "tf" preprocessing: ``x / 127.5 - 1``."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


decode_predictions = imagenet_utils.decode_predictions
