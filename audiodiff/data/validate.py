"""Checks of Kaldi-style data dirs and of audio files (what Kaldi's validate_data_dir.sh checks, and more)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

TABLES = ("wav.scp", "utt2spk", "text", "utt2label", "utt2dur", "segments")


def check_audio(path: str | Path, silence_db: float = -60.0) -> str | None:
    """Why an audio file is unusable (unreadable, empty, non-finite, silent), or None if it is fine."""
    try:
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for corrupt files
        return f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'})"
    if data.size == 0:
        return "empty"
    if not np.isfinite(data).all():
        return "non-finite samples"
    peak = float(np.abs(data).max())
    if peak == 0 or 20 * np.log10(peak) < silence_db:
        return f"silent (peak below {silence_db:.0f} dBFS)"
    return None


def _read_table(path: Path, problems: list[str]) -> dict[str, str]:
    entries: dict[str, str] = {}
    keys = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            problems.append(f"{path.name}:{lineno}: empty line")
            continue
        parts = line.split(maxsplit=1)
        if len(parts) < 2:
            problems.append(f"{path.name}:{lineno}: expected '<utt-id> <value>', got {line!r}")
            continue
        if parts[0] in entries:
            problems.append(f"{path.name}:{lineno}: duplicate id {parts[0]!r}")
        entries[parts[0]] = parts[1]
        keys.append(parts[0])
    if keys != sorted(keys):
        problems.append(f"{path.name}: keys are not sorted (LC_ALL=C sort)")
    return entries


def validate_data_dir(directory: str | Path, check_audio_files: bool = True) -> list[str]:
    """All problems found in a data dir, one line each (an empty list means valid)."""
    directory = Path(directory)
    problems: list[str] = []
    scp = directory / "wav.scp"
    if not scp.is_file():
        return [f"{directory}: no wav.scp"]
    tables = {name: _read_table(directory / name, problems) for name in TABLES if (directory / name).is_file()}
    utts = set(tables["wav.scp"])
    for name, table in tables.items():
        if name in ("wav.scp", "segments"):
            continue
        missing, extra = sorted(utts - set(table)), sorted(set(table) - utts)
        if missing:
            problems.append(f"{name}: {len(missing)} utterances of wav.scp missing, e.g. {missing[:3]}")
        if extra:
            problems.append(f"{name}: {len(extra)} ids not in wav.scp, e.g. {extra[:3]}")
    for utt, wav in tables["wav.scp"].items():
        path = Path(wav) if Path(wav).is_absolute() else directory.parent.parent / wav
        if wav.rstrip().endswith("|"):
            problems.append(f"wav.scp: {utt}: piped commands are not supported ({wav!r})")
        elif not path.is_file():
            problems.append(f"wav.scp: {utt}: file not found: {path}")
        elif check_audio_files and (why := check_audio(path)):
            problems.append(f"wav.scp: {utt}: {path}: {why}")
    return problems
