"""Atomic checkpoints: write a temp file, fsync, rename; a `latest` pointer; keep the last K.

A checkpoint is a plain dict of tensors, numbers and strings (state dicts and the resolved
config as YAML), loadable with `torch.load(weights_only=True)`: no pickled classes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import torch

if TYPE_CHECKING:
    from audiodiff.diffusion.prior import PriorConfig

LATEST = "latest"
TMP = ".tmp-"  # temp files: .<name>.tmp-<pid>
TRAINING_TIME = ("train_seconds", "train_pieces", "train_seconds_note")  # train's record (`training_time`)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, write: Callable[[BinaryIO], None], pause: float = 0.0) -> None:
    """Write `path` via a temp file (fsync'd, renamed): a crash leaves the old file or the new one.

    A failed write (e.g. disk full) removes the temp file and raises OSError naming `path`.
    """
    tmp = path.with_name(f".{path.name}{TMP}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from err
    time.sleep(pause)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    _write_atomically(path, lambda f: f.write(data))


def write_json(path: Path, obj) -> None:
    """Write `obj` as indented JSON atomically (`atomic_write_bytes`)."""
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path) -> object:
    """The JSON in `path`; a one-line ValueError naming it when it does not parse (e.g. cut off)."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None


def save_checkpoint(directory: Path, step: int, state: dict, keep: int) -> Path:
    """Save `state` as ckpt-<step>.pt atomically, point `latest` at it, delete all but the last `keep`.

    Raises:
        OSError: the file could not be written (e.g. disk full); the message names it and the
            previous checkpoint, which is left intact (as is `latest`), and no temp file is left.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ckpt-{step:08d}.pt"
    # Testing aid for fault injection: AUDIODIFF_CKPT_PAUSE="STEP:SECONDS" sleeps between the
    # fsync'd temp file and the rename when saving STEP, so a test can kill -9 mid-write.
    pause = os.environ.get("AUDIODIFF_CKPT_PAUSE", "")
    seconds = float(pause.split(":")[1]) if pause and int(pause.split(":")[0]) == step else 0.0
    try:
        _write_atomically(path, lambda f: torch.save(state, f), seconds)
    except OSError as err:
        previous = latest_checkpoint(directory)
        kept = f"the previous checkpoint {previous.name} is intact" if previous else "there is no earlier checkpoint"
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise OSError(err.errno, f"checkpoint {path} not saved ({reason}); {kept}") from err
    atomic_write_bytes(directory / LATEST, path.name.encode())
    for old in sorted(directory.glob("ckpt-*.pt"))[:-keep] if keep > 0 else []:
        old.unlink()
    return path


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete temp files left in `directory` by writers that died mid-write; returns them.

    Call it only while holding the run's lock (no other writer can be mid-write).
    """
    stale = [p for p in directory.glob(f".*{TMP}*") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def load_weights(net: torch.nn.Module, weights: dict, source: str | Path) -> None:
    """`net.load_state_dict(weights)` with a one-line ValueError naming `source` when they do not fit."""
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = problems[0][:300] if problems else str(err).splitlines()[0]
        raise ValueError(
            f"{source}: weights do not fit the configured {type(net).__name__} "
            f"({len(problems)} problem(s), first: {first})"
        ) from err


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint `latest` points to (or the newest ckpt-*.pt), None if there is none."""
    pointer = directory / LATEST
    if pointer.is_file():
        target = directory / pointer.read_text().strip()
        if target.is_file():
            return target
    found = sorted(directory.glob("ckpt-*.pt"))
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file `path` names: itself, the target of a `latest` pointer, or a run's latest."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {path} (looked for checkpoints/latest and ckpt-*.pt)")
        path = found
    if path.name == LATEST and path.is_file():  # the pointer file itself
        found = latest_checkpoint(path.parent)
        path = found if found is not None else path
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def _read(path: Path, **kwargs) -> object:
    """torch.load(path, weights_only=True, **kwargs); a one-line ValueError naming `path` when it cannot."""
    try:
        return torch.load(path, weights_only=True, **kwargs)
    except Exception as err:  # truncated, not a torch file, or pickled objects beyond tensors
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable audiodiff checkpoint: {reason}") from err


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint file or the latest one of a run/checkpoint directory."""
    path = resolve_checkpoint(path)
    state = _read(path, map_location=map_location)
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ValueError(f"{path} is not an audiodiff checkpoint (no 'config'/'model' entries)")
    state["path"] = str(path)
    return state


def training_time(path: str | Path) -> dict:
    """A checkpoint's record of its training time, read without loading its tensors (mmap).

    Returns:
        {"train_seconds", "train_pieces", "train_seconds_note"} as far as the file holds them: the
        seconds the training processes spent on the run up to this checkpoint (summed over resumes),
        how many processes that sums, and, where an older checkpoint's time was estimated, how. {} for a
        checkpoint written before they were recorded (its wall time: `runfiles.wall_seconds`).
    """
    try:
        state = _read(path, map_location="cpu", mmap=True)
    except ValueError:  # mmap refused (torch's legacy, non-zip format, as load_checkpoint reads): read it whole
        state = _read(path, map_location="cpu")
    return {k: state[k] for k in TRAINING_TIME if isinstance(state, dict) and k in state}


def stored_prior(path: str | Path) -> PriorConfig | None:
    """The diffusion.prior block (PriorGrad) stored in a checkpoint's config; None when it has none.

    Args:
        path: a checkpoint file, a `latest` pointer or a run directory (`resolve_checkpoint`): one of
            ours, or an lmnt-com/diffwave file, read with `safe_torch_load` (it runs no code from it).

    Returns:
        The stored prior, or None for a checkpoint trained without one (kind "none") and for an
        lmnt-com/diffwave file (trained with N(0, I)).
    """
    from audiodiff.config import from_yaml
    from audiodiff.models.lmnt import safe_torch_load

    path = resolve_checkpoint(path)
    raw = safe_torch_load(path)
    if not (isinstance(raw, dict) and "config" in raw and "model" in raw):
        return None
    prior = from_yaml(raw["config"], f"{path}: stored config").diffusion.prior
    return None if prior.kind == "none" else prior


@dataclasses.dataclass
class ResumedPrior:
    """The diffusion.prior stored in the checkpoint `path` a run resumes from (`stored_prior`), read on the
    first use of `prior` and at most once: train() hands one to `finetune.inherit_prior` and
    `runfiles.keep_prior_align`, which read it only when they need it."""

    path: Path

    @functools.cached_property
    def prior(self) -> PriorConfig | None:
        return stored_prior(self.path)
