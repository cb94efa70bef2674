"""``greenfl export-partition``: write partition N of a configured dataset as a local data
directory, the format ``greenfl join --data-dir`` reads (demos; real clients bring their own)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from greenfl.cli.run import ConfigArg, SetOpt


def register(app: typer.Typer) -> None:
    @app.command("export-partition")
    def export_partition_cmd(
        config: ConfigArg = None,
        set_: SetOpt = None,
        client_id: Annotated[
            int, typer.Option("--client-id", min=0, help="Which partition to write.")
        ] = 0,
        out: Annotated[Path, typer.Option("--out", help="Directory to write.")] = Path("data"),
        test: Annotated[
            bool,
            typer.Option("--test/--no-test", help="Also write the held-out set as test.npz."),
        ] = True,
    ) -> None:
        """Write DIR/data.npz (x, y: partition N of the config's dataset) and DIR/test.npz
        (the held-out set), for `greenfl join --data-dir DIR`."""
        from greenfl.config import load_config
        from greenfl.core.errors import ConfigError
        from greenfl.core.files import check_out_dir
        from greenfl.data.local_dir import write_local_dir
        from greenfl.factories import dataset_for

        check_out_dir(out)
        cfg = load_config(config, set_ or [])
        if client_id >= cfg.data.num_clients:
            raise ConfigError(
                f"--client-id {client_id} is out of range 0..{cfg.data.num_clients - 1} "
                f"(data.num_clients = {cfg.data.num_clients})"
            )
        dataset = dataset_for(cfg.data, cfg.seed)
        x, y = dataset.client_data(client_id)
        xt, yt = dataset.test_data() if test else (None, None)
        try:
            write_local_dir(
                out,
                x.numpy(),
                y.numpy(),
                None if xt is None else xt.numpy(),
                None if yt is None else yt.numpy(),
            )
        except OSError as exc:  # a read-only or full disk, a folder we may not write
            where = exc.filename or out
            raise ConfigError(f"--out {out}: cannot write {where}: {exc.strerror or exc}") from None
        held = f" and {out / 'test.npz'} ({len(yt)} samples)" if yt is not None else ""
        typer.echo(
            f"wrote {out / 'data.npz'} ({len(y)} samples of {cfg.data.dataset} partition "
            f"{client_id}, x {list(x.shape)}){held}"
        )
