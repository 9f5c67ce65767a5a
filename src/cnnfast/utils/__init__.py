"""cnnfast.utils — ``to_categorical``, ``set_random_seed``, ``Progbar``, ``get_file`` (Keras names)."""
from .file_utils import (DownloadError, HashMismatchError, UnsafeArchiveError, cnnfast_home, get_file,
                         hash_file, validate_file)
from .numerical import normalize, to_categorical
from .progbar import Progbar
from .py_dataset import PyDataset
from .random import set_random_seed
from .sequence_utils import pad_sequences

__all__ = ["to_categorical", "normalize", "set_random_seed", "Progbar", "PyDataset", "get_file",
           "validate_file", "hash_file", "cnnfast_home", "DownloadError", "HashMismatchError",
           "UnsafeArchiveError", "pad_sequences"]
