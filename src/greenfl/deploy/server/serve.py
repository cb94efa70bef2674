"""``serve``: a deployment's run, as ``greenfl.api.run`` is a simulation's. The one module of
``greenfl.deploy`` that reads a RunConfig: it hands the transport and the servicer narrow
settings (``settings_of``), builds the loop through the composition root, runs it in the run
session and returns what ``greenfl.run`` returns."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from greenfl.api import RunResult
from greenfl.compression.base import Codec
from greenfl.config import RunConfig, load_config
from greenfl.config.keys import split_override
from greenfl.core.errors import ConfigError
from greenfl.core.files import check_out_dir
from greenfl.core.params import ParamSpec
from greenfl.core.threads import torch_threads
from greenfl.deploy.security import TlsFiles
from greenfl.deploy.server.async_hub import AsyncTransport
from greenfl.deploy.server.listener import check_certificate, check_listen_address
from greenfl.deploy.server.live_flow import build_async_loop
from greenfl.deploy.server.pending import PendingStore
from greenfl.deploy.server.secagg import SecAggOptions
from greenfl.deploy.server.settings import DeploySettings
from greenfl.deploy.server.transport import GrpcTransport
from greenfl.deploy.widths import WidthSlice, wire_slices
from greenfl.engine.loop import RoundLoop
from greenfl.engine.observers import RoundHook, RoundObserver
from greenfl.engine.records import RoundRecord
from greenfl.engine.session import run_session
from greenfl.factories import build_loop, codec_for
from greenfl.models.flops import training_flops_per_sample
from greenfl.report.headline import format_carbon, format_energy

log = logging.getLogger("greenfl.serve")

MB = 1_000_000

ListeningFn = Callable[[str, int], None]  # (host, bound port), once the server listens


def serve(
    config: RunConfig | str | Path | None,
    out: str | Path,
    *,
    overrides: Sequence[str] = (),
    address: str = "127.0.0.1:50051",
    token: str | None = None,
    tls: TlsFiles | None = None,
    overwrite: bool = False,
    resume: bool = False,
    observers: Sequence[RoundObserver] = (),
    on_round: Callable[[RoundRecord], None] | None = None,
    on_listening: ListeningFn | None = None,
) -> RunResult:
    """Serve one federated run to real clients (``greenfl join``) over gRPC on ``address``
    (port 0: any free one; ``on_listening(host, port)`` hears which) and write its
    ledger.sqlite, config.json and summary.json to ``out``, as ``greenfl.run`` does.

    ``config`` and ``overrides`` as ``greenfl.run`` takes them; the ``deploy`` section sets
    the limits and waits, ``secagg`` turns on secure aggregation. ``token``: the server's
    secret (each client's token derives from it; with deploy.auth = "shared", the one
    token), None to admit any client that can reach the address. ``tls``: the server's
    certificate and key. ``resume`` continues the run in ``out`` after a crash (the
    clients, retrying, find the server again). ``observers`` and ``on_round(record)`` see
    each round; every round is also logged to ``greenfl.serve``.

    Ctrl-C or SIGTERM raise greenfl.engine.session.RunInterrupted after the ledger is
    marked interrupted; the clients are not told, so a resumed server finds them."""
    cfg = _config(config, overrides)
    out_dir = Path(out)
    # Usage errors first, one line each, before a ledger is written or a warning logged.
    prepare_out_dir(out_dir)
    check_listen_address(address)
    if tls is not None:
        check_certificate(tls)
    if token is None:
        log.warning("no --token-file: any client that can reach %s may join", address)
    elif cfg.deploy.auth == "shared":
        log.warning("deploy.auth = 'shared': any token holder may join as any client id")
    secagg = secagg_options(cfg)
    if secagg is not None:
        log.info("secure aggregation on: the server learns only the sum of the updates")
    hooks = [RoundHook(_log_round), *([RoundHook(on_round)] if on_round else [])]
    watchers = [*observers, *hooks]
    transport: GrpcTransport
    # Building (data, model, FLOP counting) on one thread; the run on its own (engine.threads).
    with torch_threads(1):
        if cfg.engine.mode == "async":
            transport, loop = _async_loop(cfg, out_dir, address, token, tls, resume, overwrite,
                                          watchers)  # fmt: skip
        else:
            transport = transport_for(cfg, codec_for(cfg.compression), address, token, tls, secagg)
            loop = build_loop(
                cfg,
                out_dir,
                transport=transport,
                resume=resume,
                overwrite=overwrite,
                observers=watchers,
            )
    if resume:
        log.info("resuming after round %d", loop.state.round)

    def start() -> None:
        model, dataset = loop.parts.model, loop.parts.dataset
        model_input = (dataset.input_shape, dataset.num_classes)
        fps = training_flops_per_sample(model, *model_input, cfg.train.batch_size)
        spec = ParamSpec.of(model)
        # sparse training: the mask the run's MaskedStrategy keeps, which tasks carry
        sparse = loop.parts.costs.sparse
        port = transport.start(loop.population, spec, model_input, fps, _widths_of(loop), sparse)
        if on_listening is not None:
            on_listening(address.rsplit(":", 1)[0], port)

    # Not completed: no shutdown message, the clients keep retrying for --resume.
    result = run_session(loop, cfg.to_dict(), out_dir, start=start, abort=transport.stop)
    log.info("run finished: %s", result.stop_reason)
    return RunResult(cfg, loop.history, result.summary, result.stop_reason, out_dir)


def _widths_of(loop: RoundLoop) -> dict[float, WidthSlice] | None:
    """With sub-models, each width's slice of the loop's model, priced at the run's counted
    width costs (the ones its estimates and width choice use); None without."""
    plan = loop.parts.costs.submodel
    if plan is None:
        return None
    return wire_slices(loop.parts.model, {c.width: c.flops_per_sample for c in plan.costs})


def _async_loop(
    cfg: RunConfig,
    out_dir: Path,
    address: str,
    token: str | None,
    tls: TlsFiles | None,
    resume: bool,
    overwrite: bool,
    observers: Sequence[RoundObserver],
) -> tuple[AsyncTransport, RoundLoop]:
    """Asynchronous serving (``engine.mode = "async"``): its transport, with the run's
    store of accepted updates not yet applied (opened once the run folder is claimed), and
    the async loop whose flow is the deployment's (docs/deployment.md)."""
    transport = AsyncTransport(settings_of(cfg), codec_for(cfg.compression), address, token, tls)
    loop = build_async_loop(
        cfg, out_dir, transport, resume=resume, overwrite=overwrite, observers=observers
    )
    # The norm bound's reference: the last accepted updates, a step's worth or more.
    transport.norm_window = max(loop.rules.buffer_size, min(loop.rules.concurrency, 32))
    transport.attach(PendingStore(out_dir, fresh=not resume))
    return transport, loop


def prepare_out_dir(out: Path) -> None:
    """Make the output folder ``out``, or a ConfigError of one line when it cannot be one
    or cannot be written (a read-only disk, a folder of another user's): not an OSError in
    the middle of starting a run."""
    check_out_dir(out)
    probe = out / ".greenfl-write-test"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None


def settings_of(cfg: RunConfig) -> DeploySettings:
    """What the server side needs of ``cfg``: the deploy section, resolved."""
    d = cfg.deploy
    return DeploySettings(
        seed=cfg.seed,
        config_json=cfg.model_dump_json(by_alias=True),
        round_timeout_s=min(d.round_timeout_s, cfg.fleet.deadline_s or math.inf),
        join_timeout_s=d.join_timeout_s,
        min_clients=d.min_clients,
        early_close=d.early_close,
        keepalive_s=d.keepalive_s,
        max_message_bytes=int(d.max_message_mb * MB),
        max_update_norm=d.max_update_norm,
        max_client_samples=d.max_client_samples,
        per_client_tokens=d.auth == "per_client",
        join_rate_per_s=d.join_rate_per_s,
        plausibility_factor=d.plausibility_factor,
        norm_bound_factor=d.norm_bound_factor,
        sample_bound_factor=d.sample_bound_factor,
        quarantine_rounds=d.quarantine_rounds,
    )


def secagg_options(cfg: RunConfig) -> SecAggOptions | None:
    """How the deployment runs secure aggregation, or None when ``secagg.enabled`` is off."""
    sa = cfg.secagg
    if not sa.enabled:
        return None
    return SecAggOptions(sa.neighbours, sa.threshold, sa.clip_range, sa.stage_timeout_s)


def transport_for(
    cfg: RunConfig,
    codec: Codec,
    address: str,
    token: str | None = None,
    tls: TlsFiles | None = None,
    secagg: SecAggOptions | None = None,
) -> GrpcTransport:
    """A GrpcTransport for ``cfg``'s deployment (not started), for code that drives its own
    loop."""
    return GrpcTransport(settings_of(cfg), codec, address, token, tls, secagg)


def _log_round(rec: RoundRecord) -> None:
    log.info(
        "round %d: acc %.4f loss %.4f, %d/%d clients, %s %s so far",
        rec.round,
        rec.accuracy,
        rec.loss,
        rec.completed,
        rec.selected,
        format_energy(rec.cum_energy_j),
        format_carbon(rec.cum_carbon_g),
    )


def _config(config: RunConfig | str | Path | None, overrides: Sequence[str]) -> RunConfig:
    if isinstance(config, RunConfig):
        return config if not overrides else config.replace(**_pairs(overrides))
    return load_config(config, list(overrides))


def _pairs(overrides: Sequence[str]) -> dict[str, Any]:
    return dict(split_override(o) for o in overrides)
