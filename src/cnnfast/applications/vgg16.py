"""VGG16 as Keras 3 builds it (``keras.applications.VGG16``): the same layers, names and arguments.

Inputs are BGR images minus the ImageNet mean (:func:`preprocess_input`, Keras's "caffe" mode).
"""
from __future__ import annotations

from .. import layers
from ..models.functional import Model
from . import imagenet_utils
from ._keras_weights import check_weights_argument, load_model_weights
from ._model_inputs import check_top_arguments, image_input, source_inputs

__all__ = ["VGG16", "preprocess_input", "decode_predictions"]

# (filters, convolutions) of the five blocks
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name="vgg16"):
    """VGG16 (Keras 3's architecture; 138,357,544 parameters with the top).

    Arguments as :func:`cnnfast.applications.ResNet50` (default input (224, 224, 3), at least
    32x32); the top is Flatten, ``fc1`` and ``fc2`` (4096 units, ReLU) and ``predictions``.
    """
    caller = "VGG16"
    check_weights_argument(weights, caller)
    check_top_arguments(caller, weights, include_top, classes, pooling)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last",
                                                    require_flatten=include_top, weights=weights)
    img_input = image_input(caller, input_tensor, input_shape)

    x = img_input
    for b, (filters, convs) in enumerate(_BLOCKS, start=1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same",
                              name=f"block{b}_conv{c}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{b}_pool")(x)

    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)

    inputs = source_inputs(input_tensor) if input_tensor is not None else img_input
    model = Model(inputs, x, name=name)
    load_model_weights(model, weights, "vgg16", include_top)
    return model


def preprocess_input(x, data_format=None):
    """Keras's "caffe" preprocessing: RGB -> BGR, then minus the ImageNet mean per channel."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


decode_predictions = imagenet_utils.decode_predictions
