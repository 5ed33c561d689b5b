"""Atomic checkpoints: write a temp file, fsync, rename; a `latest` pointer; keep the last K.

A checkpoint is a plain dict of tensors, numbers and strings (state dicts and the resolved
config as YAML), loadable with `torch.load(weights_only=True)`: no pickled classes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

LATEST = "latest"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(directory: Path, step: int, state: dict, keep: int) -> Path:
    """Save `state` as ckpt-<step>.pt atomically, point `latest` at it, delete all but the last `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ckpt-{step:08d}.pt"
    tmp = directory / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    # Testing aid for fault injection: AUDIODIFF_CKPT_PAUSE="STEP:SECONDS" sleeps between the
    # fsync'd temp file and the rename when saving STEP, so a test can kill -9 mid-write.
    pause = os.environ.get("AUDIODIFF_CKPT_PAUSE", "")
    if pause and int(pause.split(":")[0]) == step:
        time.sleep(float(pause.split(":")[1]))
    os.replace(tmp, path)
    _fsync_dir(directory)
    atomic_write_bytes(directory / LATEST, path.name.encode())
    for old in sorted(directory.glob("ckpt-*.pt"))[:-keep] if keep > 0 else []:
        old.unlink()
    return path


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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint file or the latest one of a run/checkpoint directory."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, not a torch file, or pickled objects beyond tensors
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable audiodiff checkpoint: {reason}") from err
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ValueError(f"{path} is not an audiodiff checkpoint (no 'config'/'model' entries)")
    state["path"] = str(path)
    return state
