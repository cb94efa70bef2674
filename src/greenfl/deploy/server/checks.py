"""Judging one client update in a deployment: its protocol, size, identity, payload (decoded
with the run's codec) and the scalars beside it. Every failure is a ``rejected`` report with
its reason for the ledger; nothing a client sends can raise past this module."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
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
from greenfl.deploy.server.claims import (
    PeerStats,
    estimate_compute_s,
    figures_of,
    judge_claims,
    plausible_samples,
    server_estimate_j,
)
from greenfl.deploy.server.plausible import RoundModel, check_figures, check_plausible
from greenfl.deploy.server.sessions import Pending
from greenfl.deploy.widths import WidthSlice, slice_for
from greenfl.deploy.wire import encoded_from_pb, params_from_pb

log = logging.getLogger("greenfl.serve")


@dataclass(frozen=True)
class UpdateRules:
    """What an update must match: the run's codec and model (with sub-models, the slice of
    the width its client was asked to train), and the deployment's limits."""

    codec: Codec
    spec: ParamSpec
    max_message_bytes: int
    max_update_norm: float | None
    secagg: bool = False  # secure aggregation: the update carries keys and no delta
    widths: Mapping[float, WidthSlice] = field(default_factory=dict)  # sub-models: by width

    def spec_at(self, width: float) -> ParamSpec:
        """The tensors an update of a width-``width`` task must be."""
        if not self.widths:
            if width != 1.0:
                raise UpdateRejected(f"sub-model width {width:g} asked of a run without them")
            return self.spec
        return slice_for(width, self.widths).spec


@dataclass(frozen=True)
class ClaimRules:
    """How a client's claims are judged beyond the hard bounds (claims.py): against the
    server's estimate for its enrolled ``device`` within ``tolerance``, and its peers."""

    tolerance: float
    device: str  # the device class it is accounted as
    declared: bool  # it weighs by its own declared local data size
    peers: PeerStats
    flag: str | None = None  # the session's flag (self-described), for its ledger rows


# What a refused update's upload is charged at most, beyond the model's own size (the task
# it answers): the framing and scalars of an honest update. The bytes past that were the
# sender's choice, not the run's work (issue 29: one 100 MB refusal charged 18 kJ).
REFUSED_UPLOAD_SLACK_BYTES = 64 * 1024


def judge_update(
    req: pb.Update,
    size: int,
    cid: int,
    pending: Pending,
    rules: UpdateRules,
    claims: ClaimRules | None = None,
) -> ClientReport:
    """The report for one update: completed (disputed where its claims disagree with the
    server's observations), failed (the client said so) or rejected."""
    fp = req.footprint
    # Taken as sent: a non-finite or negative figure rejects the update (check_plausible)
    # instead of passing as "absent" and leaving the server's model, unchecked, in charge.
    flops, compute_s = float(fp.flops), float(fp.compute_s)
    energy_j = float(fp.energy_j) if fp.HasField("energy_j") else None
    loss = float(req.loss) if math.isfinite(req.loss) else float("nan")
    elapsed_s = None if pending.delivered_at is None else time.monotonic() - pending.delivered_at
    m = pending.model
    flag = claims.flag if claims is not None else None

    def report(status: str, reason: str | None, delta: torch.Tensor | None) -> ClientReport:
        # Only an accepted update's own figures are kept: a refused one is accounted as
        # modelled, so that what it claimed never reaches the clock or the ledger.
        ok = status == "completed"
        modelled = m.expected_flops if m is not None else 0.0
        worked_s: float | None = None
        if m is not None and status != "failed":
            # The clock and the ledger get at most the time the server saw the task out,
            # whatever was reported or modelled.
            wall_s = m.timeout_s if elapsed_s is None else min(m.timeout_s, max(0.0, elapsed_s))
            worked_s = min(compute_s if ok else m.modelled_compute_s, wall_s)
        elif ok:
            worked_s = compute_s
        up = size if ok else min(size, pending.bytes_down + REFUSED_UPLOAD_SLACK_BYTES)
        return ClientReport(
            client_id=cid,
            status=status,
            reason=_joined(flag, reason),
            delta=delta,
            num_samples=pending.num_samples,
            flops=flops if ok else modelled if status == "rejected" else 0.0,
            loss=loss,
            bytes_up=up,
            bytes_down=pending.bytes_down,
            measured_energy_j=energy_j if ok else None,
            measured_compute_s=worked_s,
            # The client's meter modelled it (e.g. codecarbon from a TDP): say so.
            energy_estimated=ok and energy_j is not None and bool(fp.estimated),
            reported_energy_j=energy_j,
            server_estimate_j=None
            if m is None or status == "failed"
            else server_estimate_j(m, elapsed_s),
        )

    if req.error:
        reason = f"client error: {req.error[:300]}"
        log.warning("client %d in round %d: %s", cid, pending.round_idx, reason)
        return report("failed", reason, None)
    try:
        delta = check_update(req, size, cid, pending, rules)
        if m is not None:
            check_plausible(flops, compute_s, energy_j, elapsed_s, m)
        else:
            check_figures(flops, compute_s, energy_j)
    except UpdateRejected as exc:
        log.warning("rejected update of client %d in round %d: %s", cid, pending.round_idx, exc)
        return report("rejected", str(exc), None)
    done = report("completed", None, delta)
    if m is None or claims is None:
        return done
    return judged_claims(done, m, energy_j, elapsed_s, claims)


def judged_claims(
    done: ClientReport,
    m: RoundModel,
    energy_j: float | None,
    wall_s: float | None,
    c: ClaimRules,
) -> ClientReport:
    """An accepted report, disputed where its claims disagree with the server's estimate
    or its peers: then charged the server's estimate (energy, compute time, FLOPs) and,
    if its declared data size is what is in doubt, weighed by what it could have done."""
    verdict = judge_claims(m, energy_j, wall_s, c.tolerance, c.declared)
    figures = figures_of(m, energy_j, wall_s, verdict.server_estimate_j)
    # The peers' verdict first: it is the one that counts towards quarantine. A class
    # whose meters all read other hardware than its profile is disputed as a whole (the
    # estimate is charged) but judged against itself, so its honest members are no
    # outliers and a liar among them is.
    outlier = c.peers.judge(c.device, done.client_id, figures)
    dispute = outlier or verdict.dispute
    if outlier is None:
        c.peers.add(c.device, done.client_id, figures)
    if dispute is None:
        return done
    samples = done.num_samples
    if c.declared and wall_s is not None:
        samples = plausible_samples(m, wall_s, samples)
    return done._replace(
        reason=_joined(c.flag, dispute),
        num_samples=samples,
        flops=m.expected_flops,
        measured_energy_j=verdict.server_estimate_j,
        measured_compute_s=estimate_compute_s(m, wall_s),
        energy_estimated=True,
        disputed=True,
    )


def as_rejected(
    report: ClientReport, why: str, m: RoundModel | None, flag: str | None
) -> ClientReport:
    """An accepted report turned down after all (a replay, the norm bound): accounted as
    modelled, like any refused update."""
    worked_s = report.measured_compute_s
    if m is not None and worked_s is not None:
        worked_s = min(worked_s, m.modelled_compute_s)
    return report._replace(
        status="rejected",
        reason=_joined(flag, why),
        delta=None,
        flops=m.expected_flops if m is not None else 0.0,
        measured_energy_j=None,
        measured_compute_s=worked_s,
        energy_estimated=False,
        disputed=False,
        bytes_up=min(report.bytes_up, report.bytes_down + REFUSED_UPLOAD_SLACK_BYTES),
    )


def _joined(flag: str | None, reason: str | None) -> str | None:
    if flag is None:
        return reason
    return flag if reason is None else f"{reason}; {flag}"


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
    spec = rules.spec_at(p.width)
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
        if rules.widths:  # a slice of the wrong length says so before any other mismatch
            sent = sum(int(np.prod(t.shape, dtype=np.int64)) for t in req.tensors.tensors)
            _check_slice_length(sent, spec.numel, p.width)
        delta = params_from_pb(req.tensors.tensors, spec)
    elif kind == "encoded":
        enc = encoded_from_pb(req.encoded)
        if enc.codec != rules.codec.name:
            raise UpdateRejected(
                f"update encoded with {enc.codec!r}, the run's codec is {rules.codec.name!r}"
            )
        if rules.widths:
            _check_slice_length(int(enc.num_elements), spec.numel, p.width)
        elif enc.num_elements != spec.numel:
            raise UpdateRejected(
                f"encoded update has {enc.num_elements} elements, the model {spec.numel}"
            )
        delta = rules.codec.decode(enc)
    else:
        raise UpdateRejected("update carries no delta")
    check_delta(delta, spec.numel, rules.max_update_norm)
    check_report_fields(int(req.num_samples), p.num_samples, req.loss, req.footprint.flops)
    return delta


def _check_slice_length(sent: int, expected: int, width: float) -> None:
    """UpdateRejected unless an update of a sub-model run is exactly its width's slice."""
    if sent != expected:
        raise UpdateRejected(
            f"update has {sent} elements, the width-{width:g} slice the client was asked to "
            f"train has {expected}"
        )


def check_message_limit(numel: int, max_message_bytes: int) -> None:
    """A task carries the whole model: refuse a limit it cannot fit in, before serving."""
    task_bytes = 4 * numel + 64 * 1024
    if task_bytes > max_message_bytes:
        raise ConfigError(
            f"deploy.max_message_mb = {max_message_bytes / 1e6:g} is too small for "
            f"the model's {numel} parameters (~{task_bytes / 1e6:.3g} MB per message)"
        )
