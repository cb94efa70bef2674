"""Judging one client update in a deployment: its protocol, size, identity, payload (decoded
with the run's codec) and the scalars beside it. Every failure is a ``rejected`` report with
its reason for the ledger; nothing a client sends can raise past this module."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from greenfl.clients.validate import (
    check_delta,
    check_message_size,
    check_protocol,
    check_report_fields,
)
from greenfl.compression.base import Codec
from greenfl.core.errors import ConfigError, UpdateRejected
from greenfl.core.messages import ClientReport
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.server.plausible import check_figures, check_plausible
from greenfl.deploy.server.sessions import Pending
from greenfl.deploy.wire import encoded_from_pb, params_from_pb

log = logging.getLogger("greenfl.serve")


@dataclass(frozen=True)
class UpdateRules:
    """What an update must match: the run's codec and model, and the deployment's limits."""

    codec: Codec
    spec: ParamSpec
    max_message_bytes: int
    max_update_norm: float | None
    secagg: bool = False  # secure aggregation: the update carries keys and no delta


def judge_update(
    req: pb.Update, size: int, cid: int, pending: Pending, rules: UpdateRules
) -> ClientReport:
    """The report for one update: completed, failed (the client said so) or rejected."""
    fp = req.footprint
    # Taken as sent: a non-finite or negative figure rejects the update (check_plausible)
    # instead of passing as "absent" and leaving the server's model, unchecked, in charge.
    flops, compute_s = float(fp.flops), float(fp.compute_s)
    energy_j = float(fp.energy_j) if fp.HasField("energy_j") else None
    loss = float(req.loss) if math.isfinite(req.loss) else float("nan")
    elapsed_s = None if pending.delivered_at is None else time.monotonic() - pending.delivered_at

    def report(status: str, reason: str | None, delta: torch.Tensor | None) -> ClientReport:
        # Only an accepted update's own figures are kept: a refused one is accounted as
        # modelled, so that what it claimed never reaches the clock or the ledger.
        ok = status == "completed"
        m = pending.model
        modelled = m.expected_flops if m is not None else 0.0
        worked_s: float | None = None
        if m is not None and status != "failed":
            # The clock and the ledger get at most the time the server saw the task out,
            # whatever was reported or modelled.
            wall_s = m.timeout_s if elapsed_s is None else min(m.timeout_s, max(0.0, elapsed_s))
            worked_s = min(compute_s if ok else m.modelled_compute_s, wall_s)
        elif ok:
            worked_s = compute_s
        return ClientReport(
            client_id=cid,
            status=status,
            reason=reason,
            delta=delta,
            num_samples=pending.num_samples,
            flops=flops if ok else modelled if status == "rejected" else 0.0,
            loss=loss,
            bytes_up=size,
            bytes_down=pending.bytes_down,
            measured_energy_j=energy_j if ok else None,
            measured_compute_s=worked_s,
            # The client's meter modelled it (e.g. codecarbon from a TDP): say so.
            energy_estimated=ok and energy_j is not None and bool(fp.estimated),
        )

    if req.error:
        reason = f"client error: {req.error[:300]}"
        log.warning("client %d in round %d: %s", cid, pending.round_idx, reason)
        return report("failed", reason, None)
    try:
        delta = check_update(req, size, cid, pending, rules)
        if pending.model is not None:
            check_plausible(flops, compute_s, energy_j, elapsed_s, pending.model)
        else:
            check_figures(flops, compute_s, energy_j)
    except UpdateRejected as exc:
        log.warning("rejected update of client %d in round %d: %s", cid, pending.round_idx, exc)
        return report("rejected", str(exc), None)
    return report("completed", None, delta)


def check_update(
    req: pb.Update, size: int, cid: int, p: Pending, rules: UpdateRules
) -> torch.Tensor | None:
    """The decoded delta of an update that passes every check (None under secure
    aggregation: the delta comes later, masked), or UpdateRejected."""
    check_protocol(req.protocol_version)
    check_message_size(size, rules.max_message_bytes)
    if req.client_id != cid or req.round != p.round_idx:
        raise UpdateRejected(
            f"update names client {req.client_id} round {req.round}, "
            f"expected client {cid} round {p.round_idx}"
        )
    spec = rules.spec
    kind = req.WhichOneof("delta")
    if rules.secagg:
        keys = req.secagg_keys
        if kind is not None or len(keys.c_pk) != 32 or len(keys.s_pk) != 32:
            raise UpdateRejected("secure aggregation is on: send two 32-byte keys and no delta")
        check_report_fields(int(req.num_samples), p.num_samples, req.loss, req.footprint.flops)
        return None
    if kind == "tensors":
        if rules.codec.name != "identity":
            raise UpdateRejected(
                f"uncompressed tensors sent, but the run's codec is {rules.codec.name!r}"
            )
        delta = params_from_pb(req.tensors.tensors, spec)
    elif kind == "encoded":
        enc = encoded_from_pb(req.encoded)
        if enc.codec != rules.codec.name:
            raise UpdateRejected(
                f"update encoded with {enc.codec!r}, the run's codec is {rules.codec.name!r}"
            )
        if enc.num_elements != spec.numel:
            raise UpdateRejected(
                f"encoded update has {enc.num_elements} elements, the model {spec.numel}"
            )
        delta = rules.codec.decode(enc)
    else:
        raise UpdateRejected("update carries no delta")
    check_delta(delta, spec.numel, rules.max_update_norm)
    check_report_fields(int(req.num_samples), p.num_samples, req.loss, req.footprint.flops)
    return delta


def check_message_limit(numel: int, max_message_bytes: int) -> None:
    """A task carries the whole model: refuse a limit it cannot fit in, before serving."""
    task_bytes = 4 * numel + 64 * 1024
    if task_bytes > max_message_bytes:
        raise ConfigError(
            f"deploy.max_message_mb = {max_message_bytes / 1e6:g} is too small for "
            f"the model's {numel} parameters (~{task_bytes / 1e6:.3g} MB per message)"
        )
