"""Where Keras publishes the ImageNet weights of each model, and how they are fetched and loaded.

The URLs and hashes are Keras 3's (``WEIGHTS_PATH``, ``WEIGHTS_HASHES``, ``BASE_WEIGHTS_PATH``...
in ``keras/src/applications/*.py``); the files are Keras's legacy HDF5 weight files, read by
``Model.load_weights`` (which needs h5py). ``cnnfast.utils.get_file`` downloads a file once into
``~/.keras/models`` (or ``$KERAS_HOME``), as Keras does, and checks its hash. MobileNetV2's files
have no published hash (Keras passes none either).
"""
from __future__ import annotations

import os

__all__ = ["imagenet_weights", "load_model_weights", "check_weights_argument"]

_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"

_RESNET_BASE = _KERAS_APPS + "resnet/"
_MOBILENET_V2_BASE = _KERAS_APPS + "mobilenet_v2/"
_EFFICIENTNET_BASE = "https://storage.googleapis.com/keras-applications/"

# model key -> (file name with the top, its md5, file name without the top, its md5)
_TABLE = {
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels.h5", "2cb95161c43110f7111970584f804107",
                 "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "4d473c1dd8becc155b73f8504c6f6626"),
    "vgg16": ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b",
              "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "xception": ("xception_weights_tf_dim_ordering_tf_kernels.h5", "0a58e3b7378bc2990ea3b43d5981f1f6",
                 "xception_weights_tf_dim_ordering_tf_kernels_notop.h5", "b0042744bf5b25fce3cb969f33bebb97"),
    "efficientnetb0": ("efficientnetb0.h5", "902e53a9f72be733fc0bcb005b3ebbac",
                       "efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
}
_BASES = {"resnet50": _RESNET_BASE, "vgg16": _KERAS_APPS + "vgg16/", "xception": _KERAS_APPS + "xception/",
          "efficientnetb0": _EFFICIENTNET_BASE}

MOBILENET_V2_ALPHAS = (0.35, 0.50, 0.75, 1.0, 1.3, 1.4)
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


def imagenet_weights(model_key, include_top, alpha=None, rows=None):
    """``(file name, URL, md5 or None)`` of Keras's ImageNet weights for a model."""
    if model_key == "mobilenet_v2":
        suffix = f"{float(alpha)}_{rows}.h5" if include_top else f"{float(alpha)}_{rows}_no_top.h5"
        fname = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_" + suffix
        return fname, _MOBILENET_V2_BASE + fname, None
    if model_key not in _TABLE:
        raise ValueError(f"imagenet_weights: no ImageNet weights are known for {model_key!r}; "
                         f"known: {sorted(_TABLE) + ['mobilenet_v2']}")
    top_name, top_hash, notop_name, notop_hash = _TABLE[model_key]
    fname, file_hash = (top_name, top_hash) if include_top else (notop_name, notop_hash)
    return fname, _BASES[model_key] + fname, file_hash


def check_weights_argument(weights, caller):
    """Keras's rule: None, 'imagenet' or the path of an existing weights file."""
    if weights is None or weights == "imagenet":
        return
    if not isinstance(weights, (str, os.PathLike)) or not os.path.exists(weights):
        raise ValueError(f"{caller}: The `weights` argument should be either `None` (random "
                         "initialization), 'imagenet' (pre-training on ImageNet), or the path to the "
                         f"weights file to be loaded.  Received: weights={weights}")


def load_model_weights(model, weights, model_key, include_top, alpha=None, rows=None):
    """Load ``weights`` into ``model``: Keras's ImageNet file for ``'imagenet'`` (downloaded once
    and cached), the file at a path, nothing for None."""
    if weights is None:
        return
    if weights == "imagenet":
        from ..utils.file_utils import get_file   # lazily: only a download needs it
        fname, origin, file_hash = imagenet_weights(model_key, include_top, alpha, rows)
        weights = get_file(fname, origin, cache_subdir="models", file_hash=file_hash)
    model.load_weights(os.fspath(weights))
