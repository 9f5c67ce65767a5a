"""torchvision's EfficientNet-B0 (``torchvision.models.efficientnet``), NHWC, layers named after its
``state_dict`` keys (``features.0.0``, ``features.2.0.block.2.fc1``, ``classifier.1``, ...).

An MBConv block is [1x1 expand + BN + SiLU] -> kxk depthwise + BN + SiLU -> squeeze-and-excitation
(global mean, 1x1 conv + SiLU, 1x1 conv + sigmoid, times the input: a broadcasting Multiply) ->
1x1 project + BN, plus the input when the shapes agree. torchvision's stochastic depth (each
sample's residual branch dropped with a probability growing from 0 to 0.2 over the blocks, the
survivors scaled by 1 / (1 - p)) is Keras's ``Dropout(p, noise_shape=(None, 1, 1, 1))``; like it,
it acts only in training.
"""
from __future__ import annotations

from ... import layers
from ._common import building, check_arguments, conv_bn, depthwise_bn, finish, head, model_input

__all__ = ["efficientnet_b0"]

# (expand ratio, kernel, first stride, input channels, output channels, blocks), torchvision's table
_B0_SETTING = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
               (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
_STEM_CHANNELS, _LAST_CHANNELS = 32, 1280
_STOCHASTIC_DEPTH, _DROPOUT = 0.2, 0.2


def _squeeze_excitation(x, channels, squeeze_channels, prefix):
    scale = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}.avgpool")(x)
    scale = layers.Conv2D(squeeze_channels, 1, activation="silu", name=f"{prefix}.fc1")(scale)
    scale = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{prefix}.fc2")(scale)
    return layers.Multiply(name=f"{prefix}.scale")([x, scale])   # (N, 1, 1, C) x (N, H, W, C)


def _mbconv(x, expand_ratio, kernel_size, strides, in_channels, out_channels, drop_rate, prefix):
    expanded = in_channels * expand_ratio
    out, i = x, 0
    if expanded != in_channels:
        out = conv_bn(out, expanded, 1, 1, f"{prefix}.block.0.0", f"{prefix}.block.0.1", "silu",
                      f"{prefix}.block.0.2")
        i = 1
    out = depthwise_bn(out, kernel_size, strides, f"{prefix}.block.{i}.0", f"{prefix}.block.{i}.1", "silu",
                       f"{prefix}.block.{i}.2")
    out = _squeeze_excitation(out, expanded, max(1, in_channels // 4), f"{prefix}.block.{i + 1}")
    out = conv_bn(out, out_channels, 1, 1, f"{prefix}.block.{i + 2}.0", f"{prefix}.block.{i + 2}.1")
    if strides == 1 and in_channels == out_channels:
        if drop_rate > 0:
            out = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{prefix}.stochastic_depth")(out)
        out = layers.Add(name=f"{prefix}.add")([out, x])
    return out


def efficientnet_b0(weights=None, input_tensor=None, input_shape=None, include_top=True, pooling=None,
                    classes=1000, classifier_activation=None):
    """EfficientNet-B0 (5,288,548 parameters with the 1000-class head); see the package docstring."""
    fn = "efficientnet_b0"
    source = check_arguments(fn, weights, include_top, pooling, classes)
    with building(source):
        inputs = model_input(fn, input_shape, input_tensor)
        x = conv_bn(inputs, _STEM_CHANNELS, 3, 2, "features.0.0", "features.0.1", "silu", "features.0.2")
        total_blocks = sum(setting[-1] for setting in _B0_SETTING)
        block_id = 0
        for stage, (t, k, s, c_in, c_out, n) in enumerate(_B0_SETTING, 1):
            for j in range(n):
                drop = _STOCHASTIC_DEPTH * block_id / total_blocks
                x = _mbconv(x, t, k, s if j == 0 else 1, c_in if j == 0 else c_out, c_out, drop,
                            f"features.{stage}.{j}")
                block_id += 1
        last = len(_B0_SETTING) + 1
        x = conv_bn(x, _LAST_CHANNELS, 1, 1, f"features.{last}.0", f"features.{last}.1", "silu",
                    f"features.{last}.2")
        outputs = head(x, include_top, pooling, classes, classifier_activation, "classifier.1",
                       dropout=(_DROPOUT, "classifier.0"))
    return finish(fn, inputs, outputs, fn, source, include_top, ("classifier.",))
