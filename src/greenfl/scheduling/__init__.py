"""Time: the simulated clock, closing rounds under deadlines, carbon-aware waiting."""

from greenfl.scheduling.carbon import CarbonAwareScheduler
from greenfl.scheduling.clock import SimClock
from greenfl.scheduling.deadline import RoundClose, close_round

__all__ = ["CarbonAwareScheduler", "RoundClose", "SimClock", "close_round"]
