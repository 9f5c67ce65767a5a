"""Pieces every torchvision architecture here shares: the input, conv + batch-norm blocks with
torch's padding and batch-norm settings, the classifier / pooling head, and building the model
(with weights loaded by layer name)."""
from __future__ import annotations

import contextlib

from ... import layers
from ...layers.base import KerasTensor, weight_budget
from ._weights import load_torchvision_weights, resolve_weights

# torch.nn.BatchNorm2d defaults: eps 1e-5, momentum 0.1 (torch's weight on the batch statistic,
# i.e. 1 - Keras's momentum; see cnnfast/saving/torch_import.py).
BN_EPSILON = 1e-5
BN_MOMENTUM = 1.0 - 0.1

_POOLINGS = (None, "avg", "max")


def torch_padding(kernel_size: int, dilation: int = 1):
    """torch's symmetric ``padding=(k - 1) // 2 * d`` as cnnfast's explicit padding (also for stride 2,
    where Keras's "same" would pad only the bottom/right)."""
    p = (kernel_size - 1) // 2 * dilation
    return "valid" if p == 0 else ((p, p), (p, p))


def batch_norm(x, name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def conv_bn(x, filters, kernel_size, strides, conv_name, bn_name, activation=None, act_name=None):
    """Conv2d(bias=False) -> BatchNorm2d [-> ReLU / ReLU6], torch's ``Conv2dNormActivation``."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=torch_padding(kernel_size),
                      use_bias=False, name=conv_name)(x)
    x = batch_norm(x, bn_name)
    return activate(x, activation, act_name)


def depthwise_bn(x, kernel_size, strides, conv_name, bn_name, activation=None, act_name=None):
    """Conv2d(groups=channels, bias=False) -> BatchNorm2d [-> activation]."""
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=torch_padding(kernel_size),
                               use_bias=False, name=conv_name)(x)
    x = batch_norm(x, bn_name)
    return activate(x, activation, act_name)


def activate(x, activation, name):
    if activation is None:
        return x
    if activation == "relu":
        return layers.ReLU(name=name)(x)
    if activation == "relu6":
        return layers.ReLU(max_value=6.0, name=name)(x)
    return layers.Activation(activation, name=name)(x)


def check_arguments(fn, weights, include_top, pooling, classes):
    if pooling not in _POOLINGS:
        raise ValueError(f"{fn}: pooling must be None, 'avg' or 'max', got {pooling!r}")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"{fn}: classes must be a positive int, got {classes!r}")
    if not isinstance(include_top, bool):
        raise TypeError(f"{fn}: include_top must be True or False, got {include_top!r}")
    source = resolve_weights(fn, weights)
    if source is not None and source[0] == "url" and include_top and classes != 1000:
        raise ValueError(f"{fn}: torchvision's ImageNet weights have 1000 classes; with include_top=True "
                         f"classes must be 1000 (got {classes}), or use include_top=False")
    return source


def model_input(fn, input_shape, input_tensor, min_size=32, channels_fixed=True):
    """The ``Input`` tensor (or the caller's ``input_tensor``) for an NHWC RGB image model."""
    if input_tensor is not None:
        if not isinstance(input_tensor, KerasTensor):
            raise TypeError(f"{fn}: input_tensor must be a tensor returned by cnnfast.layers.Input, got "
                            f"{type(input_tensor).__name__}")
        history = input_tensor._keras_history
        if history is None or not isinstance(history[0], layers.InputLayer):
            raise ValueError(f"{fn}: input_tensor must come straight from cnnfast.layers.Input (it becomes "
                             f"the model's input)")
        shape = tuple(input_tensor.shape[1:])
    else:
        shape = (None, None, 3) if input_shape is None else tuple(input_shape)
    if len(shape) != 3 or not all(s is None or (isinstance(s, int) and s > 0) for s in shape):
        raise ValueError(f"{fn}: input_shape must be (height, width, 3) with positive or None sizes, "
                         f"got {shape!r}")
    if channels_fixed and shape[2] != 3:
        raise ValueError(f"{fn}: the input must have 3 (RGB) channels, got input shape {shape!r}")
    if any(s is not None and s < min_size for s in shape[:2]):
        raise ValueError(f"{fn}: input height and width must be at least {min_size}, got {shape!r}")
    if input_tensor is not None:
        return input_tensor
    return layers.Input(shape=shape)


def head(x, include_top, pooling, classes, classifier_activation, fc_name, dropout=None):
    """torchvision's ``avgpool -> flatten -> [Dropout ->] Linear`` classifier, or Keras's
    ``pooling`` choice for a headless model."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
        if dropout is not None:
            rate, name = dropout
            x = layers.Dropout(rate, name=name)(x)
        return layers.Dense(classes, activation=classifier_activation, name=fc_name)(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avgpool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="maxpool_global")(x)
    return x


@contextlib.contextmanager
def building(source):
    """Weights created inside are zeros when a weight file will overwrite them (VGG16 has 138 M;
    random initialisation would only be thrown away)."""
    if source is None:
        yield
    else:
        with weight_budget(1 << 62, "torchvision weights"):
            yield


def finish(fn, inputs, outputs, name, source, include_top, head_prefixes):
    from ...models import Model
    model = Model(inputs, outputs, name=name)
    if source is not None:
        load_torchvision_weights(fn, model, source, None if include_top else head_prefixes)
    return model
