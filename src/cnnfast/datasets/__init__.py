"""cnnfast.datasets — the tutorial data sets, as in ``keras.datasets``.

    from cnnfast.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()

``mnist``, ``fashion_mnist``, ``cifar10`` and ``imdb`` read the original distributions from the data
directory (``$CNNFAST_DATA``, else ``~/.cache/cnnfast/datasets``; one sub-directory per data set)
and download missing files with hash verification; ``digits`` (8x8 handwritten digits) ships
inside the package and always works offline.
"""
from __future__ import annotations

from . import cifar10, digits, fashion_mnist, imdb, mnist
from ._fetch import DatasetCorruptError, DatasetError, DatasetNotFoundError, data_home

__all__ = ["mnist", "fashion_mnist", "cifar10", "imdb", "digits", "data_home", "DatasetError",
           "DatasetNotFoundError", "DatasetCorruptError", "load"]

_LOADERS = {"mnist": mnist, "fashion_mnist": fashion_mnist, "cifar10": cifar10, "imdb": imdb, "digits": digits}


def load(name: str, **kwargs):
    """``load_data()`` of the data set called ``name`` (mnist, fashion_mnist, cifar10, imdb, digits)."""
    try:
        module = _LOADERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"cnnfast.datasets.load: name must be one of {sorted(_LOADERS)}, got {name!r}") from None
    return module.load_data(**kwargs)
