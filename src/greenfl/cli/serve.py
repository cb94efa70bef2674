"""``greenfl serve``: the FL server of a real deployment over gRPC."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from greenfl.api import write_outputs
from greenfl.cli.logs import setup_logging
from greenfl.cli.run import ConfigArg, QuietOpt, SetOpt, default_out_dir
from greenfl.config import RunConfig, load_config
from greenfl.core.errors import ConfigError
from greenfl.core.params import ParamSpec
from greenfl.core.units import J_PER_KWH
from greenfl.engine.build import build_loop
from greenfl.engine.records import RoundRecord
from greenfl.engine.resume import ledger_path, stored_config
from greenfl.factories import codec_for

PathOpt = Path | None  # noqa: UP007 - typer needs Optional on 3.10


def resolve_config(config: Path | None, overrides: list[str], out: Path, resume: bool) -> RunConfig:
    """A fresh run's config, or on --resume the stored one (a CONFIG given too must agree
    with it, but for the ``deploy`` section, which may change between restarts)."""
    if not resume:
        return load_config(config, overrides)
    stored = stored_config(out)
    if config is None and not overrides:
        return stored
    given = load_config(config, overrides)
    a, b = stored.to_dict(), given.to_dict()
    a.pop("deploy"), b.pop("deploy")
    if a != b:
        keys = sorted(k for k in a if a[k] != b.get(k))
        raise ConfigError(
            f"--resume: the config differs from the one in {ledger_path(out)} "
            f"(sections {', '.join(keys)}); omit CONFIG to resume with the stored one"
        )
    return stored.replace(**{"deploy": given.deploy.model_dump()})


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        config: ConfigArg = None,
        set_: SetOpt = None,
        address: Annotated[
            str, typer.Option("--address", help="Listen on HOST:PORT (port 0: any free port).")
        ] = "127.0.0.1:50051",
        out: Annotated[PathOpt, typer.Option("--out", help="Output folder.")] = None,
        token_file: Annotated[
            PathOpt, typer.Option("--token-file", help="File holding the clients' shared token.")
        ] = None,
        tls_cert: Annotated[PathOpt, typer.Option("--tls-cert", help="PEM certificate.")] = None,
        tls_key: Annotated[PathOpt, typer.Option("--tls-key", help="PEM private key.")] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue the run in --out after a crash.")
        ] = False,
        min_clients: Annotated[
            int | None,  # noqa: UP007
            typer.Option("--min-clients", min=1, help="Clients to wait for before round 1."),
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Replace a ledger already in --out.")
        ] = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Run the FL server: wait for clients (greenfl join), run the configured rounds,
        write ledger.sqlite and summary.json like a simulated run."""
        from greenfl.deploy.security import read_tls, read_token
        from greenfl.deploy.server import GrpcTransport

        if out is None:
            if resume:
                raise ConfigError("--resume needs --out, the folder of the run to continue")
            out = default_out_dir()
        cfg = resolve_config(config, set_ or [], out, resume)
        if min_clients is not None:
            cfg = cfg.replace(**{"deploy.min_clients": min_clients})
        token = read_token(token_file)
        tls = read_tls(tls_cert, tls_key)
        out.mkdir(parents=True, exist_ok=True)
        setup_logging(quiet, out / "server.log")
        log = logging.getLogger("greenfl.serve")
        if token is None:
            log.warning("no --token-file: any client that can reach %s may join", address)
        transport = GrpcTransport(cfg, codec_for(cfg.compression), address, token, tls)
        loop = build_loop(cfg, out, transport=transport, resume=resume, overwrite=force)
        if resume:
            log.info("resuming after round %d", loop.state.round)
        try:
            model_input = (loop.dataset.input_shape, loop.dataset.num_classes)
            port = transport.start(loop.population, ParamSpec.of(loop.model), model_input)
            host = address.rsplit(":", 1)[0]
            # One parseable line, so scripts can find a port chosen with :0.
            print(f"greenfl serve: listening on {host}:{port}", file=sys.stderr, flush=True)

            def on_round(rec: RoundRecord) -> None:
                log.info(
                    "round %d: acc %.4f loss %.4f, %d/%d clients, %.3g kWh %.3g gCO2e so far",
                    rec.round,
                    rec.accuracy,
                    rec.loss,
                    rec.completed,
                    rec.selected,
                    rec.cum_energy_j / J_PER_KWH,
                    rec.cum_carbon_g,
                )

            reason = loop.run(on_round)
            loop.ledger.finish("completed", reason)
            summary = loop.summary()
        except BaseException:
            loop.ledger.finish("failed", "interrupted")
            # No shutdown message: the clients keep retrying, ready for `serve --resume`.
            transport.stop()
            raise
        transport.close()
        write_outputs(out, cfg, summary)
        loop.ledger.close()
        log.info("run finished: %s", reason)
        if not quiet:
            print(json.dumps(summary, indent=2))
            print(
                f"wrote {out}/ledger.sqlite, summary.json, config.json, server.log", file=sys.stderr
            )
