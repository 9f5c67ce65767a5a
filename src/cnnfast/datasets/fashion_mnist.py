"""Fashion-MNIST: 60,000 training and 10,000 test images of Zalando articles, 28x28 grey levels.

A drop-in replacement for MNIST (same file format, sizes and split), read from the original IDX
distribution in ``$CNNFAST_DATA/fashion-mnist/`` or ``~/.cache/cnnfast/datasets/fashion-mnist/``,
downloaded and SHA-256-verified when missing.

License: MIT, copyright (c) 2017 Zalando SE. H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a
Novel Image Dataset for Benchmarking Machine Learning Algorithms", arXiv:1708.07747.
"""
from __future__ import annotations

from ._fetch import DataSet, RemoteFile
from ._idx import load_idx_set

__all__ = ["load_data", "CLASS_NAMES", "DATASET"]

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

DATASET = DataSet(
    title="Fashion-MNIST",
    subdir="fashion-mnist",
    files=(
        RemoteFile("train-images-idx3-ubyte.gz", 26_421_880,
                   "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        RemoteFile("train-labels-idx1-ubyte.gz", 29_515,
                   "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        RemoteFile("t10k-images-idx3-ubyte.gz", 4_422_102,
                   "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", 5_148,
                   "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ),
    mirrors=("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
             "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    homepage="https://github.com/zalandoresearch/fashion-mnist",
)


def load_data(path=None, *, download: bool = True, base_url: str | None = None):
    """Load the Fashion-MNIST data set.

    Args:
        path: a local directory holding the four ``.gz`` files (directly or in
            ``fashion-mnist/``); default: ``$CNNFAST_DATA/fashion-mnist``, else
            ``~/.cache/cnnfast/datasets/fashion-mnist``. Missing files are downloaded into it.
        download: download missing files (default True); if False, a missing file raises.
        base_url: URL of a directory holding the files, used instead of the canonical mirrors.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28), (10000,); labels 0..9 name :data:`CLASS_NAMES`.

    Raises:
        DatasetNotFoundError: files missing and not downloadable (the message says what to put where).
        DatasetCorruptError: a file is present but is not the original (size or hash mismatch).
    """
    return load_idx_set(DATASET, path, download, base_url, "cnnfast.datasets.fashion_mnist")
