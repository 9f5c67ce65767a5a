"""torchvision's VGG-16 (``torchvision.models.vgg``, configuration "D", no batch norm), NHWC,
layers named after its ``state_dict`` keys (``features.0``, ..., ``classifier.0/3/6``).

torchvision's classifier reads ``AdaptiveAvgPool2d((7, 7))`` of the last feature map, flattened in
C, H, W order. Here the map is NHWC and flattened H, W, C; loading torch weights reorders the rows
of ``classifier.0`` accordingly (cnnfast/saving/torch_import.py). The adaptive pool is exact, with
fixed layers, when each side of the feature map (input size // 32) is 1 (each cell repeated 7
times, as adaptive pooling of one cell does: UpSampling2D) or a multiple of 7 (average pooling over
side // 7 cells; none at 224x224); so ``include_top=True`` accepts inputs of 32-63, 224-255,
448-479, ... pixels per side and refuses other sizes with a clear error.
"""
from __future__ import annotations

from ... import layers
from ._common import building, check_arguments, finish, model_input, torch_padding

__all__ = ["vgg16"]

_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_POOLED_SIDE = 7  # torchvision's AdaptiveAvgPool2d((7, 7))


def _adaptive_pool_7x7(fn, x):
    """``AdaptiveAvgPool2d((7, 7))`` for the feature-map sizes where it is a fixed layer."""
    h, w = x.shape[1:3]
    if h is None or w is None or not all(n == 1 or n % _POOLED_SIDE == 0 for n in (h, w)):
        raise ValueError(
            f"{fn}: include_top=True needs each side of the last feature map (input size // 32) to be 1 or a "
            f"multiple of 7, i.e. a fixed input of 32-63, 224-255, 448-479, ... pixels per side; the feature "
            f"map here is {h}x{w}. Give such an input_shape, or use include_top=False with pooling")
    repeat = tuple(_POOLED_SIDE if n == 1 else 1 for n in (h, w))
    if repeat != (1, 1):
        x = layers.UpSampling2D(size=repeat, name="avgpool.repeat")(x)
    pool = tuple(1 if n == 1 else n // _POOLED_SIDE for n in (h, w))
    if pool != (1, 1):
        x = layers.AveragePooling2D(pool_size=pool, name="avgpool")(x)
    return x


def vgg16(weights=None, input_tensor=None, input_shape=None, include_top=True, pooling=None,
          classes=1000, classifier_activation=None):
    """VGG-16 (138,357,544 parameters with the 1000-class head); see the module docstring for the
    input sizes ``include_top=True`` accepts (default input: 224x224x3 with the head)."""
    fn = "vgg16"
    source = check_arguments(fn, weights, include_top, pooling, classes)
    if input_shape is None and input_tensor is None and include_top:
        input_shape = (224, 224, 3)
    with building(source):
        inputs = model_input(fn, input_shape, input_tensor)
        x, index = inputs, 0
        for item in _VGG16_LAYOUT:
            if item == "M":
                x = layers.MaxPooling2D(2, strides=2, name=f"features.{index}")(x)
                index += 1
            else:  # Conv2d + ReLU (two torch modules; the ReLU is fused into the convolution here)
                x = layers.Conv2D(item, 3, padding=torch_padding(3), activation="relu",
                                  name=f"features.{index}")(x)
                index += 2
        if include_top:
            x = _adaptive_pool_7x7(fn, x)
            x = layers.Flatten(name="flatten")(x)
            x = layers.Dense(4096, activation="relu", name="classifier.0")(x)
            x = layers.Dropout(0.5, name="classifier.2")(x)
            x = layers.Dense(4096, activation="relu", name="classifier.3")(x)
            x = layers.Dropout(0.5, name="classifier.5")(x)
            outputs = layers.Dense(classes, activation=classifier_activation, name="classifier.6")(x)
        elif pooling == "avg":
            outputs = layers.GlobalAveragePooling2D(name="avgpool")(x)
        elif pooling == "max":
            outputs = layers.GlobalMaxPooling2D(name="maxpool_global")(x)
        else:
            outputs = x
    return finish(fn, inputs, outputs, fn, source, include_top, ("classifier.",))
