"""``greenfl verify RUN_DIR``: check a run's ledger (its hash chain, its recorded config and
fleet) and the fleet file and traces it read, and print the run's digest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunArg = Annotated[Path, typer.Argument(help="The run folder (holding ledger.sqlite).")]


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_cmd(run: RunArg) -> None:
        """Check a run's ledger and inputs: print its digest (exit 0), or the first thing
        changed since it was written (exit 2)."""
        from greenfl.ledger.integrity import verify_note, verify_run

        typer.echo(verify_run(run))
        # a run that verifies but has not ended says so, on stderr: the digest stays alone
        # on stdout, and the exit stays 0 (not an edit)
        note = verify_note(run)
        if note:
            typer.echo(f"note: {note}", err=True)
