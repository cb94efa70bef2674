"""``greenfl serve``: the FL server of a real deployment over gRPC. The command parses its
options into a config and calls ``greenfl.deploy.server.serve``; gRPC, torch and the engine
load only when it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from greenfl.cli.logs import setup_logging
from greenfl.cli.run import ConfigArg, QuietOpt, SetOpt
from greenfl.core.errors import ConfigError

__all__ = ["register"]

PathOpt = Path | None  # noqa: UP007 - typer needs Optional on 3.10


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
            PathOpt,
            typer.Option(
                "--token-file",
                help="File holding the server's secret: each client's own token is derived "
                "from it (--issue-token ID); with deploy.auth = shared, the one shared token.",
            ),
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
        secagg: Annotated[
            bool,
            typer.Option(
                "--secagg",
                help="Secure aggregation: the server learns only the sum of the updates "
                "(as --set secagg.enabled=true).",
            ),
        ] = False,
        secagg_neighbours: Annotated[
            int | None,  # noqa: UP007
            typer.Option(
                "--secagg-neighbours",
                min=2,
                help="SecAgg+: mask with K neighbours (as --set secagg.neighbours=K).",
            ),
        ] = None,
        secagg_threshold: Annotated[
            int | None,  # noqa: UP007
            typer.Option(
                "--secagg-threshold",
                min=1,
                help="Shares that rebuild a secret (as --set secagg.threshold=T).",
            ),
        ] = None,
        secagg_clip: Annotated[
            float | None,  # noqa: UP007
            typer.Option(
                "--secagg-clip",
                min=0.0,
                help="Clip each weighted update value to +-C (as --set secagg.clip_range=C).",
            ),
        ] = None,
        issue_token: Annotated[
            int | None,  # noqa: UP007
            typer.Option(
                "--issue-token",
                min=0,
                max=2**63 - 1,  # a client id travels as int64
                help="Print client ID's own token (from --token-file's secret) and exit.",
            ),
        ] = None,
    ) -> None:
        """Run the FL server: wait for clients (greenfl join), run the configured rounds,
        write ledger.sqlite and summary.json like a simulated run."""
        from greenfl.cli.lifecycle import reported_interrupt, resolve_config
        from greenfl.cli.run import default_out_dir, write_report_after_run
        from greenfl.core.files import check_out_dir
        from greenfl.deploy.security import client_token, read_tls, read_token

        if issue_token is not None:
            secret = read_token(token_file)
            if secret is None:
                raise ConfigError("--issue-token needs --token-file, the server's secret")
            if config is not None:  # ids beyond the run's population admit nobody
                clients = resolve_config(config, set_ or [], Path("."), False).data.num_clients
                if issue_token >= clients:
                    raise ConfigError(
                        f"--issue-token {issue_token}: client ids of this run "
                        f"are 0..{clients - 1} (data.num_clients = {clients})"
                    )
            print(client_token(secret, issue_token))
            return

        if out is None:
            if resume:
                raise ConfigError("--resume needs --out, the folder of the run to continue")
            out = default_out_dir()
        check_out_dir(out)
        cfg = resolve_config(config, set_ or [], out, resume)
        flags: dict[str, Any] = {
            "deploy.min_clients": min_clients,
            "secagg.enabled": True if secagg else None,
            "secagg.neighbours": secagg_neighbours,
            "secagg.threshold": secagg_threshold,
            "secagg.clip_range": secagg_clip,
        }
        if any(v is not None for v in flags.values()):
            cfg = cfg.replace(**{k: v for k, v in flags.items() if v is not None})
        token = read_token(token_file)
        tls = read_tls(tls_cert, tls_key)
        out.mkdir(parents=True, exist_ok=True)
        setup_logging(quiet, out / "server.log")

        from greenfl.deploy.server import serve

        def listening(host: str, port: int) -> None:
            # One parseable line, so scripts can find a port chosen with :0.
            print(f"greenfl serve: listening on {host}:{port}", file=sys.stderr, flush=True)

        with reported_interrupt():
            result = serve(
                cfg,
                out,
                address=address,
                token=token,
                tls=tls,
                overwrite=force,
                resume=resume,
                on_listening=listening,
            )
        report = write_report_after_run(cfg, out) if cfg.engine.accounting else None
        if not quiet:
            print(json.dumps(result.summary, indent=2))
            extra = ", report.html" if report else ""
            print(
                f"wrote {out}/ledger.sqlite, summary.json, config.json, server.log{extra}",
                file=sys.stderr,
            )
            if report is not None:
                print(f"open {report} in a browser for the full report", file=sys.stderr)
