"""The round loop, trainers and the transport seam."""

from greenfl.engine.build import build_loop
from greenfl.engine.loop import Callback, RoundLoop, RoundRecord, evaluate
from greenfl.engine.params import ParamSpec, get_flat, set_flat
from greenfl.engine.trainer import ClientTrainer, SequentialTrainer, TrainResult
from greenfl.engine.transport import ClientReport, ClientTransport, InProcessTransport
from greenfl.engine.vectorised import VectorisedTrainer

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
