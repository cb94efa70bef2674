"""A cohort's account and its ledger columns, shared by the vectorised path and the steady
fast path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from greenfl.accounting.entries import EntryTable
from greenfl.core.messages import ClientReport
from greenfl.ledger.rows import ColumnRows, Constant, Named

BUILTIN_SOURCE = "builtin"  # the ledger's ci_source of a row on the fleet's own figures


@dataclass(frozen=True)
class CohortAccount:
    close_s: float
    status: list[str]  # per report, in report order
    rows: Sequence[dict[str, Any]]
    energy_j: float
    carbon_g: float


# Where each field sits in a report (a named tuple): the cohort's reports are read column by
# column with one zip, not an attribute lookup per field and client.
(
    AT_ID,
    AT_STATUS,
    AT_REASON,
    AT_DELTA,
    AT_SAMPLES,
    AT_FLOPS_DONE,
    AT_UP_B,
    AT_DOWN_B,
    AT_MEASURED_J,
    AT_MEASURED_S,
    AT_MODELLED,
    AT_REPORTED_J,
    AT_SERVER_J,
    AT_DISPUTED,
) = (
    ClientReport._fields.index(name)
    for name in (
        "client_id",
        "status",
        "reason",
        "delta",
        "num_samples",
        "flops",
        "bytes_up",
        "bytes_down",
        "measured_energy_j",
        "measured_compute_s",
        "energy_estimated",
        "reported_energy_j",
        "server_estimate_j",
        "disputed",
    )
)


def client_columns(
    entries: EntryTable,
    e: np.ndarray,
    round_idx: int,
    start_s: float | np.ndarray,
    ids: np.ndarray,
    status: list[str],
    reason: list[str | None],
    samples: np.ndarray,
    flops: np.ndarray,
    bytes_up: np.ndarray,
    bytes_down: np.ndarray,
    compute_s: np.ndarray,
    comm_s: np.ndarray,
    energy_compute_j: np.ndarray,
    energy_comm_j: np.ndarray,
    ci_g_per_kwh: np.ndarray,
    carbon_operational_g: np.ndarray,
    carbon_embodied_g: np.ndarray,
    estimated: np.ndarray | Constant,
    wall_energy_j: np.ndarray,
    energy_network_j: np.ndarray,
    reported_energy_j: Sequence[float | None] | Constant | None = None,
    server_estimate_j: Sequence[float | None] | Constant | None = None,
    ci_source: Mapping[str, str] | None = None,
) -> ColumnRows:
    """A round's ledger rows. Columns stay numpy arrays (names: indices into the table's
    names): the ledger writer packs them as raw bytes and its process makes the Python
    values, not the round loop."""
    n = len(e)
    return ColumnRows(
        {
            "round": Constant(round_idx, n),
            "client_id": ids,
            "device": Named(entries.device, e),
            "network": Named(entries.network, e),
            "region": Named(entries.region, e),
            "target": Named(entries.target, e),
            "status": status,
            "reason": reason,
            "num_samples": samples,
            "flops": flops,
            "start_s": Constant(float(start_s), n)
            if isinstance(start_s, float | int)
            else np.asarray(start_s, dtype=np.float64),
            "compute_s": compute_s,
            "bytes_up": bytes_up,
            "bytes_down": bytes_down,
            "comm_s": comm_s,
            "energy_compute_j": energy_compute_j,
            "energy_comm_j": energy_comm_j,
            "ci_g_per_kwh": ci_g_per_kwh,
            "carbon_operational_g": carbon_operational_g,
            "carbon_embodied_g": carbon_embodied_g,
            "estimated": estimated,
            "wall_energy_j": wall_energy_j,
            "energy_network_j": energy_network_j,
            # deployment only (issue 29): what a client reported, the server's estimate
            "reported_energy_j": Constant(None, n)
            if reported_energy_j is None
            else reported_energy_j,
            "server_estimate_j": Constant(None, n)
            if server_estimate_j is None
            else server_estimate_j,
            # issue 30: a synchronous round's clients all trained from the model after the
            # round before; the async loop sets each update's own (replace_columns)
            "model_version": Constant(round_idx - 1, n),
            "staleness": Constant(0, n),
            # issue 31: the sub-model width each client trained; the round loop sets each
            # client's own when the run trains sub-models
            "width": Constant(1.0, n),
            # issue 31: the arithmetic precision each client trained in (fp32, bf16, fp16):
            # its row's, whose throughput and power priced the round
            "precision": Named(entries.precision, e),
            # issue 31: the share of the model's weights each client trained and sent (1.0:
            # dense); the round loop sets the round's mask's when the run trains sparse
            "density": Constant(1.0, n),
            # issue 32: each row's intensity source, by its region (``ci_source``: region
            # -> source under a live fleet.ci_source; none: the built-in figures)
            "ci_source": Constant(BUILTIN_SOURCE, n)
            if not ci_source
            else Named([ci_source.get(r, BUILTIN_SOURCE) for r in entries.region], e),
        }
    )
