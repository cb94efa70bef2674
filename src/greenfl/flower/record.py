"""The footprint record a ClientApp's reply carries (``footprint_mod`` writes it, the
strategy reads and removes it), and what the server reads of any reply: its bytes and the
app's own metrics. A record is a Flower ``MetricRecord`` under ``FOOTPRINT_KEY``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flwr.app import Message, MetricRecord

FOOTPRINT_KEY = "greenfl.footprint"
# The app's metrics the server reads: Flower's convention for the examples a node used,
# and the loss names Flower's examples and greenfl use.
EXAMPLES_KEY = "num-examples"
LOSS_KEYS = ("train_loss", "train-loss", "loss", "eval_loss", "eval-loss")
# The ConfigRecord key carrying the fleet client the server bound a node to: a simulated
# node loads that client's partition, so the workload matches ``greenfl run``'s.
CLIENT_KEY = "greenfl-client"


@dataclass(frozen=True)
class Footprint:
    """One train or evaluate call as the node measured it."""

    flops: float  # counted by greenfl's FLOP counter around the call, or the app's own
    compute_s: float  # wall time of the call on the node
    energy_j: float | None  # the node's meter; None where it has none
    energy_estimated: bool  # the meter's own model (CodeCarbon without counters), not counters

    def to_record(self) -> MetricRecord:
        return MetricRecord(
            {
                "flops": float(self.flops),
                "compute-s": float(self.compute_s),
                "energy-j": -1.0 if self.energy_j is None else float(self.energy_j),
                "energy-estimated": int(self.energy_estimated),
            }
        )

    @classmethod
    def from_record(cls, rec: MetricRecord) -> Footprint:
        """The record, checked: a malformed one (a missing key, a negative or non-finite
        figure) raises ValueError naming it."""
        values: dict[str, float] = {}
        for key in ("flops", "compute-s", "energy-j", "energy-estimated"):
            v = rec.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"footprint record: {key!r} is missing or not a number")
            if not math.isfinite(v):
                raise ValueError(f"footprint record: {key!r} is {v}")
            values[key] = float(v)
        if values["flops"] < 0 or values["compute-s"] < 0:
            raise ValueError("footprint record: negative FLOPs or seconds")
        energy = values["energy-j"]
        return cls(
            flops=values["flops"],
            compute_s=values["compute-s"],
            energy_j=None if energy < 0 else energy,
            energy_estimated=bool(values["energy-estimated"]),
        )


def message_bytes(msg: Message) -> int:
    """The bytes of a message's content, as Flower's records count them (arrays' data and
    their metadata; the transport's framing is not in it)."""
    return int(sum(record.count_bytes() for record in msg.content.values()))


def app_metrics(msg: Message) -> tuple[int, float]:
    """(examples, loss) from the app's own MetricRecord in a reply: Flower's
    ``num-examples`` and the first loss key present (0 and NaN where absent)."""
    examples, loss = 0, math.nan
    for name, rec in msg.content.metric_records.items():
        if name == FOOTPRINT_KEY:
            continue
        n = rec.get(EXAMPLES_KEY)
        if isinstance(n, (int, float)) and not isinstance(n, bool) and examples == 0:
            examples = int(n) if math.isfinite(n) and n > 0 else 0
        for key in LOSS_KEYS:
            v = rec.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isnan(loss):
                loss = float(v)
    return examples, loss
