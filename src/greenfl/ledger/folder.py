"""A run folder's ownership: one run at a time holds its lock, and replacing an earlier run
(``--force``) happens only once the new one has validated everything, under that lock.

The lock is an advisory ``flock`` on ``.greenfl.lock`` in the folder, held for the life of
the run's process: the kernel drops it when the process dies however it dies, so a killed
run never leaves a stale lock behind, and a second start into the same folder (or a
``--force`` onto a live run or server) fails at once instead of corrupting the ledger."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from greenfl.core.errors import ConfigError

LOCK_FILE = ".greenfl.lock"
# (-reserve: space the writer holds back to mark a run failed on a full disk)
LEDGER_FILES = ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm", "ledger.sqlite-reserve")
# Everything a run writes beside its ledger: stale once the ledger is replaced.
RUN_OUTPUTS = (*LEDGER_FILES, "summary.json", "config.json", "report.html", "centralised.json")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, the folder is not locked
    fcntl = None  # type: ignore[assignment]


_HELD: dict[Path, FolderLock] = {}


def claim_folder(folder: Path) -> FolderLock:
    """The lock on ``folder`` for this run. Within one process the lock is shared and
    counted (a test, or a notebook, that resumes a run it built itself); between processes
    it is exclusive."""
    key = folder.resolve()
    held = _HELD.get(key)
    if held is None:
        held = _HELD[key] = FolderLock(folder)
    held.users += 1
    return held


class FolderLock:
    """The exclusive lock on a run folder: ``release`` once per ``claim_folder`` (or the
    process's exit) frees it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.users = 0
        self._fd: int | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"--out {folder}: cannot write there: {exc.strerror or exc}"
            ) from None
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(self._fd)
            os.close(self._fd)
            self._fd = None
            raise ConfigError(
                f"--out {folder} is in use by another greenfl run{holder}; wait for it to "
                "end, or choose another folder"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())

    def release(self) -> None:
        self.users -= 1
        if self.users > 0 or self._fd is None:
            return
        _HELD.pop(self.folder.resolve(), None)
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def replace_previous_run(folder: Path) -> None:
    """(lock held, new run validated) Remove the earlier run's files. They are first moved
    aside into one folder, each by an atomic rename, so a crash part-way leaves either the
    old file or nothing under its name, never a half-deleted ledger beside a new one."""
    present = [folder / n for n in RUN_OUTPUTS if (folder / n).exists()]
    if not present:
        return
    aside = folder / f".replaced-{os.getpid()}"
    aside.mkdir(exist_ok=True)
    for p in present:
        os.replace(p, aside / p.name)
    shutil.rmtree(aside, ignore_errors=True)
