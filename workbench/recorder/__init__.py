"""Recording every gate, cell, hidden state and attention map of an unmodified model."""

from workbench.recorder._hookpoint import HookPoint
from workbench.recorder._names import GRU_QUANTITIES, LSTM_QUANTITIES, RecordingError
from workbench.recorder._recorder import Recorder, intervene, record

__all__ = [
    "GRU_QUANTITIES",
    "LSTM_QUANTITIES",
    "HookPoint",
    "Recorder",
    "RecordingError",
    "intervene",
    "record",
]
