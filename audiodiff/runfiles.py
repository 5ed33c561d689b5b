"""Output folders and run directories: a writability check, one writer per run directory, and
what a start may do with what a run directory holds (never lose a run with a checkpoint).

A training run holds an exclusive `flock` on `<run>/train.lock` (which records its pid and
host) for as long as it runs. The kernel drops the lock when the process dies, so a lock
file left by a killed run never blocks; a live holder makes a second `train` (with
`--resume` or `--force`) stop with one line naming it. A generated set's settings.json listing is
set_listing.py's.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import shutil
import socket
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import torch.distributed as dist

from audiodiff.checkpoint import LATEST, TMP, latest_checkpoint, remove_stale_temps
from audiodiff.set_listing import (  # noqa: F401  (moved there; recipes/ and egs/ import them from here)
    set_complete,
    write_set_listing,
)

if TYPE_CHECKING:
    from audiodiff.checkpoint import ResumedPrior

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
        if child.name != LOCK_NAME:
            _remove(child)


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points to) or a folder with what it holds."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


# What a training start writes before its first checkpoint, by folder: train's own file names
# (checkpoint.py's ckpt-*.pt, `latest` and .<name>.tmp-<pid> temps; train's samples/step_<step>/
# folders; SummaryWriter's event files). config.yaml is a file; log.txt is appended to, never removed.
START_FILES = {
    "config.yaml": (),
    "tensorboard": ("events.out.tfevents.*",),
    "samples": ("step_" + "[0-9]" * 8,),
    "checkpoints": ("ckpt-*.pt", LATEST, f".*{TMP}*"),
}


def _start_leftovers(run: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """({START_FILES name: train's files in it (the name itself for config.yaml)}, anything else there)."""
    ours: dict[str, list[Path]] = {}
    other: list[Path] = []
    for name, patterns in START_FILES.items():
        entry = run / name
        if not entry.exists() and not entry.is_symlink():
            continue
        if not patterns or not entry.is_dir():  # config.yaml is train's as a file; a folder's name as a file is not
            (ours.setdefault(name, []) if not patterns and not entry.is_dir() else other).append(entry)
            continue
        ours[name] = []
        for child in sorted(entry.iterdir()):
            # samples/step_* are folders (whatever the task wrote in them); the others are files
            kind_ok = child.is_dir() and not child.is_symlink() if name == "samples" else not child.is_dir()
            mine = kind_ok and any(fnmatch.fnmatchcase(child.name, pattern) for pattern in patterns)
            (ours[name] if mine else other).append(child)
    return ours, other


def clear_failed_start(run: Path, force: bool = False) -> list[str]:
    """Remove what a start that never wrote a checkpoint left in `run`; returns the START_FILES names touched.

    A run directory without a checkpoint holds no work to protect: a data error or a Ctrl-C before
    the first checkpoint must not block the next start. Only train's own files are removed (then
    its emptied folders); log.txt and other files beside them are kept.

    Raises:
        FileExistsError: a START_FILES folder holds a file train does not write (e.g. weights put in
            checkpoints/ for train.init_from), unless `force`, which removes those folders whole.
    """
    ours, other = _start_leftovers(run)
    if other and not force:
        names = ", ".join(p.relative_to(run).as_posix() for p in other[:3]) + (", ..." if len(other) > 3 else "")
        raise FileExistsError(
            f"run directory {run} has no checkpoint but holds {names}, which train does not write; move them "
            f"out of it, or pass --force to replace {', '.join(START_FILES)} whole"
        )
    removed = []
    for name in START_FILES:
        entry = run / name
        if force and (entry.exists() or entry.is_symlink()):
            _remove(entry)
        elif ours.get(name) or (entry.is_dir() and not entry.is_symlink() and not any(entry.iterdir())):
            for path in ours[name]:
                _remove(path)
            if entry.is_dir() and not entry.is_symlink():  # emptied (a linked folder is kept)
                entry.rmdir()
        else:
            continue
        removed.append(name)
    return removed


def prepare_run_dir(run: Path, resume: bool, force: bool, rank: int, auto_resume: bool = False) -> tuple:
    """Lock the run directory (rank 0), check it against resume/force and make checkpoints/.

    A run is protected once it has a checkpoint: starting over it needs --force. A directory
    without one (a start that failed or was stopped before its first checkpoint) is no run: its
    leftovers (train's files among START_FILES) are removed and the start goes ahead; log.txt is
    appended to. Other files there are refused unless `force` (clear_failed_start).
    `auto_resume` resumes when there is a checkpoint and starts otherwise.

    Returns:
        (the held RunLock on rank 0, a no-op context elsewhere; whether the run resumes).
    """
    lock: AbstractContextManager = nullcontext()
    if rank == 0:
        if resume and not auto_resume and not run.is_dir():
            raise FileNotFoundError(f"--resume: no run directory {run}; start it without --resume")
        lock = RunLock(writable_dir(run, "run directory"))
        try:
            latest = latest_checkpoint(run / "checkpoints") if (run / "checkpoints").is_dir() else None
            if resume and not auto_resume and latest is None:
                raise FileNotFoundError(
                    f"--resume: no checkpoint in {run / 'checkpoints'} to resume; start without --resume "
                    "(add --force to replace what the run directory holds)"
                )
            resume = resume and latest is not None
            if not resume and latest is not None:
                if not force:
                    raise FileExistsError(
                        f"run directory {run} holds a run (checkpoint {latest.name}); pass --resume to continue "
                        "it or --force to replace it"
                    )
                clear_run_dir(run)
            elif not resume and (removed := clear_failed_start(run, force)):
                with open(run / "log.txt", "a") as log:
                    log.write(f"no checkpoint: removed {', '.join(removed)} of an earlier start; starting anew\n")
            (run / "checkpoints").mkdir(exist_ok=True)
            remove_stale_temps(run / "checkpoints")
        except BaseException:
            lock.release()
            raise
    if dist.is_initialized():
        dist.barrier()
    if auto_resume and rank != 0:
        resume = latest_checkpoint(run / "checkpoints") is not None
    return lock, resume


# Settings a resume may change without --allow-changes: how long and how often, not what is trained.
RESUME_FREE = (
    "train.steps",
    "train.log_every",
    "train.ckpt_every",
    "train.max_minutes",
    "train.sample_every",
    "train.num_samples",
    "train.keep_ckpts",
    "data.num_workers",
    "train.fast_cpu",  # resolved per machine ("auto" -> on/off): resuming elsewhere may flip it (logged)
)


def keep_prior_align(cfg, resumed: ResumedPrior | None) -> None:
    """A resumed run whose config leaves diffusion.prior.align unset keeps its checkpoint's placement ("hold"
    for a run from before align existed), the one its weights learned, not the "centre" that `audiodiff train`
    records for a new run. `resumed` holds the checkpoint the run resumes from, its stored prior read only
    when needed (`checkpoint.ResumedPrior`); None: a new run."""
    prior = cfg.diffusion.prior
    if prior.kind == "none" or prior.align is not None or resumed is None:
        return
    stored = resumed.prior
    if stored is not None and stored.kind == prior.kind:
        prior.align = stored.align


def resume_changes(stored, cfg, latest: Path, allow: bool) -> list[str]:
    """'key: old -> new' for every setting that differs from the checkpoint's; raises on a
    change outside RESUME_FREE unless `allow`."""
    from audiodiff.config import config_changes

    changes = config_changes(stored, cfg)
    bound = [key for key in changes if key not in RESUME_FREE]
    if bound and not allow:
        listed = ", ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in bound)
        raise ValueError(
            f"--resume: the config changes {listed} of {latest}; pass --allow-changes to continue with "
            "them (recorded in log.txt), or resume with the run's own settings"
        )
    return [f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items()]


def record_resume(run: Path, log, latest: Path, step: int, changes: list[str], text: str) -> None:
    """log.txt gets the resume and its changes; a config.yaml about to change is kept in config_history/."""
    log.write(
        f"step {step}: resumed from {latest.name}" + (f"; changed {'; '.join(changes)}" if changes else "") + "\n"
    )
    log.flush()
    old = run / "config.yaml"
    if old.is_file() and old.read_text() != text:
        (run / "config_history").mkdir(exist_ok=True)
        old.replace(run / "config_history" / f"config.before-step-{step:08d}.yaml")


def run_start(run: Path) -> float | None:
    """When training started: the first TensorBoard event file's creation time (in its name,
    events.out.tfevents.<unix time>.<host>...; a resume adds a later file), else config.yaml's mtime."""
    stamps = []
    for path in (run / "tensorboard").glob("events.out.tfevents.*"):
        stamp = path.name.split(".")[3]
        if stamp.isdigit():
            stamps.append(float(stamp))
    if stamps:
        return min(stamps)
    config = run / "config.yaml"  # rewritten by a resume
    return config.stat().st_mtime if config.is_file() else None


def wall_seconds(start: float | None, ckpt: Path) -> float | None:
    """Seconds from `start` (run_start) to the checkpoint file's write: the wall time of a checkpoint
    written before train recorded train_seconds (idle time between resumes included); None without a start."""
    return None if start is None else round(Path(ckpt).stat().st_mtime - start, 1)


def resumed_time(run: Path, ckpt: Path, state: dict) -> tuple[float, int, str | None, str | None]:
    """The training time a resume from `ckpt` (its loaded `state`) carries on from.

    Returns:
        (train_seconds, pieces: the processes they sum, note: how they were estimated when the
        checkpoint predates train_seconds, kept in later checkpoints; log: a line for log.txt, or None).
        Such a checkpoint's time is the one learning curves gave it: its mtime minus the run's start
        (`wall_seconds`, idle time between earlier resumes included), or 0 without a start. Without
        TensorBoard events the start is config.yaml's mtime, which every start rewrites: the last piece's
        start, so earlier pieces are not counted (and a start after the checkpoint counts 0, not < 0).
    """
    if "train_seconds" in state:
        return float(state["train_seconds"]), int(state.get("train_pieces", 1)), state.get("train_seconds_note"), None
    seconds = wall_seconds(run_start(run), ckpt)
    tail = ""
    if seconds is None or seconds < 0:
        how = "0 (no TensorBoard events or config.yaml to start from, or a config.yaml newer than it)"
    elif any((run / "tensorboard").glob("events.out.tfevents.*")):
        how, tail = "mtime - start", ", idle time between resumes included"
    else:  # run_start's fallback
        how = "mtime - config.yaml's mtime (no TensorBoard events: the last start, earlier pieces not counted)"
    seconds = max(seconds or 0.0, 0.0)
    note = f"steps up to {int(state['step'])}: {how} = {seconds:g} s{tail}"
    return seconds, 1, note, f"train_seconds of {Path(ckpt).name} unknown, taken as {how} = {seconds:g} s"
