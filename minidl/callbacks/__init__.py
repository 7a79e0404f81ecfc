"""Callbacks with Keras's names: History, ModelCheckpoint, EarlyStopping, CSVLogger,
TerminateOnNaN, LearningRateScheduler, and the :class:`Callback` base class; and one of
minidl's own, RecalibrateBatchNorm (for training from random weights)."""
from minidl.callbacks.base import Callback, CallbackList
from minidl.callbacks.history import History, ProgbarLogger
from minidl.callbacks.checkpoint import ModelCheckpoint
from minidl.callbacks.early_stopping import EarlyStopping
from minidl.callbacks.logging import CSVLogger, TerminateOnNaN, LearningRateScheduler
from minidl.callbacks.progbar import Progbar
from minidl.callbacks.batchnorm_recalibration import RecalibrateBatchNorm

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "ModelCheckpoint", "EarlyStopping",
           "CSVLogger", "TerminateOnNaN", "LearningRateScheduler", "Progbar", "RecalibrateBatchNorm"]
