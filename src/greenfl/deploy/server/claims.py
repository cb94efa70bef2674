"""What a client says of its work, held against what the server saw and against its peers
(docs/trust.md, "Claims").

The server measures each task itself (``Observation``): the wall time from the client taking
the task off its stream to its update arriving, the bytes each way, and when the client
checked in. Its own estimate of the task's device energy is the enrolled device's active
power times the time the device needed: the profile's compute time for the work asked, but
never more than the wall time it saw (``server_estimate_j``).

A reported energy outside ``deploy.claim_tolerance`` of that estimate is *disputed*: the
update is aggregated, the ledger keeps both figures and charges the estimate. So is a
reported compute time under the estimate's time by more than the tolerance
(``judge_compute``), and a declared data size the device could not have trained on in the
time the server saw, even at the tolerance times its profile's rate. A client whose figures
sit far from its device class's peers (median and MAD, ``PeerStats``), or whose reported
loss sits far above the run's (``LossPeers``), is disputed too, and one flagged so (or for
its declared data) twice in a row is quarantined.
``plausible.check_plausible`` still rejects what no device could do; this module judges
what a device could do but this one, enrolled as it is, did not."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from greenfl.core.messages import ClientReport
from greenfl.deploy.server.plausible import RoundModel

# MAD to a normal's standard deviation: a robust z of 1 is one sigma for Gaussian data.
MAD_TO_SIGMA = 1.4826
# The least spread assumed in a device class (log scale): identical peers (one host on
# loopback) would otherwise flag a client for any difference at all. A meter's reading
# varies little for the same work (~1.28x); wall time carries the network and the host's
# load with it (~1.65x). With the default 6 MADs: flagged beyond 4.5x and 20x the median.
MIN_ENERGY_SPREAD = 0.25
MIN_PACE_SPREAD = 0.5
# A reported loss is compared on a log scale too, with a wider floor: clients' data differ
# (non-IID), so an honest client's loss can sit 20x its peers' late in training. With the
# default 6 MADs: flagged beyond ~400x the median (e^6), where no honest loss of the same
# model is, and the 1e30 lies 69 natural logs out.
MIN_LOSS_SPREAD = 1.0
LOSS_FLOOR = 1e-12  # a loss of 0 (it underflowed) on the log scale
PEER_WINDOW = 64  # the figures of a device class's last tasks that the statistics use
MIN_PEER_FIGURES = 5  # from at least MIN_PEERS other clients
MIN_PEERS = 3
# How a dispute's reason starts when it counts towards quarantine (quarantine.py): a lie
# about data, or figures far from the peers'. A reported energy off the server's estimate
# ("disputed: ...") does not: the estimate replaces it, and a meter that reads other
# hardware than the enrolled device (a laptop joined as a phone) would otherwise sit out.
DATA_DISPUTE = "disputed data"
PEER_OUTLIER = "outlier"


@dataclass(frozen=True)
class Observation:
    """What the server saw of one client's task, by its own clock and counters."""

    client_id: int
    round_idx: int
    wall_s: float | None  # the task taken off the stream -> its update received
    bytes_down: int
    bytes_up: int
    checked_in_at: float  # Unix time of the client's last Join


@dataclass(frozen=True)
class ClaimVerdict:
    """The server's judgement of a report's footprint."""

    server_estimate_j: float
    reported_energy_j: float | None
    dispute: str | None  # why the report is disputed, or None


def estimate_compute_s(m: RoundModel, wall_s: float | None) -> float:
    """The seconds the enrolled device needed for the task: its profile's, at most the
    wall time the server saw the task out."""
    if wall_s is None:
        return min(m.modelled_compute_s, m.timeout_s)
    return min(m.modelled_compute_s, max(0.0, wall_s))


def server_estimate_j(m: RoundModel, wall_s: float | None) -> float:
    """The server's own estimate of the task's device energy, in J."""
    return m.power_w * estimate_compute_s(m, wall_s)


def judge_claims(
    m: RoundModel,
    energy_j: float | None,
    wall_s: float | None,
    tolerance: float,
    declared: bool,
) -> ClaimVerdict:
    """The verdict on a report that passed the hard bounds: disputed if its energy lies
    outside ``tolerance`` of the server's estimate, or (``declared``: the client weighs by
    its own declared data size) if the server saw the task out for less than the enrolled
    device needs for that many samples at its peak rate, ``tolerance`` times its profile's
    FLOP/s (a device of the class may outrun the class's average by that much, no more).
    The task's compute happened inside the wall time the server saw, so no slack is added
    to it (audit of issue 29, GAP 3: a second of slack let a laptop-class client declare
    5,500x its data)."""
    est = server_estimate_j(m, wall_s)
    if energy_j is not None and est > 0:
        ratio = energy_j / est
        if not 1.0 / tolerance <= ratio <= tolerance:
            return ClaimVerdict(
                est,
                energy_j,
                f"disputed: reported {energy_j:.4g} J, {ratio:.3g}x the server's estimate "
                f"{est:.4g} J (enrolled device, observed wall time; tolerance "
                f"{tolerance:g}x, deploy.claim_tolerance)",
            )
    if declared and wall_s is not None:
        need_s = m.modelled_compute_s
        peak_s = need_s / tolerance
        if peak_s > max(0.0, wall_s):
            return ClaimVerdict(
                est,
                energy_j,
                f"{DATA_DISPUTE}: its declared data needs {need_s:.4g} s on its enrolled device, "
                f"{peak_s:.4g} s at its peak ({tolerance:g}x its profile's FLOP/s, "
                f"deploy.claim_tolerance); the task was out {wall_s:.4g} s",
            )
    return ClaimVerdict(est, energy_j, None)


def plausible_samples(m: RoundModel, wall_s: float, declared_n: int) -> int:
    """The samples a client could have trained on in ``wall_s`` on its enrolled device at
    its profile's rate, at most its declared ``declared_n``: its weight once its declared
    size is disputed."""
    if m.modelled_compute_s <= 0:
        return declared_n
    share = max(0.0, wall_s) / m.modelled_compute_s
    return max(1, min(declared_n, math.floor(declared_n * share)))


def judge_compute(
    m: RoundModel, compute_s: float, wall_s: float | None, tolerance: float
) -> str | None:
    """Why a reported compute time is disputed, or None: it is under the server's estimate
    of the time the enrolled device needed (its profile's time for the work asked, at most
    the wall time the server saw) divided by ``tolerance``. A client without a meter is
    charged its device's power times this time, so a time cut by 9.9 (under the hard
    bound's 10) cut its energy by 9.9 (audit of issue 29, GAP 1).

    A longer time than the estimate is believed up to the wall time the server saw (more
    is rejected outright, plausible.check_plausible): a real device trains slower than its
    profile's FLOP/s (each step's framework overhead; other load on it), and the server
    cannot tell that time from any other inside the wall time it saw."""
    need_s = estimate_compute_s(m, wall_s)
    if need_s <= 0 or compute_s * tolerance >= need_s:
        return None
    seen = "" if wall_s is None else f", observed wall time {wall_s:.4g} s"
    return (
        f"disputed: reported {compute_s:.4g} s of compute, {compute_s / need_s:.3g}x the "
        f"server's estimate {need_s:.4g} s (enrolled device's profile for the work asked"
        f"{seen}; tolerance {tolerance:g}x, deploy.claim_tolerance)"
    )


def charged_estimate(
    report: ClientReport, m: RoundModel, wall_s: float | None, why: str
) -> ClientReport:
    """An accepted report disputed for ``why`` (joined before any reason it had, so that a
    dispute that counts towards quarantine leads): charged the server's estimate (energy,
    compute time, FLOPs), as greenfl.deploy.server.checks.judged_claims charges one."""
    reason = why if report.reason is None else f"{why}; {report.reason}"
    if report.disputed:  # its figures are the estimate already
        return report._replace(reason=reason)
    est_j = report.server_estimate_j
    return report._replace(
        reason=reason,
        flops=m.expected_flops,
        measured_energy_j=server_estimate_j(m, wall_s) if est_j is None else est_j,
        measured_compute_s=estimate_compute_s(m, wall_s),
        energy_estimated=True,
        disputed=True,
    )


@dataclass(frozen=True)
class PeerFigures:
    """One task's figures that peers of a device class are compared on (log scale):
    reported energy over the server's estimate (None: no meter), and observed wall seconds
    over the device profile's compute seconds for the work asked."""

    energy_ratio: float | None
    pace: float | None


def figures_of(
    m: RoundModel, energy_j: float | None, wall_s: float | None, est_j: float
) -> PeerFigures:
    ratio = None
    if energy_j is not None and energy_j > 0 and est_j > 0:
        ratio = math.log(energy_j / est_j)
    pace = None
    if wall_s is not None and wall_s > 0 and m.modelled_compute_s > 0:
        pace = math.log(wall_s / m.modelled_compute_s)
    return PeerFigures(ratio, pace)


def robust_outlier(
    value: float, peers: Iterable[float], threshold: float, min_spread: float = MIN_ENERGY_SPREAD
) -> float | None:
    """``value``'s robust z against ``peers`` (median, MAD scaled to a sigma, at least
    ``min_spread``) if it exceeds ``threshold``; None otherwise, or with too few."""
    arr = np.fromiter(peers, dtype=np.float64)
    if arr.size < MIN_PEER_FIGURES:
        return None
    median = float(np.median(arr))
    spread = max(MAD_TO_SIGMA * float(np.median(np.abs(arr - median))), min_spread)
    z = (value - median) / spread
    return z if abs(z) > threshold else None


class PeerStats:
    """The recent figures of each device class's tasks, by client; a client's figures are
    judged against the other clients' of its class (its own never vouch for it)."""

    def __init__(self, threshold: float, window: int = PEER_WINDOW) -> None:
        self.threshold = threshold
        self._window = window
        self._figures: dict[str, deque[tuple[int, PeerFigures]]] = {}
        self._lock = threading.Lock()

    def judge(self, device: str, cid: int, f: PeerFigures) -> str | None:
        """Why ``f`` is an outlier among ``device``'s other clients, or None."""
        with self._lock:
            others = [(c, g) for c, g in self._figures.get(device, ()) if c != cid]
        if len({c for c, _ in others}) < MIN_PEERS:
            return None
        for name, mine, theirs, floor in (
            (
                "reported energy / estimate",
                f.energy_ratio,
                [g.energy_ratio for _, g in others],
                MIN_ENERGY_SPREAD,
            ),
            ("wall time / modelled compute", f.pace, [g.pace for _, g in others], MIN_PACE_SPREAD),
        ):
            if mine is None:
                continue
            z = robust_outlier(mine, (t for t in theirs if t is not None), self.threshold, floor)
            if z is not None:
                return (
                    f"{PEER_OUTLIER}: {name} is {math.exp(mine):.3g}, {abs(z):.1f} scaled MADs "
                    f"from its {device} peers' median (deploy.peer_outlier_mads = "
                    f"{self.threshold:g})"
                )
        return None

    def add(self, device: str, cid: int, f: PeerFigures) -> None:
        with self._lock:
            q = self._figures.setdefault(device, deque(maxlen=self._window))
            q.append((cid, f))


class LossPeers:
    """The reported training losses of the run's last tasks, by client, on a log scale. A
    loss is a property of the model and the client's data, not of its device, so every
    client is a peer of every other here (a device class of one, the issue's liar's, would
    otherwise have none). Only a loss far *above* the others' is flagged: a low one (a
    client whose data is easy) only makes selection pass it over."""

    def __init__(self, threshold: float, window: int = PEER_WINDOW) -> None:
        self.threshold = threshold
        self._losses: deque[tuple[int, float]] = deque(maxlen=window)
        self._lock = threading.Lock()

    def judge(self, cid: int, loss: float) -> tuple[str | None, float | None]:
        """Why ``loss`` is disputed (a negative loss, or one ``threshold`` scaled MADs
        above the other clients' median), and the others' median loss (None with too few
        of them), which selection is given in its place."""
        with self._lock:
            others = [v for c, v in self._losses if c != cid]
            clients = len({c for c, _ in self._losses if c != cid})
        enough = clients >= MIN_PEERS and len(others) >= MIN_PEER_FIGURES
        median = math.exp(float(np.median(others))) if enough else None
        if loss < 0:
            return (
                f"{PEER_OUTLIER}: reported loss {loss:.4g} is negative (a training loss is not)",
                median,
            )
        if not enough or not math.isfinite(loss):
            return None, median
        z = robust_outlier(_log_loss(loss), others, self.threshold, MIN_LOSS_SPREAD)
        if z is None or z < 0:
            return None, median
        return (
            f"{PEER_OUTLIER}: reported loss {loss:.4g}, {z:.1f} scaled MADs above the other "
            f"clients' median {median:.4g} (deploy.peer_outlier_mads = {self.threshold:g})",
            median,
        )

    def add(self, cid: int, loss: float) -> None:
        if math.isfinite(loss) and loss >= 0:
            with self._lock:
                self._losses.append((cid, _log_loss(loss)))


def _log_loss(loss: float) -> float:
    return math.log(max(loss, LOSS_FLOOR))
