"""How padding, strides and pooling change a CNN's shapes and parameter count, read off summary().

Six variants of one small network on 28x28x1 images: a 3x3 Conv2D with 32 filters, optionally a
2x2 pooling layer, then Flatten and Dense(10). The convolution has 320 parameters in every
variant (3*3*1*32 weights + 32 biases: padding and strides do not change the kernel), but the
feature map it produces, and so the Dense layer after Flatten, differ a lot:

    output size, 'valid':  floor((n - k) / s) + 1      'same':  ceil(n / s)

    python examples/padding_strides_pooling.py            # summaries, then a comparison table
"""
from __future__ import annotations

import sys

import numpy as np

from cnnfast import layers, models

VARIANTS = [  # (title, model name, the layers before Flatten)
    ("valid, stride 1", "valid_s1", [layers.Conv2D(32, 3)]),
    ("same, stride 1", "same_s1", [layers.Conv2D(32, 3, padding="same")]),
    ("valid, stride 2", "valid_s2", [layers.Conv2D(32, 3, strides=2)]),
    ("same, stride 2", "same_s2", [layers.Conv2D(32, 3, strides=2, padding="same")]),
    ("valid + MaxPooling2D(2)", "valid_maxpool", [layers.Conv2D(32, 3), layers.MaxPooling2D(2)]),
    ("valid + AveragePooling2D(2)", "valid_avgpool", [layers.Conv2D(32, 3), layers.AveragePooling2D(2)]),
]


def build(feature_layers, name):
    return models.Sequential([layers.Input(shape=(28, 28, 1)), *feature_layers,
                              layers.Flatten(), layers.Dense(10, activation="softmax")], name=name)


def main() -> int:
    rows = []
    probe = np.zeros((1, 28, 28, 1), np.float32)
    for title, name, feature_layers in VARIANTS:
        model = build(feature_layers, name)
        print(f"\n=== {title}")
        model.summary()
        # the feature map shape, measured on a real forward pass through the layers before Flatten
        features = models.Sequential([layers.Input(shape=(28, 28, 1)), *model.layers[: len(feature_layers)]])
        fmap = features.predict(probe, verbose=0).shape[1:]
        dense_params = model.layers[-1].count_params()
        rows.append((title, fmap, int(np.prod(fmap)), dense_params, model.count_params()))

    print(f"\n{'variant':<30} {'feature map':>14} {'flattened':>10} {'Dense params':>13} {'total':>9}")
    for title, fmap, flat, dense, total in rows:
        print(f"{title:<30} {str(fmap):>14} {flat:>10,} {dense:>13,} {total:>9,}")
    print("\n'same' keeps 28x28; stride 2 or a 2x2 pooling divides each side by about 2 and the Dense "
          "layer's parameters by about 4; pooling adds no parameters.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
