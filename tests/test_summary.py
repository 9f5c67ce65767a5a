"""model.summary(): Keras 3's table (golden text), parameter counts and sizes."""
import numpy as np
import pytest

from cnnfast import layers, models

# Keras 3's layout (utils/summary_utils.py rendered by rich at 88 columns) for the keras.io MNIST
# convnet; its totals are the figures Keras prints for this model (225,034 params, 879.04 KB).
MNIST_CONVNET = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                      │ (None, 26, 26, 32)          │             320 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ max_pooling2d (MaxPooling2D)         │ (None, 13, 13, 32)          │               0 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ conv2d_1 (Conv2D)                    │ (None, 11, 11, 64)          │          18,496 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ max_pooling2d_1 (MaxPooling2D)       │ (None, 5, 5, 64)            │               0 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ flatten (Flatten)                    │ (None, 1600)                │               0 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense (Dense)                        │ (None, 128)                 │         204,928 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_1 (Dense)                      │ (None, 10)                  │           1,290 │
└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘
 Total params: 225,034 (879.04 KB)
 Trainable params: 225,034 (879.04 KB)
 Non-trainable params: 0 (0.00 B)
"""

FUNCTIONAL = """\
Model: "functional"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                  ┃ Output Shape              ┃         Param # ┃ Connected to               ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ input_layer (InputLayer)      │ (None, 28, 28, 1)         │               0 │ -                          │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ conv2d (Conv2D)               │ (None, 28, 28, 32)        │             320 │ input_layer[0][0]          │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ conv2d_1 (Conv2D)             │ (None, 28, 28, 32)        │           9,248 │ conv2d[0][0]               │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ add (Add)                     │ (None, 28, 28, 32)        │               0 │ conv2d[0][0],              │
│                               │                           │                 │ conv2d_1[0][0]             │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ batch_normalization           │ (None, 28, 28, 32)        │             128 │ add[0][0]                  │
│ (BatchNormalization)          │                           │                 │                            │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ global_average_pooling2d      │ (None, 32)                │               0 │ batch_normalization[0][0]  │
│ (GlobalAveragePooling2D)      │                           │                 │                            │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ dense (Dense)                 │ (None, 10)                │             330 │ global_average_pooling2d[… │
└───────────────────────────────┴───────────────────────────┴─────────────────┴────────────────────────────┘
 Total params: 10,026 (39.16 KB)
 Trainable params: 9,962 (38.91 KB)
 Non-trainable params: 64 (256.00 B)
"""

UNBUILT = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
│ dense (Dense)                        │ ?                           │     0 (unbuilt) │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_1 (Dense)                      │ ?                           │     0 (unbuilt) │
└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘
 Total params: 0 (0.00 B)
 Trainable params: 0 (0.00 B)
 Non-trainable params: 0 (0.00 B)
"""


def mnist_convnet():
    return models.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu", name="conv2d"),
        layers.MaxPooling2D(name="max_pooling2d"),
        layers.Conv2D(64, 3, activation="relu", name="conv2d_1"),
        layers.MaxPooling2D(name="max_pooling2d_1"),
        layers.Flatten(name="flatten"),
        layers.Dense(128, activation="relu", name="dense"),
        layers.Dense(10, activation="softmax", name="dense_1"),
    ], name="sequential")


def test_sequential_summary_golden(capsys):
    model = mnist_convnet()
    model.summary()
    assert capsys.readouterr().out == MNIST_CONVNET
    assert model.count_params() == 225_034


def test_summary_adds_optimizer_params_once_trained(capsys):
    model = mnist_convnet()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.summary()
    assert "Optimizer params" not in capsys.readouterr().out
    model.train_on_batch(np.zeros((2, 28, 28, 1)), np.zeros(2))
    model.summary()
    tail = capsys.readouterr().out.splitlines()[-4:]
    assert tail == [" Total params: 675,104 (2.58 MB)", " Trainable params: 225,034 (879.04 KB)",
                    " Non-trainable params: 0 (0.00 B)", " Optimizer params: 450,070 (1.72 MB)"]


def test_functional_summary_golden_with_connections():
    inputs = layers.Input((28, 28, 1), name="input_layer")
    a = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2d")(inputs)
    b = layers.Conv2D(32, 3, padding="same", name="conv2d_1")(a)
    c = layers.Add(name="add")([a, b])
    d = layers.BatchNormalization(name="batch_normalization")(c)
    e = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(d)
    out = layers.Dense(10, activation="softmax", name="dense")(e)
    model = models.Model(inputs, out, name="functional")
    lines = []
    model.summary(print_fn=lines.append)
    assert lines == [FUNCTIONAL]


def test_unbuilt_sequential_summary():
    model = models.Sequential([layers.Dense(4, name="dense"), layers.Dense(2, name="dense_1")], name="sequential")
    text = []
    model.summary(print_fn=text.append)
    assert text == [UNBUILT]
    with pytest.raises(ValueError, match="isn't built"):
        model.count_params()


def test_summary_options():
    model = mnist_convnet()
    text = []
    model.summary(print_fn=text.append, line_length=100, show_trainable=True, layer_range=["conv2d_1", "flatten"])
    lines = text[0].splitlines()
    assert {len(l) for l in lines[1:-3]} == {100}
    assert "┃ Traina… ┃" in lines[2] and "conv2d (Conv2D)" not in text[0] and "flatten (Flatten)" in text[0]
    assert sum(" Y " in l for l in lines) == 1 and sum(" - " in l for l in lines) == 2
    model.layers[0].trainable = False
    text = []
    model.summary(print_fn=text.append)
    assert " Trainable params: 224,714 (877.79 KB)" in text[0]
    assert " Non-trainable params: 320 (1.25 KB)" in text[0]
    with pytest.raises(ValueError, match="do not match the layer names"):
        model.summary(layer_range=["nope", "flatten"])
