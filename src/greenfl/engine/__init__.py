"""The engine: handed a run's parts (greenfl.factories builds them), never the config. The
round is one context object through named steps (``steps``), one observer protocol watches
it (``observers``), and ``session`` runs a loop for ``greenfl.run`` and ``greenfl serve``
alike. The client seam and the trainers live in greenfl.clients, the messages in
greenfl.core."""

from greenfl.engine.loop import RoundLoop
from greenfl.engine.observers import Observation, Observer, RoundObserver, RoundView
from greenfl.engine.records import RoundRecord

__all__ = ["Observation", "Observer", "RoundLoop", "RoundObserver", "RoundRecord", "RoundView"]
