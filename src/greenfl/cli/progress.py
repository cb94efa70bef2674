"""Progress of a ``greenfl run``: on a terminal, a bar of rounds with the current round's
clients and local steps beside it; elsewhere (a log file, a pipe, CI), plain lines, one per
round and one every few seconds inside a long round, each flushed as it is written."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from greenfl.clients.transport import FitProgress
    from greenfl.engine.records import RoundRecord

PLAIN_EVERY_S = 5.0  # seconds between plain progress lines inside a round


def round_line(rec: RoundRecord) -> str:
    """One round's figures, as both displays show them."""
    from greenfl.report.headline import format_carbon, format_energy

    return (
        f"acc {rec.accuracy:.4f}  loss {rec.loss:.4f}  "
        f"{format_energy(rec.cum_energy_j)}  {format_carbon(rec.cum_carbon_g)}"
    )


def within_round(p: FitProgress) -> str:
    steps = f", {p.steps_done} local steps" if p.steps_done else ""
    return f"clients {p.clients_done}/{p.clients}{steps}"


class PlainProgress:
    """Lines on ``out``: each round's end, and the current round's progress at most every
    ``every_s`` seconds."""

    def __init__(self, rounds: int, out: TextIO, every_s: float = PLAIN_EVERY_S) -> None:
        self.rounds = rounds
        self.out = out
        self.every_s = every_s
        self.round = 1
        self.started = self.last = time.monotonic()

    def on_progress(self, p: FitProgress) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            elapsed = now - self.started
            self._write(f"round {self.round}/{self.rounds}: {within_round(p)} ({elapsed:.0f} s)")

    def on_round(self, rec: RoundRecord) -> None:
        self._write(f"round {rec.round}/{self.rounds}: {round_line(rec)}")
        self.round = rec.round + 1
        self.started = self.last = time.monotonic()

    def _write(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class BarProgress:
    """A rich progress bar of rounds; its text shows the last round's figures, then the
    current round's clients and steps as they come."""

    def __init__(self, rounds: int, console: Console, done: int = 0) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]round {task.completed:.0f}/{task.total:.0f}"),
            BarColumn(),
            TextColumn("{task.fields[metrics]}"),
            TextColumn("{task.fields[inside]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task(
            "rounds", total=rounds, completed=done, metrics="starting...", inside=""
        )

    def on_progress(self, p: FitProgress) -> None:
        self.progress.update(self.task, inside=f"[dim]{within_round(p)}")

    def on_round(self, rec: RoundRecord) -> None:
        self.progress.update(self.task, completed=rec.round, metrics=round_line(rec), inside="")

    def __enter__(self) -> BarProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)
