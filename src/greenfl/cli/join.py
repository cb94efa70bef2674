"""``greenfl join``: a real client of a ``greenfl serve`` run. The command parses its options
and runs ``greenfl.deploy.client.FederatedClient``; gRPC and torch load only when it runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from greenfl.cli.logs import setup_logging
from greenfl.cli.run import QuietOpt

PathOpt = Path | None  # noqa: UP007 - typer needs Optional on 3.10

JOIN_HELP = """Join a `greenfl serve` run as client N: train each time the server asks, and
report the update and the measured (or modelled) energy.

Data: without --data-dir the client trains on partition N of the run's configured dataset
(demos and tests: every client can rebuild it from the config). With --data-dir DIR it
trains on its own data: DIR/data.npz holding arrays x (float or integer, shape
[samples, features...]) and y (integer labels), and optionally DIR/test.npz (the same
arrays; the client then prints the global model's accuracy on it each round); or x.npy +
y.npy (x_test.npy + y_test.npy). Write one with np.savez("DIR/data.npz", x=x, y=y), or
`greenfl export-partition`. The files are checked before connecting (readable, numeric,
non-empty, finite, one label >= 0 per sample); the feature shape and the label range are
checked against the run's model as soon as the server has sent it, before any training.
Any problem: one line `error: ...` naming the file, exit 2. The update's weight in FedAvg is
the local number of samples.

Energy (--meter): auto = RAPL counters where readable, else codecarbon where installed,
else none (the server models the energy from the device profile, estimated = 1)."""


def register(app: typer.Typer) -> None:
    @app.command("join", help=JOIN_HELP)
    def join_cmd(
        server: Annotated[str, typer.Option("--server", help="The server's HOST:PORT.")],
        client_id: Annotated[
            int,
            typer.Option(
                "--client-id",
                min=0,
                help="This client's id, below data.num_clients (and its partition, "
                "without --data-dir).",
            ),
        ],
        token_file: Annotated[
            PathOpt,
            typer.Option(
                "--token-file",
                help="File holding this client's own token, issued for its id by the "
                "operator (greenfl serve --issue-token ID); with deploy.auth = 'shared', "
                "the run's shared token.",
            ),
        ] = None,
        device: Annotated[
            str, typer.Option("--device", help="Device profile of the server's fleet to use.")
        ] = "",
        data_dir: Annotated[
            PathOpt,
            typer.Option(
                "--data-dir",
                help="Train on this directory's data.npz (x, y) [+ test.npz] instead of "
                "partition N of the run's dataset.",
            ),
        ] = None,
        meter: Annotated[
            str,
            typer.Option(
                "--meter",
                help="Energy meter: auto | rapl | codecarbon | none (none: modelled, estimated).",
            ),
        ] = "auto",
        ca_cert: Annotated[
            PathOpt, typer.Option("--ca-cert", help="Use TLS, trusting this PEM certificate.")
        ] = None,
        tls_server_name: Annotated[
            str | None,  # noqa: UP007
            typer.Option("--tls-server-name", help="Name to check the certificate against."),
        ] = None,
        retry_for_s: Annotated[
            float,
            typer.Option(
                "--retry-for-s", min=0.0, help="Give up after the server is unreachable this long."
            ),
        ] = 120.0,
        test_delay_s: Annotated[
            float,
            typer.Option(
                "--test-delay-s",
                min=0.0,
                hidden=True,  # tests and demos: a slow device, to see a round close early
                help="Sleep this long in each task, as a slow device would.",
            ),
        ] = 0.0,
        quiet: QuietOpt = False,
        attack: Annotated[
            str,
            typer.Option(
                "--attack",
                help="Test client: mount an attack (sign_flip, scaling, noise, label_flip, "
                "backdoor) against the server, to test its defences.",
            ),
        ] = "none",
        attack_scale: Annotated[
            float | None,  # noqa: UP007
            typer.Option("--attack-scale", min=0.0, help="The attack's scale ([attack] scale)."),
        ] = None,
        backdoor_target: Annotated[
            int, typer.Option("--backdoor-target", min=0, help="backdoor: the forced label.")
        ] = 0,
    ) -> None:
        # The client names each failure itself, in one line; gRPC's own C-level log lines
        # (a failed handshake, a refused connection) would add more. GRPC_VERBOSITY=ERROR
        # in the environment shows them again. Set before gRPC is first imported.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        from greenfl.data.local_dir import LocalDirDataset
        from greenfl.deploy.client import ClientAttack, ClientOptions, FederatedClient
        from greenfl.deploy.client.diagnose import check_ca, check_server_address
        from greenfl.deploy.security import read_ca, read_token
        from greenfl.footprint.meters import describe_meter, make_meter

        setup_logging(quiet)
        # Everything that can be checked locally is checked before connecting.
        check_server_address(server)
        ca_pem = read_ca(ca_cert)
        if ca_pem is not None:
            check_ca(ca_pem, f"--ca-cert {ca_cert}")
        data = LocalDirDataset.load(data_dir) if data_dir is not None else None
        energy_meter = make_meter(meter)
        opts = ClientOptions(
            server=server,
            client_id=client_id,
            token=read_token(token_file) or "",
            device=device,
            ca_cert_pem=ca_pem,
            tls_server_name=tls_server_name,
            retry_for_s=retry_for_s,
            test_delay_s=test_delay_s,
            attack=ClientAttack(attack, attack_scale, backdoor_target),
        )
        if not quiet:
            print(f"meter: {describe_meter(energy_meter)}", file=sys.stderr)
        if data is not None and not quiet:
            test = f", test {len(data.test.y)}" if data.test is not None else ""
            print(
                f"local data {data.train.source}: {len(data.train.y)} samples, "
                f"features {list(data.input_shape)}{test}",
                file=sys.stderr,
            )

        def on_round(row: dict[str, object]) -> None:
            if quiet:
                return
            energy = row["energy_j"]
            e = "estimated"
            if isinstance(energy, float):
                kind = "modelled" if row["estimated"] else "measured"
                e = f"{energy:.3g} J ({energy_meter.name}, {kind})"
            acc = row.get("local_test_accuracy")
            width = row.get("width", 1.0)
            sub = f", sub-model width {width:g}" if isinstance(width, float) and width != 1 else ""
            trained = "its sub-model" if sub else "global model"
            local = f", {trained} on local test {acc:.4f}" if isinstance(acc, float) else ""
            print(
                f"round {row['round']}{sub}: {row['num_samples']} samples, "
                f"loss {row['loss']:.4f}, "
                f"{row['compute_s']:.3f} s, energy {e}, "
                f"down {row['bytes_down']} B, up {row['bytes_up']} B{local}",
                file=sys.stderr,
                flush=True,
            )

        stats = FederatedClient(opts, energy_meter, on_round, data).run()
        if not quiet:
            print(
                f"done: {stats.rounds} rounds ({stats.rejected} not accepted, "
                f"{stats.withdrawn} withdrawn), "
                f"{stats.bytes_down} B down, {stats.bytes_up} B up, {stats.compute_s:.3f} s "
                f"training, {stats.reconnects} reconnects; server: {stats.shutdown_reason}",
                file=sys.stderr,
            )
