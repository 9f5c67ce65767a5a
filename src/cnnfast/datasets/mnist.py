"""MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grey levels, 10 classes.

Read from the original IDX distribution (four ``.gz`` files) in ``$CNNFAST_DATA/mnist/`` or
``~/.cache/cnnfast/datasets/mnist/``, downloaded and SHA-256-verified when missing.

License: Yann LeCun and Corinna Cortes hold the copyright of MNIST, a derivative work of the
original NIST data sets, made available under the Creative Commons Attribution-Share Alike 3.0
license. Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits".
"""
from __future__ import annotations

from ._fetch import DataSet, RemoteFile
from ._idx import load_idx_set

__all__ = ["load_data", "DATASET"]

DATASET = DataSet(
    title="MNIST",
    subdir="mnist",
    files=(
        RemoteFile("train-images-idx3-ubyte.gz", 9_912_422,
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        RemoteFile("train-labels-idx1-ubyte.gz", 28_881,
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        RemoteFile("t10k-images-idx3-ubyte.gz", 1_648_877,
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", 4_542,
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    homepage="http://yann.lecun.com/exdb/mnist/",
)


def load_data(path=None, *, download: bool = True, base_url: str | None = None):
    """Load the MNIST data set.

    Args:
        path: a local directory holding the four ``.gz`` files (directly or in ``mnist/``);
            default: ``$CNNFAST_DATA/mnist``, else ``~/.cache/cnnfast/datasets/mnist``.
            Missing files are downloaded into it.
        download: download missing files (default True); if False, a missing file raises.
        base_url: URL of a directory holding the files, used instead of the canonical mirrors
            (``$CNNFAST_DATASETS_MIRROR`` does the same for every data set).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28), (10000,), pixels 0..255 (0 = background), labels 0..9.
        As in Keras there is no channel axis: use ``x[..., None] / 255`` for a Conv2D.

    Raises:
        DatasetNotFoundError: files missing and not downloadable (the message says what to put where).
        DatasetCorruptError: a file is present but is not the original (size or hash mismatch).
    """
    return load_idx_set(DATASET, path, download, base_url, "cnnfast.datasets.mnist")
