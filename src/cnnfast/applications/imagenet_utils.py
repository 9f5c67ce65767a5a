"""What Keras's ImageNet models share (``keras.applications.imagenet_utils``), channels_last.

* :func:`preprocess_input` with Keras's three modes: ``"caffe"`` (RGB -> BGR, minus the ImageNet
  mean per channel, no scaling: ResNet50, VGG16), ``"tf"`` (``x / 127.5 - 1``: MobileNetV2,
  Xception) and ``"torch"`` (``x / 255``, then the ImageNet mean and standard deviation).
* :func:`decode_predictions`: the top classes of a ``(samples, 1000)`` batch as
  ``[(wnid, name, score), ...]``, from the class index shipped in ``data/`` (the same file Keras
  downloads: ``imagenet_class_index.json``, md5 ``c2c37ea517e94d9795004a39431a14cb``).
* :func:`obtain_input_shape`, :func:`correct_pad`, :func:`validate_activation`: Keras's rules for
  the models' arguments, with Keras's messages.

As in Keras, NumPy float inputs to :func:`preprocess_input` are modified in place (integer ones are
converted to float32 first); pass ``x.copy()`` to keep the original.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np

from .. import activations as _activations

__all__ = ["preprocess_input", "decode_predictions", "obtain_input_shape", "correct_pad",
           "validate_activation"]

CLASS_INDEX_FILE = os.path.join(os.path.dirname(__file__), "data", "imagenet_class_index.json")
CLASS_INDEX = None   # loaded on first use: {"0": ["n01440764", "tench"], ...}

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def _check_data_format(data_format, caller):
    if data_format not in (None, "channels_last"):
        if data_format == "channels_first":
            raise ValueError(f"{caller}: cnnfast's images are channels_last (NHWC); "
                             "data_format='channels_first' is not supported")
        raise ValueError(f"{caller}: Expected data_format to be one of `channels_first` or "
                         f"`channels_last`. Received: data_format={data_format}")


def preprocess_input(x, data_format=None, mode="caffe"):
    """Preprocess a batch of RGB images with values in [0, 255] (NumPy array, 3-D or 4-D, last axis
    the 3 colour channels) for a Keras ImageNet model; see the module docstring for the modes.
    Returns a float array (float32 unless the input was another float type)."""
    caller = "preprocess_input"
    if mode not in {"caffe", "tf", "torch"}:
        raise ValueError(f"{caller}: Expected mode to be one of `caffe`, `tf` or `torch`. "
                         f"Received: mode={mode}")
    _check_data_format(data_format, caller)
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{caller}: expected a numeric array of images, got dtype {x.dtype}")
    if not issubclass(x.dtype.type, np.floating):
        x = x.astype(np.float32)
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    if x.ndim == 0 or x.shape[-1] != 3:
        raise ValueError(f"{caller}: mode={mode!r} needs images with 3 colour channels on the last "
                         f"axis, got an array of shape {x.shape}")
    if mode == "torch":
        x /= 255.0
        x -= np.asarray(_TORCH_MEAN, x.dtype)
        x /= np.asarray(_TORCH_STD, x.dtype)
        return x
    x = x[..., ::-1]   # RGB -> BGR (a view, as Keras; the subtraction below writes through it)
    x -= np.asarray(_CAFFE_MEAN_BGR, x.dtype)
    return x


def _class_index():
    global CLASS_INDEX
    if CLASS_INDEX is None:
        with open(CLASS_INDEX_FILE, encoding="utf-8") as f:
            CLASS_INDEX = json.load(f)
    return CLASS_INDEX


def decode_predictions(preds, top=5):
    """The ``top`` classes of each row of ``preds`` (shape ``(samples, 1000)``), best first, as a
    list (one per sample) of ``(wnid, class_name, score)`` tuples, as Keras returns them."""
    caller = "decode_predictions"
    preds = np.asarray(preds)
    if len(preds.shape) != 2 or preds.shape[1] != 1000:
        raise ValueError(f"{caller}: `decode_predictions` expects a batch of predictions (i.e. a 2D "
                         f"array of shape (samples, 1000)). Received array with shape: {preds.shape}")
    if isinstance(top, (bool, np.bool_)) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"{caller}: top must be a positive integer, got {top!r}")
    index = _class_index()
    results = []
    for pred in preds:   # one row per sample: a handful of rows, not pixels
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(index[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten,
                       weights=None):
    """Keras's rule for a model's input shape (channels_last): the default
    ``(default_size, default_size, 3)``, sizes of at least ``min_size``, exactly the default with
    ``include_top`` and ImageNet weights, and a static shape whenever the top is included."""
    _check_data_format(data_format, "obtain_input_shape")
    if input_shape is not None:
        if not isinstance(input_shape, (tuple, list)):
            raise ValueError(f"`input_shape` must be a tuple of three integers. Received: "
                             f"input_shape={input_shape!r}")
        input_shape = tuple(input_shape)
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        if input_shape[-1] not in {1, 3}:
            warnings.warn("This model usually expects 1 or 3 input channels. However, it was passed "
                          f"an input_shape with {input_shape[-1]} input channels.", stacklevel=3)
        default_shape = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError("When setting `include_top=True` and loading `imagenet` weights, "
                             f"`input_shape` should be {default_shape}.  Received: "
                             f"input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        if input_shape[-1] != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if (input_shape[0] is not None and input_shape[0] < min_size) or \
                (input_shape[1] is not None and input_shape[1] < min_size):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: "
                             f"input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return input_shape


def correct_pad(inputs, kernel_size):
    """The ZeroPadding2D padding before a stride-2 convolution, as Keras computes it (one row and
    column fewer at the top-left when the size is even), for a tensor ``inputs`` (NHWC)."""
    input_size = inputs.shape[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if input_size[0] is None else (1 - input_size[0] % 2, 1 - input_size[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation, weights):
    """Pretrained weights allow only a softmax or no activation on the classifier (Keras's rule)."""
    if weights is None:
        return
    fn = _activations.get(classifier_activation, "classifier_activation")
    if fn not in {_activations.get("softmax"), _activations.get(None)}:
        raise ValueError("Only `None` and `softmax` activations are allowed for the "
                         "`classifier_activation` argument when using pretrained weights, with "
                         f"`include_top=True`; Received: classifier_activation={classifier_activation}")
