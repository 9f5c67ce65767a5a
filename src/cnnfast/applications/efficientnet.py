"""EfficientNetB0 as Keras 3 builds it (``keras.applications.EfficientNetB0``): MBConv blocks with
squeeze-and-excitation and swish, stochastic depth on the residual branches, and the input
preprocessing inside the model (``Rescaling(1/255)``, ``Normalization``, and with ImageNet weights
a per-channel ``Rescaling`` by ``1/sqrt(stddev)``, exactly as Keras does it).

The model takes RGB pixels in [0, 255]; :func:`preprocess_input` returns its input unchanged.
"""
from __future__ import annotations

import math

from .. import layers
from ..models.functional import Model
from . import imagenet_utils
from ._keras_weights import check_weights_argument, load_model_weights
from ._model_inputs import check_top_arguments, image_input, source_inputs

__all__ = ["EfficientNetB0", "preprocess_input", "decode_predictions"]

CONV_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                           "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                            "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)

# kernel_size, repeats, filters_in, filters_out, expand_ratio, id_skip, strides, se_ratio
DEFAULT_BLOCKS_ARGS = (
    dict(kernel_size=3, repeats=1, filters_in=32, filters_out=16, expand_ratio=1, id_skip=True, strides=1, se_ratio=0.25),
    dict(kernel_size=3, repeats=2, filters_in=16, filters_out=24, expand_ratio=6, id_skip=True, strides=2, se_ratio=0.25),
    dict(kernel_size=5, repeats=2, filters_in=24, filters_out=40, expand_ratio=6, id_skip=True, strides=2, se_ratio=0.25),
    dict(kernel_size=3, repeats=3, filters_in=40, filters_out=80, expand_ratio=6, id_skip=True, strides=2, se_ratio=0.25),
    dict(kernel_size=5, repeats=3, filters_in=80, filters_out=112, expand_ratio=6, id_skip=True, strides=1, se_ratio=0.25),
    dict(kernel_size=5, repeats=4, filters_in=112, filters_out=192, expand_ratio=6, id_skip=True, strides=2, se_ratio=0.25),
    dict(kernel_size=3, repeats=1, filters_in=192, filters_out=320, expand_ratio=6, id_skip=True, strides=1, se_ratio=0.25),
)


def _block(inputs, activation, drop_rate, name, filters_in, filters_out, kernel_size, strides,
           expand_ratio, se_ratio, id_skip):
    """Keras's MBConv ``block``: expand (1x1), depthwise, squeeze-and-excitation, project (1x1)."""
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False,
                          kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}expand_conv")(inputs)
        x = layers.BatchNormalization(axis=3, name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    else:
        x = inputs
    if strides == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"{name}dwconv_pad")(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=conv_pad, use_bias=False,
                               depthwise_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        filters_se = max(1, int(filters_in * se_ratio))
        se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
        se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
        se = layers.Conv2D(filters_se, 1, padding="same", activation=activation,
                           kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_reduce")(se)
        se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid",
                           kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_expand")(se)
        x = layers.multiply([x, se], name=f"{name}se_excite")
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}project_conv")(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def _efficientnet(caller, width_coefficient, depth_coefficient, default_size, dropout_rate,
                  drop_connect_rate, depth_divisor, activation, name, include_top, weights,
                  input_tensor, input_shape, pooling, classes, classifier_activation, weights_name):
    check_weights_argument(weights, caller)
    check_top_arguments(caller, weights, include_top, classes, pooling)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=default_size,
                                                    min_size=32, data_format="channels_last",
                                                    require_flatten=include_top, weights=weights)
    img_input = image_input(caller, input_tensor, input_shape)

    def round_filters(filters, divisor=depth_divisor):
        filters *= width_coefficient
        new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        if new_filters < 0.9 * filters:
            new_filters += divisor
        return int(new_filters)

    def round_repeats(repeats):
        return int(math.ceil(depth_coefficient * repeats))

    x = layers.Rescaling(1.0 / 255.0)(img_input)
    x = layers.Normalization(axis=3)(x)
    if weights == "imagenet":
        # Keras's ImageNet weights were trained with this (not 1/stddev): kept for fidelity
        x = layers.Rescaling([1.0 / math.sqrt(stddev) for stddev in IMAGENET_STDDEV_RGB])(x)
    x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(round_filters(32), 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name="stem_conv")(x)
    x = layers.BatchNormalization(axis=3, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = [dict(a) for a in DEFAULT_BLOCKS_ARGS]
    b = 0
    blocks = float(sum(round_repeats(a["repeats"]) for a in blocks_args))
    for i, args in enumerate(blocks_args):
        args["filters_in"] = round_filters(args["filters_in"])
        args["filters_out"] = round_filters(args["filters_out"])
        for j in range(round_repeats(args.pop("repeats"))):
            if j > 0:   # only the first block of a stage changes the stride and the width
                args["strides"] = 1
                args["filters_in"] = args["filters_out"]
            x = _block(x, activation, drop_connect_rate * b / blocks, name=f"block{i + 1}{chr(j + 97)}_",
                       **args)
            b += 1

    x = layers.Conv2D(round_filters(1280), 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name="top_conv")(x)
    x = layers.BatchNormalization(axis=3, name="top_bn")(x)
    x = layers.Activation(activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation,
                         kernel_initializer=DENSE_KERNEL_INITIALIZER, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)

    inputs = source_inputs(input_tensor) if input_tensor is not None else img_input
    model = Model(inputs, x, name=name)
    load_model_weights(model, weights, weights_name, include_top)
    return model


def EfficientNetB0(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax", name="efficientnetb0"):
    """EfficientNetB0 (Keras 3's architecture; 5,330,571 parameters with the top, 7 of them the
    ``normalization`` layer's mean, variance and count).

    Takes RGB pixels in [0, 255] (the rescaling is inside the model). Default input
    (224, 224, 3), at least 32x32; other arguments as :func:`cnnfast.applications.ResNet50`.
    """
    return _efficientnet("EfficientNetB0", 1.0, 1.0, 224, 0.2, 0.2, 8, "swish", name, include_top,
                         weights, input_tensor, input_shape, pooling, classes, classifier_activation,
                         "efficientnetb0")


def preprocess_input(x, data_format=None):
    """The identity, as in Keras: EfficientNet rescales its input itself."""
    imagenet_utils._check_data_format(data_format, "preprocess_input")
    return x


decode_predictions = imagenet_utils.decode_predictions
