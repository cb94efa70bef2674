"""Checks every client update passes before it may be aggregated.

A client is not trusted: its update may be malformed (wrong tensor names, shapes or dtype),
diverged (NaN, inf) or hostile (a huge norm meant to drag the model away, a message meant to
exhaust memory). Each check raises UpdateRejected with a reason that goes into the ledger's
``client_rounds.reason``; nothing here can raise anything else on bad client input.

The checks take plain Python values, not protobuf messages, so the in-process transport uses
them too (``ValidatingTransport``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from greenfl.clients.transport import ClientTransport, Completion, TransportWrapper, with_reports
from greenfl.core.errors import UpdateRejected
from greenfl.core.messages import ClientReport
from greenfl.core.params import ParamSpec

PROTOCOL_VERSION = 1
WIRE_DTYPE = "float32"


@dataclass(frozen=True)
class WireTensor:
    """A named tensor as it travels: row-major little-endian bytes."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    data: bytes


def check_protocol(version: int) -> None:
    if version != PROTOCOL_VERSION:
        raise UpdateRejected(
            f"protocol version {version} is not supported (server speaks {PROTOCOL_VERSION})"
        )


def check_message_size(num_bytes: int, limit_bytes: int) -> None:
    if num_bytes > limit_bytes:
        raise UpdateRejected(
            f"message of {num_bytes} bytes exceeds the limit of {limit_bytes} bytes "
            "(deploy.max_message_mb)"
        )


def tensors_to_flat(tensors: Sequence[WireTensor], spec: ParamSpec) -> torch.Tensor:
    """The flat float32 vector of named tensors that must match the model exactly: the same
    names in the same order, the same shapes, float32, and bytes that fill each shape."""
    names = tuple(t.name for t in tensors)
    if names != spec.names:
        missing = [n for n in spec.names if n not in names]
        extra = [n for n in names if n not in spec.names]
        if missing or extra:
            raise UpdateRejected(
                f"tensor names do not match the model: missing {missing[:5]}, "
                f"unexpected {extra[:5]}"
            )
        raise UpdateRejected("tensors are not in the model's parameter order")
    parts = []
    for t, shape in zip(tensors, spec.shapes, strict=True):
        if t.dtype != WIRE_DTYPE:
            raise UpdateRejected(f"tensor {t.name}: dtype {t.dtype!r}, expected {WIRE_DTYPE!r}")
        if tuple(t.shape) != tuple(shape):
            raise UpdateRejected(f"tensor {t.name}: shape {list(t.shape)}, expected {list(shape)}")
        expected = 4 * int(np.prod(shape))
        if len(t.data) != expected:
            raise UpdateRejected(
                f"tensor {t.name}: {len(t.data)} bytes, expected {expected} for shape {list(shape)}"
            )
        parts.append(np.frombuffer(t.data, dtype="<f4"))
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype="<f4")
    return torch.from_numpy(flat.astype(np.float32, copy=True))


def flat_to_tensors(flat: torch.Tensor, spec: ParamSpec) -> list[WireTensor]:
    out = []
    for name, t in spec.split(flat.detach().to(torch.float32).contiguous()).items():
        data = t.numpy().astype("<f4", copy=False).tobytes()
        out.append(WireTensor(name, tuple(t.shape), WIRE_DTYPE, data))
    return out


def check_delta(delta: torch.Tensor, numel: int, max_norm: float | None) -> float:
    """A decoded update: float32, 1-D, ``numel`` long, finite, L2 norm within the bound.
    Returns the norm (logged, so a bound can be chosen from real runs)."""
    if not isinstance(delta, torch.Tensor) or delta.dtype != torch.float32 or delta.dim() != 1:
        raise UpdateRejected("update is not a flat float32 vector")
    if delta.numel() != numel:
        raise UpdateRejected(f"update has {delta.numel()} elements, the model has {numel}")
    if not bool(torch.isfinite(delta).all()):
        bad = int((~torch.isfinite(delta)).sum())
        raise UpdateRejected(f"update has {bad} non-finite values (NaN or inf)")
    norm = float(torch.linalg.vector_norm(delta.to(torch.float64)))
    if max_norm is not None and norm > max_norm:
        raise UpdateRejected(
            f"update L2 norm {norm:.4g} exceeds deploy.max_update_norm = {max_norm:g}"
        )
    return norm


def check_report_fields(num_samples: int, expected_samples: int, loss: float, flops: float) -> None:
    """The scalars beside a delta. num_samples is the update's weight in aggregation, so a
    client may not claim more data than the server knows it holds (its partition, or the
    local data size it declared when it joined, capped by deploy.max_client_samples)."""
    if num_samples != expected_samples:
        raise UpdateRejected(
            f"num_samples {num_samples} differs from the client's data size {expected_samples} "
            "(its partition, or the local size it declared when it joined)"
        )
    if not math.isfinite(flops) or flops < 0:
        raise UpdateRejected(f"footprint flops {flops!r} is not a finite, non-negative number")
    if math.isinf(loss):
        # nan is allowed: a client with no batches has no loss (and a zero delta).
        raise UpdateRejected(f"training loss {loss!r} is infinite")


class ValidatingTransport(TransportWrapper):
    """Wraps a transport so every completed report passes ``check_delta`` before the loop
    sees it; a failing one becomes status ``rejected`` with the reason. ``slice_numel``:
    with sub-models, the length of each width's slice (width -> parameters): a client
    asked for width ``w`` must send a delta of exactly that slice's length."""

    def __init__(
        self,
        inner: ClientTransport,
        numel: int,
        max_norm: float | None,
        slice_numel: Mapping[float, int] | None = None,
    ) -> None:
        super().__init__(inner)
        self.numel = numel
        self.max_norm = max_norm
        self.slice_numel = {1.0: numel, **(slice_numel or {})}

    def _collected(self, batch: list[Completion]) -> list[Completion]:
        return with_reports(
            batch, [self._check(c.report, c.task.instructions.width) for c in batch]
        )

    def _check(self, report: ClientReport, width: float = 1.0) -> ClientReport:
        if report.status != "completed" or report.delta is None:
            return report
        try:
            expected = self._expected_numel(width)
            if width != 1.0 and report.delta.numel() != expected:
                raise UpdateRejected(
                    f"update has {report.delta.numel()} elements, the width-{width:g} slice "
                    f"the client was asked to train has {expected}"
                )
            check_delta(report.delta, expected, self.max_norm)
        except UpdateRejected as exc:
            return report._replace(status="rejected", reason=str(exc), delta=None)
        return report

    def _expected_numel(self, width: float) -> int:
        numel = self.slice_numel.get(width)
        if numel is None:
            raise UpdateRejected(
                f"the client was asked for sub-model width {width}, which this run does not "
                f"train (widths {sorted(self.slice_numel, reverse=True)})"
            )
        return numel
