"""``text_dataset_from_directory``: Keras 3's folders of ``.txt`` files as a data set of strings.

The files, labels, class names, shuffling and split follow Keras 3.15.1 exactly (see
``dataset_utils``). Each batch is ``(texts, labels)`` (``texts`` alone without labels) where
``texts`` is a NumPy object array of Python ``str`` of shape ``(batch,)``. A file is read as UTF-8
(undecodable bytes become U+FFFD) with its line endings as they are, as TensorFlow's
``read_file`` keeps them; ``max_length`` keeps the first ``max_length`` characters, as Keras's
TensorFlow-free path (``format="grain"``) does (its ``tf.data`` path counts bytes instead).
"""
from __future__ import annotations

import numpy as np

from .dataset_utils import (DirectoryDataset, check_label_args, check_validation_split_arg, encode_labels,
                            index_directory, training_or_validation_split)

__all__ = ["text_dataset_from_directory", "TextDirectoryDataset"]

_CALLER = "text_dataset_from_directory"


class TextDirectoryDataset(DirectoryDataset):
    """Batches of ``(texts, labels)`` read from text files; made by :func:`text_dataset_from_directory`."""

    def __init__(self, file_paths, labels, class_names, *, label_mode, batch_size, max_length, shuffle, seed,
                 workers=1, max_queue_size=10):
        num_classes = len(class_names) if class_names else 0
        super().__init__(file_paths, encode_labels(labels, label_mode, num_classes, _CALLER), class_names,
                         batch_size, shuffle, seed, workers, max_queue_size)
        self.label_mode = label_mode
        self.max_length = max_length

    def _read(self, path) -> str:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        return text if self.max_length is None else text[:self.max_length]

    def _load(self, paths):
        texts = np.empty(len(paths), dtype=object)
        texts[:] = [self._read(p) for p in paths]
        return texts, np.arange(len(paths))


def text_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, batch_size=32,
                                max_length=None, shuffle=True, seed=None, validation_split=None, subset=None,
                                follow_links=False, verbose=True):
    """A data set of text batches from a directory of class folders of ``.txt`` files (Keras's
    ``keras.utils.text_dataset_from_directory``).

    Args:
        directory: the directory holding the data (class sub-directories when labels are inferred).
        labels: ``"inferred"`` (from the sub-directory names), None (no labels), or a list of
            integer labels, one per ``.txt`` file in the sorted order of their paths.
        label_mode: ``"int"`` (int32 ``(batch,)``), ``"categorical"`` (float32 one-hot),
            ``"binary"`` (float32 0/1 ``(batch, 1)``, two classes only) or None.
        class_names: with inferred labels, the sub-directories to use, in this label order.
        batch_size: texts per batch; None serves single texts.
        max_length: keep at most this many characters of each text.
        shuffle: shuffle the files (else alphanumeric order) and, for training, every epoch.
        seed: seed of the shuffling (needed with ``validation_split`` and ``shuffle``).
        validation_split: fraction of the files kept for validation.
        subset: ``"training"``, ``"validation"`` or ``"both"`` (a list of the two data sets).
        follow_links: walk into sub-directories that are symbolic links.
        verbose: print how many files and classes were found.

    Returns:
        A :class:`TextDirectoryDataset` (a :class:`cnnfast.utils.PyDataset`) with ``class_names``
        and ``file_paths``; with ``subset="both"``, ``[train_dataset, val_dataset]``.
    """
    labels, label_mode = check_label_args(labels, label_mode, class_names, "text", _CALLER)
    if max_length is not None and (isinstance(max_length, (bool, np.bool_))
                                   or not isinstance(max_length, (int, np.integer)) or max_length < 0):
        raise ValueError(f"{_CALLER}: max_length must be a non-negative integer or None, got {max_length!r}")
    if batch_size is not None and (isinstance(batch_size, (bool, np.bool_))
                                   or not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"{_CALLER}: batch_size must be a positive integer or None, got {batch_size!r}")
    check_validation_split_arg(validation_split, subset, shuffle, seed, _CALLER)
    if seed is None:
        seed = np.random.randint(1e6)
    file_paths, labels, class_names = index_directory(
        directory, labels, (".txt",), class_names, shuffle, seed, follow_links, verbose, _CALLER)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f'{_CALLER}: When passing `label_mode="binary"`, there must be exactly 2 class_names. '
                         f"Received: class_names={class_names}")

    def make(paths, subset_labels, subset_shuffle):
        return TextDirectoryDataset(paths, subset_labels, class_names, label_mode=label_mode, batch_size=batch_size,
                                    max_length=max_length, shuffle=subset_shuffle, seed=seed)

    if subset == "both":
        train = training_or_validation_split(file_paths, labels, validation_split, "training")
        val = training_or_validation_split(file_paths, labels, validation_split, "validation")
        if not train[0]:
            raise ValueError(f"{_CALLER}: No training text files found in directory {directory}. Allowed format: .txt")
        if not val[0]:
            raise ValueError(f"{_CALLER}: No validation text files found in directory {directory}. "
                             "Allowed format: .txt")
        return [make(*train, shuffle), make(*val, False)]
    paths, subset_labels = training_or_validation_split(file_paths, labels, validation_split, subset)
    if not paths:
        raise ValueError(f"{_CALLER}: No text files found in directory {directory}. Allowed format: .txt")
    return make(paths, subset_labels, shuffle)
