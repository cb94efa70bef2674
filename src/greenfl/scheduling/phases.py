"""A round's phases as production cross-device FL runs them (Bonawitz et al., "Towards
Federated Learning at Scale: System Design", SysML 2019, sections 2.2-2.3):

selection      eligible devices check in; the server waits until the goal count (the
               cohort, over-selection included) has checked in, or a timeout
configuration  the server sets up the round's aggregation and sends each device the plan
               (the model's download is the client's own time, with its connection set-up)
reporting      the devices train and report; the round closes when enough have reported
               or at the reporting deadline (``fleet.deadline_s``)

Pace steering sets the selection phase's length. The server tells each device when to
reconnect so that the goal count arrives spread over the check-in window (no thundering
herd of the whole population at once); but no device is asked to check in more often
than every ``checkin_interval_s``, so a small eligible population fills the goal count
more slowly: ``goal x interval / eligible`` seconds. The phase never outlasts the timeout.

The model is deterministic (expected arrival times, no draws), so a run's timing does not
depend on any random stream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoundTiming:
    """The phases' parameters, in seconds (all 0: rounds with no check-in or
    configuration time, the idealised world of ``fleet.eligibility = "any"``)."""

    checkin_window_s: float = 0.0
    checkin_interval_s: float = 0.0
    selection_timeout_s: float = 0.0
    configuration_s: float = 0.0

    def checkin_s(self, goal: int, eligible: int) -> float:
        """The selection phase's length for a goal count among ``eligible`` devices."""
        if goal <= 0:
            return 0.0
        if eligible <= 0:
            return self.selection_timeout_s
        spread_s = self.checkin_window_s
        # Pace steering cannot bring devices back faster than every checkin_interval_s.
        fastest_s = min(goal, eligible) * self.checkin_interval_s / eligible
        phase_s = max(spread_s, fastest_s)
        if eligible < goal:  # the goal is out of reach: the phase waits for its timeout
            phase_s = max(phase_s, self.selection_timeout_s)
        if self.selection_timeout_s > 0:
            phase_s = min(phase_s, self.selection_timeout_s)
        return phase_s


# estimate: the production defaults. Bonawitz et al. (2019) report rounds of minutes but
# publish no phase lengths; these are set so that a round of a small model lasts a few
# minutes, and each is a config key (fleet.checkin_window_s, ...).
PRODUCTION_TIMING = RoundTiming(
    checkin_window_s=60.0,
    checkin_interval_s=600.0,
    selection_timeout_s=600.0,
    configuration_s=5.0,
)
NO_TIMING = RoundTiming()


def timing_for(
    eligibility: str,
    checkin_window_s: float | None = None,
    checkin_interval_s: float | None = None,
    selection_timeout_s: float | None = None,
    configuration_s: float | None = None,
) -> RoundTiming:
    """The eligibility's default phases, with any configured key in its place."""
    base = PRODUCTION_TIMING if eligibility == "production" else NO_TIMING

    def pick(value: float | None, default: float) -> float:
        return default if value is None else value

    return RoundTiming(
        checkin_window_s=pick(checkin_window_s, base.checkin_window_s),
        checkin_interval_s=pick(checkin_interval_s, base.checkin_interval_s),
        selection_timeout_s=pick(selection_timeout_s, base.selection_timeout_s),
        configuration_s=pick(configuration_s, base.configuration_s),
    )
