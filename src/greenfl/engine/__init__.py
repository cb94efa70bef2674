"""The round loop: building it from a config, its records and callbacks, and its state.
The client seam and the trainers live in greenfl.clients, the messages in greenfl.core."""

from greenfl.engine.build import build_loop
from greenfl.engine.loop import RoundLoop
from greenfl.engine.records import Callback, RoundRecord

__all__ = ["Callback", "RoundLoop", "RoundRecord", "build_loop"]
