"""``greenfl join``: a real client of a ``greenfl serve`` run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from greenfl.cli.logs import setup_logging
from greenfl.cli.run import QuietOpt

PathOpt = Path | None  # noqa: UP007 - typer needs Optional on 3.10


def register(app: typer.Typer) -> None:
    @app.command("join")
    def join_cmd(
        server: Annotated[str, typer.Option("--server", help="The server's HOST:PORT.")],
        client_id: Annotated[
            int, typer.Option("--client-id", min=0, help="Which client (data partition) this is.")
        ],
        token_file: Annotated[
            PathOpt, typer.Option("--token-file", help="File holding the shared token.")
        ] = None,
        device: Annotated[
            str, typer.Option("--device", help="Device profile of the server's fleet to use.")
        ] = "",
        ca_cert: Annotated[
            PathOpt, typer.Option("--ca-cert", help="Use TLS, trusting this PEM certificate.")
        ] = None,
        tls_server_name: Annotated[
            str | None,  # noqa: UP007
            typer.Option("--tls-server-name", help="Name to check the certificate against."),
        ] = None,
        retry_for_s: Annotated[
            float, typer.Option("--retry-for-s", help="Give up after this long unreachable.")
        ] = 600.0,
        quiet: QuietOpt = False,
    ) -> None:
        """Join a server as client N: train on partition N of the run's dataset each time the
        server asks, report the update and the measured (or modelled) footprint."""
        from greenfl.footprint.meters import best_meter
        from greenfl.transport.client import ClientOptions, FederatedClient
        from greenfl.transport.security import read_ca, read_token

        setup_logging(quiet)
        opts = ClientOptions(
            server=server,
            client_id=client_id,
            token=read_token(token_file) or "",
            device=device,
            ca_cert_pem=read_ca(ca_cert),
            tls_server_name=tls_server_name,
            retry_for_s=retry_for_s,
        )
        meter = best_meter()

        def on_round(row: dict[str, object]) -> None:
            if quiet:
                return
            energy = row["energy_j"]
            e = f"{energy:.3g} J ({meter.name})" if isinstance(energy, float) else "estimated"
            print(
                f"round {row['round']}: {row['num_samples']} samples, loss {row['loss']:.4f}, "
                f"{row['compute_s']:.3f} s, energy {e}, "
                f"down {row['bytes_down']} B, up {row['bytes_up']} B",
                file=sys.stderr,
                flush=True,
            )

        stats = FederatedClient(opts, meter, on_round).run()
        if not quiet:
            print(
                f"done: {stats.rounds} rounds ({stats.rejected} not accepted), "
                f"{stats.bytes_down} B down, {stats.bytes_up} B up, {stats.compute_s:.3f} s "
                f"training, {stats.reconnects} reconnects; server: {stats.shutdown_reason}",
                file=sys.stderr,
            )
