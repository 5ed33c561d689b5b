"""Output folders and run directories: a writability check, and one writer per run directory.

A training run holds an exclusive `flock` on `<run>/train.lock` (which records its pid and
host) for as long as it runs. The kernel drops the lock when the process dies, so a lock
file left by a killed run never blocks; a live holder makes a second `train` (with
`--resume` or `--force`) stop with one line naming it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import tempfile
from pathlib import Path

LOCK_NAME = "train.lock"


class RunInUseError(RuntimeError):
    """The run directory is locked by another live training process."""


def writable_dir(path: str | Path, what: str) -> Path:
    """Create the folder `path` if needed and check that files can be written in it.

    Args:
        path: the folder.
        what: how to name it in the error, e.g. "generate: output folder".

    Returns:
        `path` as a Path.

    Raises:
        PermissionError: one line naming the folder and the reason (read-only, no permission,
            not a folder, disk full).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"{what} {path} is not writable: {err.strerror or err}") from err
    return path


class RunLock:
    """An exclusive, non-blocking lock on a run directory, held until `release()` (or exit).

    Use as a context manager: `with RunLock(run): ...`.
    """

    def __init__(self, run: Path) -> None:
        self.path = Path(run) / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 256).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise RunInUseError(
                f"run directory {run} is in use by another training process ({holder}); "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def clear_run_dir(run: Path) -> None:
    """Delete everything in `run` except the lock file (held by the caller while it clears)."""
    for child in run.iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def run_contents(run: Path) -> list[Path]:
    """What a run directory holds besides its lock file."""
    return [c for c in run.iterdir() if c.name != LOCK_NAME] if run.is_dir() else []
