"""The kinds of set `evaluate` compares, each read once: audio clips (files) or images (uint8 arrays).

Registry `KINDS`: a kind reads the reference and generated sets, starts the report and names the
metrics run when none are asked for. The kind is the caller's to state (`--kind`); by default it
is taken from the reference: a split with `images.npy` holds images, anything else audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Shortest usable clip: 128 ms holds the mean spectrum's 1024-point frame (> 512 samples) at any
# analysis rate from 8 kHz (a shorter clip, e.g. 512 samples at 4 kHz, is zero-padded and counted).
# The paired STFT metrics (mrstft, lsd, band_lsd) zero-pad a pair shorter than their frame needs
# (MR-STFT's 2048 points: > 1024 samples), both clips alike.
# Silent clips are kept: a model that generates silence is scored for it.
MIN_SECONDS = 2048 / 16000


@dataclass
class Sets:
    """A reference and a generated set of one kind, as read.

    `ref_items`/`gen_items`: audio file paths (lists of str) or uint8 images (N, C, H, W).
    `skipped`: audio files left out by `on_bad_audio="skip"`, {"ref": {...}, "gen": {...}}.
    `gen_labels`: the class each generated item was asked for (settings.json "labels" of a
    class-conditional set), aligned with `gen_items`; None otherwise.
    """

    kind: str
    ref: str
    gen: str
    ref_items: list[str] | np.ndarray
    gen_items: list[str] | np.ndarray
    skipped: dict | None = None
    gen_labels: list[str] | None = None


def generated_set(gen: str | Path) -> dict[str, str] | None:
    """{id: path} of exactly the files a generated set's settings.json lists, or None without one.

    Raises:
        ValueError: `gen` is a training run directory (its samples/ are training previews, not a
            generated set), or generate did not finish writing the set.
    """
    from audiodiff.set_listing import read_set_listing

    gen = Path(gen)
    settings = read_set_listing(gen)
    if settings is None:
        if (gen / "checkpoints").is_dir():
            raise ValueError(
                f"--gen {gen} is a training run directory (samples/ holds its training previews); "
                f"pass the folder `audiodiff generate --out` wrote, e.g. {gen / 'generated'}"
            )
        return None
    if settings.get("complete") is False:
        raise ValueError(f"--gen {gen}: generate did not finish this set (settings.json); run it again")
    entries = {Path(name).with_suffix("").as_posix().replace("/", "_"): str(gen / name) for name in settings["files"]}
    return dict(sorted(entries.items()))


def requested(gen: str | Path, paths: list[str]) -> list[str] | None:
    """The labels a class-conditional generated set asked for, for its files `paths` (as `generated_set`
    names them), as text; None for a set without labels (unconditional, or no settings.json)."""
    from audiodiff.set_listing import read_set_listing

    settings = read_set_listing(Path(gen))
    labels = (settings or {}).get("labels")
    if not labels or not paths:
        return None
    if len(labels) != len(settings["files"]):
        raise ValueError(f"--gen {gen}: settings.json lists {len(settings['files'])} files but {len(labels)} labels")
    by_path = {str(Path(gen) / name): str(label) for name, label in zip(settings["files"], labels)}
    return [by_path[p] for p in paths]


def read_audio(ref: str | Path, gen: str | Path, on_bad_audio: str = "error") -> Sets:
    """Audio files of two data dirs or folders, each audited (missing, unreadable, empty, NaN/inf, too short).

    A generated set with a settings.json (from `audiodiff generate`) is exactly the files it lists.
    `on_bad_audio` "error" stops listing all bad files by id; "skip" keeps the others and records
    the left-out ones in `skipped`.
    """
    from audiodiff.data.datasets import list_audio
    from audiodiff.data.validate import usable_audio

    hint = "pass --on-bad-audio skip to evaluate the others"
    listed = generated_set(gen)
    (ref_ok, ref_bad), (gen_ok, gen_bad) = (
        usable_audio(entries, s, on_bad_audio, hint, silence_db=None, min_seconds=MIN_SECONDS)
        for entries, s in ((list_audio(ref), ref), (listed or list_audio(gen), gen))
    )
    skipped = {"ref": ref_bad, "gen": gen_bad} if ref_bad or gen_bad else None
    gen_paths = list(gen_ok.values())
    return Sets("audio", str(ref), str(gen), list(ref_ok.values()), gen_paths, skipped, requested(gen, gen_paths))


def read_images(ref: str | Path, gen: str | Path, on_bad_audio: str = "error") -> Sets:
    """uint8 images (N, C, H, W) of two sets (images.npy or a folder of PNGs) of one image shape.

    A generated set with a settings.json is exactly the files it lists (not its grid.png, nor other PNGs).
    """
    from audiodiff.eval.images import load_images

    listed = generated_set(gen)  # not a run directory, nor an unfinished set; a generated set: its files
    real, fake = load_images(ref), load_images(gen, listed)
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"image shapes differ: reference {real.shape[1:]} vs generated {fake.shape[1:]}")
    return Sets("images", str(ref), str(gen), real, fake, gen_labels=requested(gen, list((listed or {}).values())))


def _sources(sets: Sets) -> dict:
    return {"ref": sets.ref, "gen": sets.gen, "n_ref": len(sets.ref_items), "n_gen": len(sets.gen_items)}


def audio_head(sets: Sets, metrics: list[str]) -> dict:
    """The report's first entries for audio: sources, set sizes, skipped files, the metrics asked for."""
    head = _sources(sets) | {"metrics": {}}
    if sets.skipped:
        head["skipped_audio"] = sets.skipped
    head["settings"] = {"metrics": list(metrics)}
    return head


def images_head(sets: Sets, metrics: list[str]) -> dict:
    """The report's first entries for images: sources, set sizes and the kind."""
    return _sources(sets) | {"kind": "images", "metrics": {}}


def audio_header(sets: Sets, report: dict) -> str:
    """metrics.md's first line for audio: the sets and, when one was used, the embedding and what it measures."""
    n_ref, n_gen = len(sets.ref_items), len(sets.gen_items)
    line = f"Reference: {sets.ref} ({n_ref} files); generated: {sets.gen} ({n_gen} files)"
    if "embedder" in report:
        line += f"; embedder: {report['embedder']['name']} ({report['embedder']['about']})"
    return line


def images_header(sets: Sets, report: dict) -> str:
    """metrics.md's first line for images."""
    return f"Reference: {sets.ref}; generated: {sets.gen}"


@dataclass(frozen=True)
class SetKind:
    """What `evaluate` needs to know about a kind of set: how to read it and start its report."""

    name: str
    read: Callable[[str | Path, str | Path, str], Sets]
    head: Callable[[Sets, list[str]], dict]  # the report's first entries
    header: Callable[[Sets, dict], str]  # metrics.md's first line, given the report
    defaults: tuple[str, ...]  # the metrics run when none are named
    clips: bool  # whether report.html (players and spectrograms of the clips) is written


KINDS = {
    "audio": SetKind(
        "audio", read_audio, audio_head, audio_header, ("fad", "fad_inf", "kad", "ndb", "mean_spectrum"), clips=True
    ),
    "images": SetKind(
        "images", read_images, images_head, images_header, ("power_spectrum", "pixel_histogram"), clips=False
    ),
}


def detect_kind(ref: str | Path) -> str:
    """The kind of a reference set: "images" for a split with images.npy, else "audio"."""
    return "images" if (Path(ref) / "images.npy").is_file() else "audio"
