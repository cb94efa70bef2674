"""What ``greenfl run`` and ``greenfl serve`` share around the run session: the config on
--resume, the output folder's checks, and the one line printed when a run is interrupted."""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from greenfl.core.errors import ConfigError
from greenfl.core.files import check_out_dir

if TYPE_CHECKING:  # the engine and the config load torch: imported when used
    from greenfl.config import RunConfig
    from greenfl.engine.session import RunInterrupted

__all__ = ["Interrupted", "check_out_dir", "interrupted_line", "reported_interrupt"]
__all__ += ["resolve_config"]


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
    """A fresh run's config, or on --resume the stored one (a CONFIG given too must agree
    with it, but for the ``deploy`` section, which may change between restarts)."""
    from greenfl.config import load_config, stored_config

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
    """One line: what was kept, and how to go on."""
    if exc.out_dir is None:
        return f"interrupted after {exc.rounds_done} rounds (no --out: nothing kept)"
    kept = f"rounds 1-{exc.rounds_done}" if exc.rounds_done else "no round yet"
    return (
        f"interrupted: {kept} kept in {ledger_path(exc.out_dir)}; "
        f"resume with: {resume_command(argv, exc.out_dir)}"
    )
