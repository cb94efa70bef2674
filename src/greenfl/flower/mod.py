"""``footprint_mod``: a Flower ClientApp mod that measures each train and evaluate call and
attaches a footprint record to the reply.

It times the call, counts its FLOPs with torch's formulas (the ones ``greenfl run`` prices
training with), or takes them from the app's metrics (``flops``), and reads the node's
meter if one is configured. Configure it from the app's run config
(``[tool.flwr.app.config]`` in the app's pyproject.toml):

- ``greenfl-flops``: ``layers`` (default: each Linear, convolution and LSTM call, priced
  with its backward pass, by a forward hook: cheap), ``exact`` (every tensor operation
  through greenfl's dispatch counter: also functional matmuls such as attention's, at a
  Python call per operation) or ``app`` (the reply's MetricRecord has ``flops``);
- ``greenfl-meter``: ``none`` (default: the server models energy from the node's enrolled
  device), ``rapl``, ``codecarbon`` or ``auto`` (greenfl's meters)."""

from __future__ import annotations

import time
from functools import cache

from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable

from greenfl.core.errors import ConfigError
from greenfl.flower.record import FOOTPRINT_KEY, Footprint
from greenfl.footprint.measurement import Meter
from greenfl.footprint.meters import make_meter
from greenfl.models.flop_hooks import LayerFlopCounter
from greenfl.models.flops import FlopCounter

FLOPS_KEY = "greenfl-flops"
FLOPS_CHOICES = ("layers", "exact", "app")
METER_KEY = "greenfl-meter"


@cache
def _meter(name: str) -> Meter:
    return make_meter(name)  # one per process: a CodeCarbon tracker is costly to start


def footprint_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Run the call, then add ``greenfl.footprint`` (FLOPs, seconds, metered joules) to a
    reply without error. Add it to a ClientApp: ``ClientApp(mods=[footprint_mod])``."""
    cfg = context.run_config
    how = str(cfg.get(FLOPS_KEY, "layers"))
    if how not in FLOPS_CHOICES:
        raise ConfigError(f"{FLOPS_KEY} = {how!r}: one of {', '.join(FLOPS_CHOICES)}")
    meter = _meter(str(cfg.get(METER_KEY, "none")))
    token = meter.begin()
    t0 = time.perf_counter()
    flops = 0.0
    if how == "app":
        reply = call_next(msg, context)
    else:
        with FlopCounter() if how == "exact" else LayerFlopCounter() as counter:
            reply = call_next(msg, context)
        flops = float(counter.flops)
    compute_s = time.perf_counter() - t0
    measured = meter.end(token)
    if reply.has_error():
        return reply
    if how == "app":
        flops = _app_flops(reply)
    reply.content[FOOTPRINT_KEY] = Footprint(
        flops=flops,
        compute_s=compute_s,
        energy_j=measured.energy_j,
        energy_estimated=measured.estimated,
    ).to_record()
    return reply


def _app_flops(reply: Message) -> float:
    for rec in reply.content.metric_records.values():
        v = rec.get("flops")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    raise ConfigError(
        f"{FLOPS_KEY} = 'app', but the reply's MetricRecord has no 'flops': report the "
        "call's FLOPs, or let footprint_mod count them"
    )
