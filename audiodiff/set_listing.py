"""Generated sets: the settings.json listing in which `audiodiff generate --out DIR` names its files,
and the check that an output folder holds nothing but a previous set's (moved unchanged from runfiles.py).
"""

from __future__ import annotations

from pathlib import Path

from audiodiff.checkpoint import read_json, write_json

# A generated set (audiodiff generate --out DIR) describes itself in DIR/settings.json: "files"
# lists exactly its files. While generate runs, "complete" is false and "pending" holds the stems
# it is writing, so an interrupted run's files are still known to be its own.
SETTINGS = "settings.json"
OVERVIEWS = ("spectrograms.png", "grid.png")
CLIP_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".png", ".npy")


def read_set_listing(folder: Path) -> dict | None:
    """The settings.json of a generated set (None without one); a file without a list is an error."""
    path = Path(folder) / SETTINGS
    if not path.is_file():
        return None
    settings = read_json(path)
    if not isinstance(settings, dict) or not isinstance(settings.get("files"), list):
        raise ValueError(f"{path}: no 'files' list; not a set written by `audiodiff generate`")
    inside = Path(folder).resolve()
    for key in ("files", "pending"):
        for name in settings.get(key) or []:
            if not isinstance(name, str) or not _names_a_file_in(name, inside):
                raise ValueError(
                    f"{path}: {key} entry {name!r} is not a relative name inside {folder} (absolute, '..' or "
                    "leading out of it); not a set written by `audiodiff generate`"
                )
    return settings


def _names_a_file_in(name: str, folder: Path) -> bool:
    """Whether `name` is a relative path without '..' that resolves (links followed) inside `folder`."""
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts:
        return False
    return (folder / relative).resolve().is_relative_to(folder)


def set_complete(folder: Path) -> bool:
    """Whether `folder` holds a generated set that generate finished: its settings.json is there,
    parses, lists the files and says "complete": true (an interrupted generate leaves it false)."""
    try:
        settings = read_set_listing(folder)
    except ValueError:
        return False
    return settings is not None and settings.get("complete") is True


def write_set_listing(out: Path, settings: dict) -> None:
    """Write `out`/settings.json atomically: a crash leaves the previous listing or the new one."""
    write_json(Path(out) / SETTINGS, settings)


def clip_files(folder: Path) -> list[Path]:
    """Audio, PNG and .npy files under `folder` (recursively), without the generated set's overview plots."""
    return sorted(
        p
        for p in Path(folder).rglob("*")
        if p.suffix.lower() in CLIP_SUFFIXES and p.is_file() and not (p.parent == Path(folder) and p.name in OVERVIEWS)
    )


def claim_output(out: Path, stems: list[str]) -> list[Path]:
    """Check that `out` holds no clips but a previous generated set's, and mark it as being written.

    Returns:
        The previous set's files (to remove once the new set is written, unless overwritten).

    Raises:
        ValueError: `out` holds clips that no settings.json lists (copied in, or another tool's).
    """
    previous = read_set_listing(out) or {"files": []}
    pending = set(previous.get("pending") or []) if previous.get("complete") is False else set()
    listed = set(previous["files"])
    clips = clip_files(out)
    # an interrupted run's files are <stem><suffix> at the top of `out`, like generate writes them
    interrupted = [p for p in clips if p.parent == out and p.stem in pending]
    foreign = [p for p in clips if p.relative_to(out).as_posix() not in listed and p not in interrupted]
    if foreign:
        names = ", ".join(str(p.relative_to(out)) for p in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ValueError(
            f"generate: output folder {out} holds {len(foreign)} files that are not a generated set's ({names}); "
            "pass an empty or new --out, or remove them"
        )
    marker = {"complete": False, "files": sorted(listed), "pending": sorted(pending | set(stems))}
    write_set_listing(out, marker)
    return [out / name for name in sorted(listed)] + interrupted
