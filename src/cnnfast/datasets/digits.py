"""The 8x8 handwritten digits bundled with cnnfast, so that training works offline on a fresh machine.

1,797 images of the digits 0-9 (about 180 per class), each an 8x8 grid of integers 0..16: the
number of ink pixels in a 4x4 block of a 32x32 bitmap. The file ``data/digits.csv.gz`` (one row
per image: 64 pixel values row by row, then the label) is the copy shipped in scikit-learn's
``sklearn/datasets/data/``; its SHA-256 is checked on every load.

Split: fixed, deterministic and stratified: going through the file in order, every fifth image
of each digit (its 5th, 10th, 15th, ... occurrence) goes to the test set, the others to the
training set, both kept in file order. That gives 1,442 training and 355 test images, 34-36 test
images per digit, and spreads the writers over both sets (a contiguous split by file order puts
different writers in the test set and costs about 5 points of test accuracy).

Source and license: the test set of the UCI "Optical Recognition of Handwritten Digits" data set,
E. Alpaydin, C. Kaynak, 1998, UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49, licensed CC BY 4.0.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import io

import numpy as np

from ._fetch import DatasetCorruptError

__all__ = ["load_data", "FILE_NAME", "SHA256", "N_TRAIN", "N_TEST"]

FILE_NAME = "digits.csv.gz"
SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
N_TRAIN = 1442
N_TEST = 355


def _read_bundled() -> bytes:
    return importlib.resources.files(__package__).joinpath("data", FILE_NAME).read_bytes()


def load_data():
    """Load the bundled 8x8 digits.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape (1442, 8, 8) and
        (355, 8, 8) with values 0..16 (as in the source; divide by 16 to scale to [0, 1]), and
        uint8 labels 0..9 of shape (1442,) and (355,). The split is described in the module
        docstring.

    Raises:
        DatasetCorruptError: the bundled file is damaged (SHA-256 mismatch or malformed rows).
    """
    blob = _read_bundled()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256:
        raise DatasetCorruptError(f"digits: the bundled {FILE_NAME} has sha256 {digest}, expected {SHA256}; "
                                  f"the cnnfast installation is damaged, reinstall it")
    try:
        table = np.loadtxt(io.BytesIO(gzip.decompress(blob)), delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise DatasetCorruptError(f"digits: cannot parse the bundled {FILE_NAME}: {e}") from e
    if (table.shape != (N_TRAIN + N_TEST, 65) or table[:, :64].min() < 0 or table[:, :64].max() > 16
            or table[:, 64].min() < 0 or table[:, 64].max() > 9):
        raise DatasetCorruptError(f"digits: the bundled {FILE_NAME} does not hold {N_TRAIN + N_TEST} rows of "
                                  f"64 pixels in 0..16 and a label in 0..9")
    x = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    y = table[:, 64].astype(np.uint8)
    test = _test_mask(y)
    return (x[~test], y[~test]), (x[test], y[test])


def _test_mask(y: np.ndarray) -> np.ndarray:
    """True for every fifth occurrence (5th, 10th, ...) of each label, in file order."""
    occurrence = np.empty(len(y), dtype=np.int64)
    for label in range(10):
        where = np.flatnonzero(y == label)
        occurrence[where] = np.arange(len(where))
    return occurrence % 5 == 4
