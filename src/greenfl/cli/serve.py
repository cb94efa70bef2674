"""``greenfl serve``: the FL server of a real deployment over gRPC. The command parses its
options into a config and calls ``greenfl.deploy.server.serve``; gRPC, torch and the engine
load only when it runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from greenfl.cli.logs import setup_logging
from greenfl.cli.run import AcceptOpt, ConfigArg, QuietOpt, SetOpt
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
        accept_changes: AcceptOpt = False,
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
                help="Print client ID's own token (from --token-file's secret) and exit: "
                "bound to the run in --out (if given), expiring after --token-ttl-days, and "
                "enrolling the client with --device, --network and --region (if given).",
            ),
        ] = None,
        device: Annotated[
            str | None,  # noqa: UP007
            typer.Option("--device", help="--issue-token: enrol the client as this device."),
        ] = None,
        network: Annotated[
            str | None,  # noqa: UP007
            typer.Option("--network", help="--issue-token: enrol the client on this network."),
        ] = None,
        region: Annotated[
            str | None,  # noqa: UP007
            typer.Option("--region", help="--issue-token: enrol the client in this region."),
        ] = None,
        token_ttl_days: Annotated[
            float,
            typer.Option(
                "--token-ttl-days",
                min=0.0,
                max=3650.0,
                help="--issue-token: days the token admits its client (0: no expiry).",
            ),
        ] = 30.0,
        revoke_token: Annotated[
            int | None,  # noqa: UP007
            typer.Option(
                "--revoke-token",
                min=0,
                max=2**63 - 1,
                help="Revoke client ID's tokens issued until now for the run in --out (a "
                "running server refuses them at once) and exit; issue it a new one to readmit.",
            ),
        ] = None,
    ) -> None:
        """Run the FL server: wait for clients (greenfl join), run the configured rounds,
        write ledger.sqlite and summary.json like a simulated run."""
        from greenfl.cli.lifecycle import accept_before_resume, reported_interrupt, resolve_config
        from greenfl.cli.run import default_out_dir, write_report_after_run
        from greenfl.core.files import check_out_dir
        from greenfl.deploy.security import REVOCATION_FILE, read_tls, read_token, run_id_of
        from greenfl.deploy.security import revoke_token as revoke_token_in
        from greenfl.deploy.server.serve import prepare_out_dir

        if issue_token is not None:
            enrol = (device, network, region)
            _issue(issue_token, token_file, config, set_ or [], out, enrol, token_ttl_days)
            return
        if any(v is not None for v in (device, network, region)):
            raise ConfigError("--device, --network and --region go with --issue-token")
        if revoke_token is not None:
            if out is None:
                raise ConfigError("--revoke-token needs --out, the folder of the run")
            check_out_dir(out)
            at = revoke_token_in(out, revoke_token)
            print(
                f"revoked client {revoke_token}'s tokens issued until "
                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(at))} "
                f"({out / REVOCATION_FILE})",
                file=sys.stderr,
            )
            return

        if out is None:
            if resume:
                raise ConfigError("--resume needs --out, the folder of the run to continue")
            out = default_out_dir()
        check_out_dir(out)
        if accept_changes:
            if not resume:
                raise ConfigError("--accept-changes goes with --resume")
            accept_before_resume(out)
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
        # Made and write-tested before anything is written into it (the run id below): a
        # read-only disk is then "--out DIR: cannot write there: ...", in one line.
        prepare_out_dir(out)
        # Tokens admit to this run only, and the run's revocation list is read at each join.
        bound: dict[str, Any] = {}
        if not cfg.deploy.run_id:
            bound["deploy.run_id"] = run_id_of(out)
        if cfg.deploy.revocation_file is None:
            bound["deploy.revocation_file"] = str(out / REVOCATION_FILE)
        if bound:
            cfg = cfg.replace(**bound)
        token = read_token(token_file)
        tls = read_tls(tls_cert, tls_key)
        if token is not None and tls is None:
            print(
                "greenfl serve: WARNING: tokens without TLS (--tls-cert, --tls-key) cross the "
                "network in clear text, where anyone on the path can read and reuse them; "
                "see docs/trust.md",
                file=sys.stderr,
                flush=True,
            )
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


def _issue(
    client_id: int,
    token_file: Path | None,
    config: Path | None,
    overrides: list[str],
    out: Path | None,
    enrol: tuple[str | None, str | None, str | None],
    ttl_days: float,
) -> None:
    """``--issue-token``: print client ``client_id``'s token, bound to the run in ``out``
    (none: any run of the secret, said on stderr), enrolling it with ``enrol``'s device,
    network and region when given (all three, checked against CONFIG's fleet)."""
    from greenfl.cli.lifecycle import resolve_config
    from greenfl.core.files import check_out_dir
    from greenfl.deploy.security import TokenClaims, issue_token, read_token, run_id_of

    secret = read_token(token_file)
    if secret is None:
        raise ConfigError("--issue-token needs --token-file, the server's secret")
    given = [v for v in enrol if v is not None]
    if given and len(given) != 3:
        raise ConfigError("--issue-token enrols a client with all of --device, --network, --region")
    if config is not None:
        cfg = resolve_config(config, overrides, Path("."), False)
        clients = cfg.data.num_clients
        if client_id >= clients:  # ids beyond the run's population admit nobody
            raise ConfigError(
                f"--issue-token {client_id}: client ids of this run "
                f"are 0..{clients - 1} (data.num_clients = {clients})"
            )
        if given:
            from greenfl.deploy.server.enrolment import entry_of
            from greenfl.fleet.catalog import load_fleet

            entry_of(load_fleet(cfg.fleet.catalog), *given, "--issue-token")  # type: ignore[arg-type]
    run_id = ""
    if out is not None:
        check_out_dir(out)
        run_id = run_id_of(out)
    now = time.time()
    device, network, region = (v or "" for v in enrol)
    claims = TokenClaims(
        client_id=client_id,
        run_id=run_id,
        issued_at=now,
        expires_at=now + ttl_days * 86_400 if ttl_days > 0 else 0.0,
        device=device,
        network=network,
        region=region,
    )
    print(issue_token(secret, claims))
    if not run_id:
        print(
            "greenfl serve: note: this token is bound to no run (give --out RUN_DIR to bind "
            "it to that run only)",
            file=sys.stderr,
        )
