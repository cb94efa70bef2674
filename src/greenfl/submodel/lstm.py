"""The slice plan of the char-LSTM (``char_lstm``): every LSTM layer keeps the first
``units_at(hidden, width)`` units, each of its four gate blocks cut alike; the embedding
keeps its size (it is the input), and the class layer keeps all its outputs and reads
the kept units."""

from __future__ import annotations

from torch import nn

from greenfl.core.errors import ConfigError
from greenfl.models.reference import CharLSTM
from greenfl.submodel.layers import Narrowed, narrow_linear, narrow_lstm
from greenfl.submodel.widths import units_at


def plan_char_lstm(model: nn.Module, width: float) -> dict[str, Narrowed]:
    if not isinstance(model, CharLSTM):
        raise ConfigError(f"expected the char_lstm model, got {type(model).__name__}")
    keep = units_at(model.lstm.hidden_size, width)
    return {
        "lstm": narrow_lstm(model.lstm, keep),
        "head": narrow_linear(model.head, keep, model.head.out_features),
    }
