"""Log set-up of the long-running commands (serve, join)."""

from __future__ import annotations

import logging
from pathlib import Path

_INSTALLED: list[logging.Handler] = []  # the handlers setup_logging added, latest last


def setup_logging(quiet: bool, log_file: Path | None = None) -> None:
    """greenfl's messages on stderr (warnings only with ``quiet``) and, at INFO, in
    ``log_file``: a server's refusals and rejections must be on record either way."""
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    root = logging.getLogger("greenfl")
    root.setLevel(logging.INFO)
    # A second command in the same process (greenfl.cli.main called again, as the tests
    # and notebooks do) replaces the first's handlers: no doubled lines, and none left
    # writing to a stderr or a log file that is gone.
    reset_logging()
    stderr = logging.StreamHandler()
    stderr.setLevel(logging.WARNING if quiet else logging.INFO)
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    _INSTALLED.append(stderr)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
        _INSTALLED.append(file_handler)


def reset_logging() -> None:
    """Remove (and close) the handlers setup_logging added."""
    root = logging.getLogger("greenfl")
    while _INSTALLED:
        handler = _INSTALLED.pop()
        root.removeHandler(handler)
        handler.close()
