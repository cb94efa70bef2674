"""The round loop, trainers and the transport seam."""

from greenfl.clients.inprocess import InProcessTransport
from greenfl.clients.trainer import ClientTrainer, SequentialTrainer, TrainResult
from greenfl.clients.transport import ClientTransport
from greenfl.clients.vectorised import VectorisedTrainer
from greenfl.core.messages import ClientReport
from greenfl.core.params import ParamSpec, get_flat, set_flat
from greenfl.engine.build import build_loop
from greenfl.engine.loop import RoundLoop
from greenfl.engine.records import Callback, RoundRecord
from greenfl.models.evaluate import evaluate

__all__ = [
    "Callback",
    "ClientReport",
    "ClientTrainer",
    "ClientTransport",
    "InProcessTransport",
    "ParamSpec",
    "RoundLoop",
    "RoundRecord",
    "SequentialTrainer",
    "TrainResult",
    "VectorisedTrainer",
    "build_loop",
    "evaluate",
    "get_flat",
    "set_flat",
]
