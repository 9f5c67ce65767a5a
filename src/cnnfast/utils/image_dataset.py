"""``image_dataset_from_directory``: Keras 3's image folders as a data set that ``fit`` reads.

The files, labels, class names, shuffling and split follow Keras 3.15.1 exactly (see
``dataset_utils``); the images are read as Keras's TensorFlow-free path (``format="grain"``)
reads them: Pillow decodes the file and converts it to the colour mode (``load_img``'s rules:
animated images give their first frame), the pixels become float32 and are resized with
``cnnfast.ops.image.resize`` -- Keras's ``keras.ops.image.resize`` semantics, bilinear on the C
kernel -- to ``image_size``, with ``crop_to_aspect_ratio`` / ``pad_to_aspect_ratio`` as that op
applies them. Images of one size in a batch are resized in one call.

The data set is a :class:`cnnfast.utils.PyDataset`: ``fit`` loads its batches ahead of the
training step on ``workers`` background threads (Pillow's decoders and cnnfast's kernels release
the GIL, so loading overlaps training). Set ``dataset.workers`` / ``dataset.max_queue_size`` to
change how far ahead it reads.

Unlike Keras, a file that cannot be decoded does not stop training: files whose header Pillow
cannot read are left out when the data set is made, with one warning naming them; a file that
fails later, while its pixels are decoded, is left out of its batch with a warning.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .dataset_utils import (DirectoryDataset, check_label_args, check_validation_split_arg, encode_labels,
                            index_directory, training_or_validation_split)
from .image_utils import COLOR_MODES, decode_image_file, pil_image

__all__ = ["image_dataset_from_directory", "ImageDirectoryDataset", "ALLOWLIST_FORMATS"]

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_CALLER = "image_dataset_from_directory"
_RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5")
# Keras accepts these for its TensorFlow pipeline only; keras.ops.image.resize has none of them
_TF_ONLY_METHODS = ("area", "gaussian", "mitchellcubic")
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


def _readable(path) -> str | None:
    """None if Pillow can read the header of ``path`` (and, for PNG, its chunk checksums), else why not."""
    Image = pil_image(_CALLER)
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as e:  # any decoder error means the file cannot be used
        return f"{type(e).__name__}: {e}"
    return None


def _drop_unreadable(paths, labels, workers):
    """``paths``/``labels`` without the files Pillow cannot open, with one warning naming them."""
    if not paths:
        return paths, labels
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = list(pool.map(_readable, paths))
    bad = [i for i, r in enumerate(reasons) if r is not None]
    if not bad:
        return paths, labels
    listing = "; ".join(f"{paths[i]} ({reasons[i]})" for i in bad[:10]) + ("; ..." if len(bad) > 10 else "")
    warnings.warn(f"{_CALLER}: skipping {len(bad)} file{'s' if len(bad) > 1 else ''} that cannot be decoded "
                  f"as an image: {listing}", UserWarning, stacklevel=4)
    keep = np.setdiff1d(np.arange(len(paths)), bad)
    return [paths[i] for i in keep], (None if labels is None else labels[keep])


class ImageDirectoryDataset(DirectoryDataset):
    """Batches of ``(images, labels)`` (``images`` alone without labels) read from image files:
    ``images`` float32 ``(batch, height, width, channels)`` (``channels_first``: ``(batch, channels,
    height, width)``). Made by :func:`image_dataset_from_directory`, which documents the rest."""

    def __init__(self, file_paths, labels, class_names, *, label_mode, image_size, color_mode, batch_size,
                 shuffle, seed, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio, data_format,
                 workers=DEFAULT_WORKERS, max_queue_size=10):
        num_classes = len(class_names) if class_names else 0
        super().__init__(file_paths, encode_labels(labels, label_mode, num_classes, _CALLER), class_names,
                         batch_size, shuffle, seed, workers, max_queue_size)
        self.label_mode = label_mode
        self.image_size = tuple(image_size)
        self.color_mode = color_mode
        self.num_channels = COLOR_MODES[color_mode]
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.pad_to_aspect_ratio = pad_to_aspect_ratio
        self.data_format = data_format

    def _decode(self, path):
        try:
            return decode_image_file(path, self.color_mode)
        except Exception as e:  # a file that passed the header check but whose pixels do not decode
            warnings.warn(f"{_CALLER}: skipping {path}, which cannot be decoded as an image "
                          f"({type(e).__name__}: {e})", UserWarning, stacklevel=2)
            return None

    def _resize(self, images: np.ndarray) -> np.ndarray:
        from ..ops.image import resize  # imported on first use: importing cnnfast.utils stays light
        return resize(images.astype(np.float32), self.image_size, interpolation=self.interpolation,
                      crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                      pad_to_aspect_ratio=self.pad_to_aspect_ratio)

    def _load(self, paths):
        pixels = [self._decode(p) for p in paths]
        kept = np.array([i for i, p in enumerate(pixels) if p is not None], dtype=np.int64)
        pixels = [pixels[i] for i in kept]
        out = np.empty((len(pixels),) + self.image_size + (self.num_channels,), np.float32)
        shapes = [p.shape for p in pixels]
        # resize every group of equally sized images in one call
        for shape in dict.fromkeys(shapes):
            members = [i for i, s in enumerate(shapes) if s == shape]
            out[members] = self._resize(np.stack([pixels[i] for i in members]))
        if self.data_format == "channels_first":
            out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
        return out, kept


def _image_size(image_size):
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, (bool, np.bool_)):
        image_size = (image_size, image_size)
    elif not isinstance(image_size, (list, tuple)) or len(image_size) != 2:
        raise ValueError(f"{_CALLER}: Invalid `image_size` value. Expected a tuple of 2 integers. "
                         f"Received: image_size={image_size}")
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) and s > 0
               for s in image_size):
        raise ValueError(f"{_CALLER}: `image_size` must be 2 positive integers (height, width), "
                         f"got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                                 data_format=None, verbose=True):
    """A data set of image batches from a directory of class folders (Keras's
    ``keras.utils.image_dataset_from_directory``).

    With ``main_directory/class_a/*.jpg`` and ``main_directory/class_b/*.jpg``, the images of
    ``class_a`` get label 0 and those of ``class_b`` label 1.

    Args:
        directory: the directory holding the data (class sub-directories when labels are inferred).
        labels: ``"inferred"`` (from the sub-directory names), None (no labels), or a list of
            integer labels, one per image file in the sorted order of their paths.
        label_mode: ``"int"`` (int32 ``(batch,)``), ``"categorical"`` (float32 one-hot
            ``(batch, num_classes)``), ``"binary"`` (float32 0/1 ``(batch, 1)``, two classes only)
            or None (no labels).
        class_names: with inferred labels, the sub-directories to use, in this label order.
        color_mode: ``"grayscale"``, ``"rgb"`` or ``"rgba"``: 1, 3 or 4 channels.
        batch_size: images per batch; None serves single images.
        image_size: ``(height, width)`` (or one int) every image is resized to.
        shuffle: shuffle the files (else alphanumeric order) and, for training, every epoch.
        seed: seed of the shuffling (needed with ``validation_split`` and ``shuffle``).
        validation_split: fraction of the files kept for validation.
        subset: ``"training"``, ``"validation"`` or ``"both"`` (a list of the two data sets).
        interpolation: ``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"lanczos3"`` or ``"lanczos5"``.
        follow_links: walk into sub-directories that are symbolic links.
        crop_to_aspect_ratio: centre-crop to the target aspect ratio before resizing.
        pad_to_aspect_ratio: pad (with zeros) to the target aspect ratio before resizing.
        data_format: ``"channels_last"`` (None) or ``"channels_first"``.
        verbose: print how many files and classes were found.

    Returns:
        An :class:`ImageDirectoryDataset` (a :class:`cnnfast.utils.PyDataset`) with
        ``class_names`` and ``file_paths``; ``len()`` is the number of batches per epoch. With
        ``subset="both"``, ``[train_dataset, val_dataset]``.

    Example:
        >>> train, val = image_dataset_from_directory("flowers", image_size=(180, 180), seed=1,
        ...                                           validation_split=0.2, subset="both")
        >>> model.fit(train, validation_data=val, epochs=10)
    """
    labels, label_mode = check_label_args(labels, label_mode, class_names, "image", _CALLER)
    if color_mode not in COLOR_MODES:
        raise ValueError(f'{_CALLER}: `color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. '
                         f"Received: color_mode={color_mode}")
    image_size = _image_size(image_size)
    if not isinstance(interpolation, str):
        raise ValueError(f"{_CALLER}: interpolation must be a string, got {interpolation!r}")
    interpolation = interpolation.lower()
    if interpolation in _TF_ONLY_METHODS:
        raise ValueError(f"{_CALLER}: interpolation={interpolation!r} exists only in Keras's TensorFlow "
                         f"pipeline; use one of {_RESIZE_METHODS}")
    if interpolation not in _RESIZE_METHODS:
        raise ValueError(f"{_CALLER}: Argument `interpolation` should be one of {_RESIZE_METHODS}. "
                         f"Received: interpolation={interpolation}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError(f"{_CALLER}: Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to `True`.")
    data_format = "channels_last" if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{_CALLER}: data_format must be 'channels_last', 'channels_first' or None, "
                         f"got {data_format!r}")
    if batch_size is not None and (isinstance(batch_size, (bool, np.bool_))
                                   or not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"{_CALLER}: batch_size must be a positive integer or None, got {batch_size!r}")
    check_validation_split_arg(validation_split, subset, shuffle, seed, _CALLER)
    pil_image(_CALLER)  # fail now, not in a loader thread, when Pillow is missing

    if seed is None:
        seed = np.random.randint(1e6)
    image_paths, labels, class_names = index_directory(
        directory, labels, ALLOWLIST_FORMATS, class_names, shuffle, seed, follow_links, verbose, _CALLER)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f'{_CALLER}: When passing `label_mode="binary"`, there must be exactly 2 class_names. '
                         f"Received: class_names={class_names}")

    def make(paths, subset_labels, subset_shuffle):
        paths, subset_labels = _drop_unreadable(paths, subset_labels, DEFAULT_WORKERS)
        if not paths:
            raise ValueError(f"{_CALLER}: none of the image files in {directory} can be decoded")
        return ImageDirectoryDataset(
            paths, subset_labels, class_names, label_mode=label_mode, image_size=image_size,
            color_mode=color_mode, batch_size=batch_size, shuffle=subset_shuffle, seed=seed,
            interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
            pad_to_aspect_ratio=pad_to_aspect_ratio, data_format=data_format)

    if subset == "both":
        train = training_or_validation_split(image_paths, labels, validation_split, "training")
        val = training_or_validation_split(image_paths, labels, validation_split, "validation")
        if not train[0]:
            raise ValueError(f"{_CALLER}: No training images found in directory {directory}. "
                             f"Allowed formats: {ALLOWLIST_FORMATS}")
        if not val[0]:
            raise ValueError(f"{_CALLER}: No validation images found in directory {directory}. "
                             f"Allowed formats: {ALLOWLIST_FORMATS}")
        return [make(*train, shuffle), make(*val, False)]
    paths, subset_labels = training_or_validation_split(image_paths, labels, validation_split, subset)
    if not paths:
        raise ValueError(f"{_CALLER}: No images found in directory {directory}. Allowed formats: {ALLOWLIST_FORMATS}")
    return make(paths, subset_labels, shuffle)
