"""cnnfast.optimizers — SGD, Adam, AdamW, RMSprop with Keras 3 names, defaults and update rules.

``get("adam")`` returns ``Adam()`` with defaults; strings are the lower-cased class names.
"""
from .adam import Adam, AdamW
from .base import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "get", "serialize", "deserialize"]

_CLASSES = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop}
_BY_NAME = {name.lower(): cls for name, cls in _CLASSES.items()}


def get(identifier) -> Optimizer:
    """An optimizer from a name (``"adam"``, ``"sgd"``, ``"rmsprop"``, ``"adamw"``), a config dict
    or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Could not interpret optimizer identifier {identifier!r}; expected one "
                             f"of {sorted(_BY_NAME)} or an Optimizer instance")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(f"Could not interpret optimizer identifier {identifier!r}")


def serialize(optimizer: Optimizer) -> dict:
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config) -> Optimizer:
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"Unknown optimizer config {config!r}")
    kwargs = config.get("config") or {}
    if not isinstance(kwargs, dict) or isinstance(kwargs.get("learning_rate"), dict):
        raise ValueError(f"Bad optimizer config {config!r} (learning-rate schedules cannot be loaded)")
    try:
        return _CLASSES[config["class_name"]](**kwargs)
    except TypeError as exc:
        raise ValueError(f"Bad arguments for optimizer {config['class_name']}: {exc}") from None
