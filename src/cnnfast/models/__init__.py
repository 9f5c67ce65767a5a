"""cnnfast.models — ``Sequential``, the functional ``Model``, ``load_model``."""
from .functional import Functional, Model
from .persistence import load_model
from .sequential import Sequential

__all__ = ["Model", "Functional", "Sequential", "load_model"]
