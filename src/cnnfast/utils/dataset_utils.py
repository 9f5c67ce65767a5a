"""What ``image_dataset_from_directory`` and ``text_dataset_from_directory`` share: Keras 3's rules
for listing a directory, its labels and its training/validation split, and the PyDataset that
serves the files in batches.

Listing (``keras/src/utils/dataset_utils.py::index_directory``, 3.15.1):
  * ``labels="inferred"``: the classes are the sub-directories of ``directory`` (sorted, hidden
    ones skipped) or ``class_names`` in the given order; files directly in ``directory`` are
    ignored. Otherwise the whole tree is listed as one group.
  * Each group is walked recursively (``os.walk``, ``follow_links`` deciding on linked
    directories), directories in sorted path order, files sorted by name, keeping the names
    whose lower-cased extension is allowed.
  * "Found N files belonging to K classes." (or "Found N files.") when ``verbose``.
  * With ``shuffle`` the paths and labels are permuted by ``np.random.RandomState(seed).shuffle``
    (the same permutation for both); ``seed=None`` draws one from NumPy's global generator.
  * A validation split keeps the last ``int(validation_split * N)`` files for validation and the
    rest for training (note ``samples[:-0]``: a split of zero files leaves no training files, as
    in Keras), printing "Using K files for training/validation.".

Serving (:class:`DirectoryDataset`): batch ``i`` holds the samples at positions
``i * batch_size ...`` of the current order, loaded by a subclass's ``_load(paths)``. The first
epoch follows ``file_paths``; with ``shuffle`` each further epoch (after every pass of
``fit``/``evaluate``/``predict``, or of a ``for`` loop over the data set) takes a new permutation
drawn from ``seed`` and the epoch number, so a run is reproducible. Keras's ``tf.data`` pipeline
also reshuffles every epoch, but through a buffer whose random order cannot be reproduced
without TensorFlow.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .py_dataset import PyDataset

__all__ = ["LABEL_MODES", "check_label_args", "check_validation_split_arg", "index_directory",
           "training_or_validation_split", "encode_labels", "DirectoryDataset"]

LABEL_MODES = ("int", "categorical", "binary", None)


def check_label_args(labels, label_mode, class_names, what: str, caller: str):
    """Keras's checks of ``labels``/``label_mode``/``class_names``; returns ``(labels, label_mode)``
    with both None when either is None (a data set without labels)."""
    if not (isinstance(labels, str) and labels == "inferred") and labels is not None:
        if not isinstance(labels, (list, tuple)):  # a list, as in Keras (any other string too)
            raise ValueError(
                f"{caller}: `labels` argument should be a list/tuple of integer labels, of the same size as "
                f"the number of {what} files in the target directory. If you wish to infer the labels from "
                f'the subdirectory names in the target directory, pass `labels="inferred"`. If you wish to '
                f"get a dataset that only contains {what} samples (no labels), pass `labels=None`. "
                f"Received: labels={labels}")
        if class_names:
            raise ValueError(f'{caller}: You can only pass `class_names` if `labels="inferred"`. '
                             f"Received: labels={labels}, and class_names={class_names}")
    if label_mode not in LABEL_MODES:
        raise ValueError(f'{caller}: `label_mode` argument must be one of "int", "categorical", "binary", '
                         f"or None. Received: label_mode={label_mode}")
    if labels is None or label_mode is None:
        return None, None
    return labels, label_mode


def check_validation_split_arg(validation_split, subset, shuffle, seed, caller: str):
    """Keras's checks of ``validation_split``, ``subset``, ``shuffle`` and ``seed``."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"{caller}: `validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError(f"{caller}: If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'{caller}: `subset` must be either "training", "validation" or "both", '
                         f"received: {subset}")
    if validation_split and shuffle and seed is None:
        raise ValueError(f"{caller}: If using `validation_split` and shuffling the data, you must provide a "
                         "`seed` argument, to make sure that there is no overlap between the training and "
                         "validation subset.")


def _subdirectories(directory: str) -> list[str]:
    return [d for d in sorted(os.listdir(directory))
            if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]


def _list_group(directory: str, group: str, follow_links: bool, formats: tuple) -> list[str]:
    """Paths relative to ``directory`` of the allowed files under ``directory/group``."""
    root_dir = os.path.join(directory, group)
    found = []
    for root, _, files in sorted(os.walk(root_dir, followlinks=follow_links), key=lambda entry: entry[0]):
        for name in sorted(files):
            if name.lower().endswith(formats):
                found.append(os.path.join(group, os.path.relpath(os.path.join(root, name), root_dir)))
    return found


def index_directory(directory, labels, formats, class_names, shuffle, seed, follow_links, verbose,
                    caller: str):
    """``(file_paths, labels, class_names)`` of ``directory`` by Keras's rules (module notes):
    ``labels`` is an int32 array, or None without labels; ``class_names`` None without labels."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{caller}: directory {directory!r} does not exist or is not a directory")
    inferred = isinstance(labels, str) and labels == "inferred"
    if inferred:
        groups = _subdirectories(directory)
        if class_names is not None:
            class_names = list(class_names)
            if not set(class_names).issubset(groups):
                raise ValueError(f"{caller}: The `class_names` passed did not match the names of the "
                                 f"subdirectories of the target directory. Expected: {groups} (or a subset "
                                 f"of it), but received: class_names={class_names}")
            groups = class_names  # the order given
    else:
        if class_names is not None:
            raise ValueError(f"{caller}: When `labels=None` (no labels), argument `class_names` cannot be "
                             "specified." if labels is None else
                             f"{caller}: When argument `labels` is specified, argument `class_names` cannot be "
                             "specified (the `class_names` will be the sorted list of labels).")
        groups = [""]
    listed = [_list_group(directory, g, follow_links, formats) for g in groups]
    filenames = [name for names in listed for name in names]

    if inferred:
        label_array = np.repeat(np.arange(len(groups), dtype=np.int32), [len(names) for names in listed])
        class_names = list(groups)
    elif labels is None:
        label_array, class_names = None, None
    else:
        if len(labels) != len(filenames):
            raise ValueError(f"{caller}: Expected the lengths of `labels` to match the number of files in the "
                             f"target directory. len(labels) is {len(labels)} while we found {len(filenames)} "
                             f"files in directory {directory}.")
        label_array = np.asarray(labels)
        if label_array.size and (label_array.dtype.kind not in "iub" or label_array.ndim != 1):
            raise ValueError(f"{caller}: `labels` must be a flat list of integer labels, got {labels!r}")
        class_names = [str(label) for label in sorted(set(label_array.tolist()))]
        label_array = label_array.astype(np.int32)
    if verbose:
        if label_array is None:
            print(f"Found {len(filenames)} files.")
        else:
            print(f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, name) for name in filenames]
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        # shuffle a list, as Keras does (a permutation of indices would differ from it)
        np.random.RandomState(seed).shuffle(file_paths)
        if label_array is not None:
            np.random.RandomState(seed).shuffle(label_array)
    return file_paths, label_array, class_names


def training_or_validation_split(samples, labels, validation_split, subset):
    """``samples``/``labels`` cut to ``subset`` by Keras's rule (module notes)."""
    if not validation_split:
        return samples, labels
    num_val_samples = int(validation_split * len(samples))
    if subset == "training":
        print(f"Using {len(samples) - num_val_samples} files for training.")
        keep = slice(None, -num_val_samples)
    elif subset == "validation":
        print(f"Using {num_val_samples} files for validation.")
        keep = slice(-num_val_samples, None)
    else:
        raise ValueError(f'`subset` must be either "training" or "validation", received: {subset}')
    return samples[keep], (None if labels is None else labels[keep])


def encode_labels(labels, label_mode, num_classes, caller: str):
    """int32 ``(n,)`` for ``"int"``, float32 ``(n, 1)`` 0/1 for ``"binary"``, float32 one-hot
    ``(n, num_classes)`` for ``"categorical"``, None without labels."""
    if label_mode is None:
        return None
    labels = np.asarray(labels, dtype=np.int32)
    if label_mode == "int":
        return labels
    if label_mode == "binary":
        if np.any((labels != 0) & (labels != 1)):
            raise ValueError(f'{caller}: label_mode="binary" needs labels 0 and 1, got {sorted(set(labels.tolist()))}')
        return labels.astype(np.float32)[:, None]
    if np.any((labels < 0) | (labels >= num_classes)):
        raise ValueError(f'{caller}: label_mode="categorical" needs labels in [0, {num_classes}) (one per class '
                         f"name), got {sorted(set(labels.tolist()))}")
    return np.eye(num_classes, dtype=np.float32)[labels]


class DirectoryDataset(PyDataset):
    """Files served in batches of ``(x, labels)`` (``x`` alone without labels); see the module notes.

    Attributes:
        file_paths: the files, in the order of the first epoch.
        class_names: the class names (None without labels).
    """

    def __init__(self, file_paths, labels, class_names, batch_size, shuffle, seed, workers, max_queue_size):
        super().__init__(workers=workers, max_queue_size=max_queue_size)
        self.file_paths = list(file_paths)
        self.class_names = class_names
        self._labels = labels
        self._batch_size = batch_size
        self._shuffle = bool(shuffle)
        self._seed = seed
        self._epoch = 0
        self._order = np.arange(len(self.file_paths))

    @property
    def batch_size(self):
        return self._batch_size

    def __len__(self):
        if self._batch_size is None:
            return len(self.file_paths)
        return math.ceil(len(self.file_paths) / self._batch_size)

    def _load(self, paths):
        """``(x, kept)``: the samples of ``paths`` stacked, and the positions in ``paths`` of those
        kept (a file that cannot be read is left out)."""
        raise NotImplementedError

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: index must be an integer, got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: batch index {index} out of range for {n} batches")
        index = int(index) % n
        size = 1 if self._batch_size is None else self._batch_size
        positions = self._order[index * size:(index + 1) * size]
        x, kept = self._load([self.file_paths[p] for p in positions])
        y = None if self._labels is None else self._labels[positions[kept]]
        if self._batch_size is None:  # unbatched: one sample (Keras's batch_size=None)
            x = x[0] if len(x) else x
            y = None if y is None else (y[0] if len(y) else y)
        return x if y is None else (x, y)

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]
        self.on_epoch_end()

    def on_epoch_end(self):
        """Draw the next epoch's order (with ``shuffle``)."""
        if self._shuffle and len(self.file_paths) > 1:
            self._epoch += 1
            rng = np.random.default_rng(np.random.SeedSequence([int(self._seed), self._epoch]))
            self._order = rng.permutation(len(self.file_paths))
