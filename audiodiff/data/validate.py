"""Checks of Kaldi-style data dirs and of audio files (what Kaldi's validate_data_dir.sh checks, and more).

`check_audio` says why one file is unusable; `usable_audio` audits a whole set up front (train,
evaluate, dump-features) and either stops with one line listing every bad file by utterance id
or goes on with the good ones, saying which it left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from audiodiff.data.kaldi import read_scp, read_table

TABLES = ("wav.scp", "utt2spk", "text", "utt2label", "utt2dur", "segments")
ON_BAD_AUDIO = ("error", "skip")
STFT_FRAME_SECONDS = 1024 / 16000  # validate-data-dir warns below one 1024-point STFT frame at 16 kHz
log = logging.getLogger("audiodiff")


def check_audio(path: str | Path, silence_db: float | None = -60.0, min_seconds: float = 0.0) -> str | None:
    """Why an audio file is unusable, or None if it is fine.

    Reasons: not found, unreadable, empty (e.g. a header-only WAV), non-finite samples, shorter
    than `min_seconds`, silent (peak below `silence_db` dBFS; None skips this check).
    """
    path = Path(path)
    if not path.is_file():
        return f"file not found: {path}"
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for corrupt files
        return f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'})"
    if data.size == 0:
        return "empty (no samples)"
    if not np.isfinite(data).all():
        return "non-finite samples (NaN or inf)"
    if data.shape[0] < min_seconds * sr:
        n = data.shape[0]
        return f"too short ({n} samples = {1000 * n / sr:.1f} ms; need {1000 * min_seconds:.0f} ms)"
    peak = float(np.abs(data).max())
    if silence_db is not None and (peak == 0 or 20 * np.log10(peak) < silence_db):
        return f"silent (peak below {silence_db:.0f} dBFS)"
    return None


def usable_audio(
    entries: dict[str, str],
    source: str | Path,
    on_bad: str = "error",
    hint: str = "",
    silence_db: float | None = -60.0,
    min_seconds: float = 0.0,
) -> tuple[dict[str, str], dict[str, str]]:
    """Audit every file of `entries` ({utt: path}) up front with `check_audio`.

    Args:
        entries: the set, e.g. from `list_audio`.
        source: named in the message (the data dir or folder).
        on_bad: "error": raise ValueError listing every bad file by id; "skip": log a warning
            listing them and go on with the others (an error all the same if none is left).
        hint: appended to the error, e.g. how to skip instead.
        silence_db, min_seconds: as in `check_audio`.

    Returns:
        ({utt: path} of the good files, {utt: reason} of the bad ones), in the order of `entries`.
    """
    if on_bad not in ON_BAD_AUDIO:
        raise ValueError(f"on_bad_audio={on_bad!r} is not allowed; choose one of {list(ON_BAD_AUDIO)}")
    bad = {u: why for u, p in entries.items() if (why := check_audio(p, silence_db, min_seconds))}
    good = {u: p for u, p in entries.items() if u not in bad}
    if bad:
        msg = f"{source}: {len(bad)} of {len(entries)} audio files are unusable: {describe_bad(bad)}"
        if not good:
            raise ValueError(msg)
        if on_bad == "error":
            raise ValueError(f"{msg}; {hint}" if hint else msg)
        log.warning("%s; going on with the other %d", msg, len(good))
    return good, bad


def describe_bad(bad: dict[str, str]) -> str:
    """{utt: reason} as one line: 'a: reason; b: reason'."""
    return "; ".join(f"{u}: {why}" for u, why in bad.items())


class Validation(NamedTuple):
    problems: list[str]  # the data dir is invalid if there is any
    warnings: list[str]  # usable, but worth a look (e.g. very short clips)


def validate_data_dir(
    directory: str | Path, check_audio_files: bool = True, min_seconds: float = STFT_FRAME_SECONDS
) -> Validation:
    """All problems found in a data dir, one line each, and warnings (clips shorter than `min_seconds`)."""
    directory = Path(directory)
    problems: list[str] = []
    warnings: list[str] = []
    scp = directory / "wav.scp"
    if not scp.is_file():
        return Validation([f"{directory}: no wav.scp"], [])
    wavs = read_scp(scp, problems)
    tables = {name: read_table(directory / name, problems) for name in TABLES[1:] if (directory / name).is_file()}
    if list(wavs) != sorted(wavs):
        problems.append(f"{scp}: keys are not sorted (LC_ALL=C sort)")
    for name, table in tables.items():
        if list(table) != sorted(table):
            problems.append(f"{directory / name}: keys are not sorted (LC_ALL=C sort)")
        if name == "segments":
            continue
        missing, extra = sorted(set(wavs) - set(table)), sorted(set(table) - set(wavs))
        if missing:
            problems.append(f"{name}: {len(missing)} utterances of wav.scp missing, e.g. {missing[:3]}")
        if extra:
            problems.append(f"{name}: {len(extra)} ids not in wav.scp, e.g. {extra[:3]}")
    for utt, path in wavs.items():
        if not Path(path).is_file():
            problems.append(f"wav.scp: {utt}: file not found: {path}")
        elif check_audio_files and (why := check_audio(path)):
            problems.append(f"wav.scp: {utt}: {path}: {why}")
        elif check_audio_files and (info := sf.info(path)).frames < min_seconds * info.samplerate:
            warnings.append(
                f"wav.scp: {utt}: short clip: {info.frames} samples = {1000 * info.frames / info.samplerate:.1f} ms "
                f"(< {1000 * min_seconds:.0f} ms)"
            )
    return Validation(problems, warnings)
