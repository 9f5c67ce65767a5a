"""torchvision's MobileNetV2 (``torchvision.models.mobilenetv2``, width 1.0), NHWC, layers named
after its ``state_dict`` keys (``features.0.0``, ``features.2.conv.1.0``, ``classifier.1``, ...).
"""
from __future__ import annotations

from ... import layers
from ._common import batch_norm, building, check_arguments, conv_bn, depthwise_bn, finish, head, model_input

__all__ = ["mobilenet_v2"]

# (expand ratio t, output channels c, repeats n, first stride s), torchvision's table.
_INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_FIRST_CHANNELS, _LAST_CHANNELS = 32, 1280


def _inverted_residual(x, in_channels, out_channels, strides, expand_ratio, prefix):
    """[1x1 expand + BN + ReLU6] -> 3x3 depthwise + BN + ReLU6 -> 1x1 project + BN [+ input]."""
    hidden = int(round(in_channels * expand_ratio))
    out, i = x, 0
    if expand_ratio != 1:
        out = conv_bn(out, hidden, 1, 1, f"{prefix}.conv.0.0", f"{prefix}.conv.0.1", "relu6",
                      f"{prefix}.conv.0.2")
        i = 1
    out = depthwise_bn(out, 3, strides, f"{prefix}.conv.{i}.0", f"{prefix}.conv.{i}.1", "relu6",
                       f"{prefix}.conv.{i}.2")
    out = layers.Conv2D(out_channels, 1, use_bias=False, name=f"{prefix}.conv.{i + 1}")(out)
    out = batch_norm(out, f"{prefix}.conv.{i + 2}")
    if strides == 1 and in_channels == out_channels:
        out = layers.Add(name=f"{prefix}.add")([x, out])
    return out


def mobilenet_v2(weights=None, input_tensor=None, input_shape=None, include_top=True, pooling=None,
                 classes=1000, classifier_activation=None):
    """MobileNetV2 (3,504,872 parameters with the 1000-class head); see the package docstring."""
    fn = "mobilenet_v2"
    source = check_arguments(fn, weights, include_top, pooling, classes)
    with building(source):
        inputs = model_input(fn, input_shape, input_tensor)
        x = conv_bn(inputs, _FIRST_CHANNELS, 3, 2, "features.0.0", "features.0.1", "relu6", "features.0.2")
        channels, index = _FIRST_CHANNELS, 1
        for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                x = _inverted_residual(x, channels, c, s if i == 0 else 1, t, f"features.{index}")
                channels, index = c, index + 1
        x = conv_bn(x, _LAST_CHANNELS, 1, 1, f"features.{index}.0", f"features.{index}.1", "relu6",
                    f"features.{index}.2")
        outputs = head(x, include_top, pooling, classes, classifier_activation, "classifier.1",
                       dropout=(0.2, "classifier.0"))
    return finish(fn, inputs, outputs, fn, source, include_top, ("classifier.",))
