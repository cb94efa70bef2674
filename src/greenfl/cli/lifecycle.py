"""What ``greenfl run`` and ``greenfl serve`` share around the run session: the config on
--resume, the output folder's checks, and the one line printed when a run is interrupted."""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from greenfl.core.files import check_out_dir

if TYPE_CHECKING:  # the engine and the config load torch: imported when used
    from greenfl.config import RunConfig
    from greenfl.engine.session import RunInterrupted

__all__ = ["Interrupted", "check_out_dir", "interrupted_line", "reported_interrupt"]
__all__ += ["accept_before_resume", "ledger_rounds", "resolve_config"]


def ledger_path(out_dir: Path) -> Path:
    return out_dir / "ledger.sqlite"


class Interrupted(Exception):  # noqa: N818 - it names what happened, like KeyboardInterrupt
    """A RunInterrupted carried past typer, which turns any KeyboardInterrupt into a silent
    exit 130: greenfl.cli.main prints the resume hint for this one."""

    def __init__(self, run: RunInterrupted) -> None:
        super().__init__(str(run))
        self.run = run


@contextmanager
def reported_interrupt() -> Iterator[None]:
    from greenfl.engine.session import RunInterrupted

    try:
        yield
    except RunInterrupted as exc:
        raise Interrupted(exc) from None


def resolve_config(config: Path | None, overrides: list[str], out: Path, resume: bool) -> RunConfig:
    """A fresh run's config, or on --resume the stored one: ``--set deploy.*`` applies to it,
    a CONFIG given too must agree with it but for its ``deploy`` section (which may change
    between restarts); anything else is refused naming the keys (greenfl.config.load)."""
    from greenfl.config import load_config
    from greenfl.config.load import resumed_config

    if not resume:
        return load_config(config, overrides)
    return resumed_config(out, config, overrides)


def resume_command(argv: Sequence[str], out_dir: Path) -> str:
    """The command line that continues the run: the same one, with --resume and --out
    (the default folder was chosen at start) and without --force (it would start over)."""
    args = [a for a in argv if a != "--force"]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(out_dir)]
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["greenfl", *args])


def interrupted_line(exc: RunInterrupted, argv: Sequence[str]) -> str:
    """One line: what was kept, and how to go on. The rounds named are the ones the ledger
    holds, read back from it: the loop's own count can be ahead of what was committed."""
    if exc.out_dir is None:
        return f"interrupted after {exc.rounds_done} rounds (no --out: nothing kept)"
    path = ledger_path(exc.out_dir)
    held = ledger_rounds(path)
    if held is None:  # unreadable: say what the loop knew, and that it is unconfirmed
        kept = f"rounds 1-{exc.rounds_done} (not confirmed in the ledger)"
        status = None
    else:
        count, last, status = held
        kept = "no round yet" if not count else _span(count, last)
    note = "" if status in (None, "interrupted") else f" (the ledger says {status!r})"
    return (
        f"interrupted: {kept} kept in {path}{note}; "
        f"resume with: {resume_command(argv, exc.out_dir)}"
    )


def _span(count: int, last: int) -> str:
    if count == last:  # the usual case, in the form scripts parse
        return f"rounds 1-{last}"
    return f"{count} rounds (the last {last})"


def ledger_rounds(path: Path) -> tuple[int, int, str | None] | None:
    """(rounds, last round, run status) as the ledger at ``path`` holds them, or None if it
    cannot be read."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            count, last = conn.execute("SELECT COUNT(*), MAX(round) FROM rounds").fetchone()
            row = conn.execute("SELECT status FROM runs WHERE run_id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return int(count), int(last or 0), (row[0] if row is not None else None)


def accept_before_resume(out_dir: Path) -> None:
    """``--accept-changes``: record in the ledger what changed since the run started (the
    ledger's rows, its fleet file, traces, code) and say so on stderr, so that the resume
    that follows goes on (greenfl.ledger.integrity.check_for_resume)."""
    import sys

    from greenfl.ledger.integrity import check_for_resume

    # First what no acceptance lets through, so that a resume refused for it records no
    # change in the ledger (it would otherwise stand accepted, and verify, with the NaN
    # model the resume then refused).
    _check_saved_state(out_dir)
    for line in check_for_resume(out_dir, accept=True):
        print(f"accepted and recorded in the ledger: {line}", file=sys.stderr)


def _check_saved_state(out_dir: Path) -> None:
    """A LedgerError, in one line, if the state the run would resume from must never be
    resumed (a model with NaN or infinite weights, a random-generator state numpy refuses:
    greenfl.engine.snapshot.check_snapshot); nothing where there is no ledger or no state
    (the resume itself then says why)."""
    import sqlite3

    from greenfl.engine.resume import STATE_KEY
    from greenfl.engine.snapshot import check_snapshot

    path = ledger_path(out_dir)
    if not path.is_file():
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT value FROM server_state WHERE key = ?", (STATE_KEY,)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return  # not a ledger it can read: check_for_resume names that
    if row is not None:
        check_snapshot(bytes(row[0]))
