"""cnnfast.utils — ``to_categorical``, ``set_random_seed``, ``Progbar``, ``get_file``, ``PyDataset``,
image and text data sets from directories, image files, ``pad_sequences``, ``plot_model`` (Keras names)."""
from .file_utils import (DownloadError, HashMismatchError, UnsafeArchiveError, cnnfast_home, get_file,
                         hash_file, validate_file)
from .image_dataset import image_dataset_from_directory
from .image_utils import array_to_img, img_to_array, load_img, save_img
from .model_visualization import model_to_dot, plot_model
from .numerical import normalize, to_categorical
from .progbar import Progbar
from .py_dataset import PyDataset
from .random import set_random_seed
from .sequence_utils import pad_sequences
from .text_dataset import text_dataset_from_directory

__all__ = ["to_categorical", "normalize", "set_random_seed", "Progbar", "PyDataset", "get_file",
           "validate_file", "hash_file", "cnnfast_home", "DownloadError", "HashMismatchError",
           "UnsafeArchiveError", "pad_sequences", "image_dataset_from_directory",
           "text_dataset_from_directory", "load_img", "img_to_array", "array_to_img", "save_img",
           "plot_model", "model_to_dot"]
