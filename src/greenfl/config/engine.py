"""The ``[engine]`` section: how the simulation runs (trainer, threads, backend, ledger
batching) and whether it accounts the footprint."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from greenfl.config.base import Section


class EngineConfig(Section):
    key = "engine"
    moved = {"vectorised_threads": "threads"}

    mode: Literal["sync", "async"] = Field(
        "sync",
        description="sync: rounds of a cohort each; async: clients train continuously from "
        "the model current at their dispatch and the server applies their updates as they "
        "arrive ([async], strategy fedbuff or fedasync; docs/async.md)",
    )
    trainer: Literal["auto", "sequential", "vectorised"] = Field(
        "auto",
        description="auto: vectorised for supported models of <= 1M parameters and cohorts "
        "of >= 8 clients",
    )
    threads: Literal["auto"] | Annotated[int, Field(ge=0, le=1024)] = Field(
        "auto",
        description="torch's intra-op threads for every trainer and evaluator of the run "
        "(0: torch's default, all cores). auto: 1 for models of up to 1M parameters (a "
        "client's small batches gain little from more threads, and more threads collapse "
        "when the machine is shared), else the cores this process may use, at most 4 "
        "(docs/performance.md); the ledger records the number used",
    )
    backend: Literal["local", "ray"] = Field(
        "local", description="local (this process) or ray (a Ray cluster)"
    )
    ray_address: str | None = Field(None, description="an existing Ray cluster; none: local Ray")
    checkpoint: bool = Field(True, description="persist server state with each round's rows")
    server_meter: Literal["model", "measured"] = Field(
        "model",
        description="simulation: the server's time from its counted FLOPs (model: repeatable) "
        "or measured on this host (varies with its load; flagged server_measured in the "
        "ledger); a deployment always measures",
    )
    accounting: bool = Field(
        True, description="footprint accounting and ledger rows; off only to measure overhead"
    )
    ledger_batch_s: float = Field(
        0.25,
        ge=0,
        description="simulation: hand rounds to the ledger writer at most this often (wall s); "
        "a crash loses at most this much, which a resumed run re-runs; 0 = every round",
    )
