"""cnnfast.models — ``Sequential``, the functional ``Model``, ``load_model``."""
from .functional import Functional, Model
from .sequential import Sequential


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved with ``model.save`` (see ``cnnfast.saving``)."""
    from ..saving import load_model as _load
    return _load(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


__all__ = ["Model", "Functional", "Sequential", "load_model"]
