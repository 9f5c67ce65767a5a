"""cnnfast.callbacks — Keras callbacks: History, EarlyStopping, ModelCheckpoint, ..."""
from .callback import Callback
from .callback_list import CallbackList
from .early_stopping import EarlyStopping
from .history import History
from .misc import CSVLogger, LambdaCallback, LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN
from .model_checkpoint import ModelCheckpoint
from .progbar_logger import ProgbarLogger

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
           "TerminateOnNaN", "CSVLogger", "LambdaCallback", "LearningRateScheduler", "ReduceLROnPlateau"]
