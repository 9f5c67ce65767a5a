"""cnnfast.utils — ``to_categorical``, ``set_random_seed``, ``Progbar`` (Keras names)."""
from .numerical import normalize, to_categorical
from .progbar import Progbar
from .random import set_random_seed

__all__ = ["to_categorical", "normalize", "set_random_seed", "Progbar"]
