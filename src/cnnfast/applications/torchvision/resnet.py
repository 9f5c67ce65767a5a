"""torchvision's ResNet-18/34/50 (``torchvision.models.resnet``), NHWC, layers named after its
``state_dict`` keys (``conv1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``, ...).

ResNet-50 is torchvision's "V1.5": the stride-2 of a bottleneck is in its 3x3 convolution.
"""
from __future__ import annotations

from ... import layers
from ._common import batch_norm, building, check_arguments, conv_bn, finish, head, model_input

__all__ = ["resnet18", "resnet34", "resnet50"]

_STAGE_WIDTHS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)


def _shortcut(x, in_channels, out_channels, strides, prefix):
    """The identity, or torchvision's ``downsample`` (1x1 conv with the block's stride + BN)."""
    if strides == 1 and in_channels == out_channels:
        return x
    x = layers.Conv2D(out_channels, 1, strides=strides, use_bias=False, name=f"{prefix}.downsample.0")(x)
    return batch_norm(x, f"{prefix}.downsample.1")


def _basic_block(x, in_channels, planes, strides, prefix):
    out = conv_bn(x, planes, 3, strides, f"{prefix}.conv1", f"{prefix}.bn1", "relu", f"{prefix}.relu1")
    out = conv_bn(out, planes, 3, 1, f"{prefix}.conv2", f"{prefix}.bn2")
    out = layers.Add(name=f"{prefix}.add")([out, _shortcut(x, in_channels, planes, strides, prefix)])
    return layers.ReLU(name=f"{prefix}.relu")(out), planes


def _bottleneck(x, in_channels, planes, strides, prefix):
    out_channels = planes * 4
    out = conv_bn(x, planes, 1, 1, f"{prefix}.conv1", f"{prefix}.bn1", "relu", f"{prefix}.relu1")
    out = conv_bn(out, planes, 3, strides, f"{prefix}.conv2", f"{prefix}.bn2", "relu", f"{prefix}.relu2")
    out = conv_bn(out, out_channels, 1, 1, f"{prefix}.conv3", f"{prefix}.bn3")
    out = layers.Add(name=f"{prefix}.add")([out, _shortcut(x, in_channels, out_channels, strides, prefix)])
    return layers.ReLU(name=f"{prefix}.relu")(out), out_channels


def _resnet(fn, block, blocks_per_stage, weights, input_tensor, input_shape, include_top, pooling,
            classes, classifier_activation):
    source = check_arguments(fn, weights, include_top, pooling, classes)
    with building(source):
        inputs = model_input(fn, input_shape, input_tensor)
        x = conv_bn(inputs, 64, 7, 2, "conv1", "bn1", "relu", "relu")
        x = layers.MaxPooling2D(3, strides=2, padding=((1, 1), (1, 1)), name="maxpool")(x)
        channels = 64
        for stage, (planes, count, stride) in enumerate(zip(_STAGE_WIDTHS, blocks_per_stage, _STAGE_STRIDES), 1):
            for i in range(count):
                x, channels = block(x, channels, planes, stride if i == 0 else 1, f"layer{stage}.{i}")
        outputs = head(x, include_top, pooling, classes, classifier_activation, "fc")
    return finish(fn, inputs, outputs, fn, source, include_top, ("fc.",))


def resnet18(weights=None, input_tensor=None, input_shape=None, include_top=True, pooling=None,
             classes=1000, classifier_activation=None):
    """ResNet-18 (11,689,512 parameters with the 1000-class head); see the package docstring."""
    return _resnet("resnet18", _basic_block, (2, 2, 2, 2), weights, input_tensor, input_shape,
                   include_top, pooling, classes, classifier_activation)


def resnet34(weights=None, input_tensor=None, input_shape=None, include_top=True, pooling=None,
             classes=1000, classifier_activation=None):
    """ResNet-34 (21,797,672 parameters with the 1000-class head); see the package docstring."""
    return _resnet("resnet34", _basic_block, (3, 4, 6, 3), weights, input_tensor, input_shape,
                   include_top, pooling, classes, classifier_activation)


def resnet50(weights=None, input_tensor=None, input_shape=None, include_top=True, pooling=None,
             classes=1000, classifier_activation=None):
    """ResNet-50 V1.5 (25,557,032 parameters with the 1000-class head); see the package docstring."""
    return _resnet("resnet50", _bottleneck, (3, 4, 6, 3), weights, input_tensor, input_shape,
                   include_top, pooling, classes, classifier_activation)
