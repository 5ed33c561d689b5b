"""`digits`: an offline SC09-like corpus of spoken digits "zero" .. "nine", synthesized with espeak-ng.

A speaker is an English accent, a voice variant, a pitch and a speaking rate. Splits are by voice
variant, so the valid and test voices are unseen in training (as SC09's speakers are). Each clip is
1 s at 16 kHz: the word (silence-trimmed) at a random offset with a random gain. Everything is
drawn from `seed`, so the corpus is identical on every machine with the same espeak-ng data.

Output: <out>/wav/<utt>.wav and Kaldi data dirs <out>/data/{train,valid,test}/ with wav.scp,
utt2spk, spk2utt and text (the digit word; utt2label holds 0-9).
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import soxr
import torch

from audiodiff.audio.io import save_audio
from audiodiff.data.corpora.common import progress, write_data_dir
from audiodiff.data.corpora.espeak import list_variants, synthesize_fresh

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PLACEMENTS = ("random", "center")
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")


def _place(word: np.ndarray, length: int, rng: np.random.Generator, placement: str = "random") -> np.ndarray:
    """Trim silence, then put the word in a `length` clip with a random gain: at a random offset, or
    centred (placement "center"; the offset is drawn all the same, so both give the same gains)."""
    active = np.flatnonzero(np.abs(word) > 0.02 * np.abs(word).max()) if word.size else np.zeros(0, int)
    if active.size:
        word = word[active[0] : active[-1] + 1]
    if word.shape[0] > length:  # very slow speakers: keep the start, fade the cut
        word = word[:length].copy()
        word[-160:] *= np.linspace(1, 0, 160)
    clip = np.zeros(length, np.float32)
    start = int(rng.integers(0, length - word.shape[0] + 1))
    if placement == "center":
        start = (length - word.shape[0]) // 2
    peak = np.abs(word).max() or 1.0
    clip[start : start + word.shape[0]] = word / peak * rng.uniform(0.3, 0.9)
    return clip


def prepare_digits(
    out: str | Path,
    speakers: int = 60,
    reps: int = 2,
    seed: int = 0,
    sample_rate: int = 16000,
    split: tuple[float, float] = (0.8, 0.1),
    placement: str = "random",
) -> dict:
    """Synthesize the corpus; returns a summary (also written to <out>/digits.json).

    Args:
        out: output directory.
        speakers: number of synthetic speakers (each says every digit `reps` times).
        reps: repetitions per digit and speaker, each with a slightly different pitch and rate.
        seed: everything (speakers, splits, offsets, gains) follows from it.
        sample_rate: output rate (espeak-ng renders at 22.05 kHz; resampled with soxr).
        split: fractions of voice variants for train and valid (the rest is test).
        placement: "random" (each word at a random offset in its clip) or "center" (every word
            centred: a smaller problem, with the same voices, words and gains).
    """
    out = Path(out)
    if placement not in PLACEMENTS:
        raise ValueError(f"digits: placement={placement!r}; allowed: {', '.join(PLACEMENTS)}")
    if speakers < 3:
        raise ValueError(f"digits: speakers={speakers}; need at least 3 (one each for train, valid and test)")
    rng = np.random.default_rng(seed)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        variants = pool.apply(list_variants)
    plan, jobs = _plan(speakers, reps, _voice_pools(variants, split, rng), split, rng)
    # One fresh process per speaker: libespeak-ng carries state from utterance to utterance (pitch
    # phase, timing, and for some voices values that differ between processes), so each speaker
    # starts from a clean library. The worker module imports only numpy and ctypes.
    with multiprocessing.get_context("spawn").Pool(2, maxtasksperchild=1) as pool:
        spoken = pool.imap(synthesize_fresh, jobs)  # in order, as map
        results = list(progress(len(jobs), "synthesize speakers", "speaker", iterable=spoken))
    tts_rate = results[0][0]
    raws = [raw for _, speaker in results for raw in speaker]
    sets: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for item, raw in progress(len(plan), "resample and write", "clip", iterable=zip(plan, raws)):
        audio = soxr.resample(raw.astype(np.float32) / 32768.0, tts_rate, sample_rate)
        clip = _place(audio.astype(np.float32), sample_rate, rng, placement)
        path = out / "wav" / f"{item['utt']}.wav"
        save_audio(path, torch.from_numpy(clip), sample_rate)
        sets[item.pop("part")].append(item | {"path": str(path.resolve())})
    for name, utts in sets.items():
        write_data_dir(out / "data" / name, utts)
    summary = {
        "corpus": "digits",
        "seed": seed,
        "sample_rate": sample_rate,
        "speakers": speakers,
        "reps": reps,
        "placement": placement,
        "utterances": {k: len(v) for k, v in sets.items()},
        "voices": {k: sorted({u["voice"] for u in v}) for k, v in sets.items()},
    }
    (out / "digits.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _voice_pools(variants: list[str], split: tuple[float, float], rng: np.random.Generator) -> dict[str, list[str]]:
    """Shuffle the voice variants with `rng` and split them into train/valid/test pools by `split`."""
    rng.shuffle(variants)
    n_train = int(round(split[0] * len(variants)))
    n_valid = int(round(split[1] * len(variants)))
    split_of = {v: "train" for v in variants[:n_train]} | {v: "valid" for v in variants[n_train : n_train + n_valid]}
    split_of |= {v: "test" for v in variants[n_train + n_valid :]}
    return {s: [v for v in variants if split_of[v] == s] for s in ("train", "valid", "test")}


def _plan(speakers: int, reps: int, pools: dict, split: tuple[float, float], rng: np.random.Generator) -> tuple:
    """(utterance items, one list of (text, voice, rate, pitch) jobs per speaker), drawn from `rng`.

    Speakers go first to empty splits, then to the split furthest below its quota.
    """
    quota = {"train": split[0], "valid": split[1], "test": 1 - split[0] - split[1]}
    counts = {s: 0 for s in pools}
    plan, jobs = [], []
    for k in range(speakers):
        part = min(pools, key=lambda s: (counts[s] > 0, (counts[s] + 1) / max(quota[s], 1e-9)))
        counts[part] += 1
        variant = pools[part][int(rng.integers(len(pools[part])))]
        accent = ACCENTS[int(rng.integers(len(ACCENTS)))]
        pitch, rate = int(rng.integers(20, 81)), int(rng.integers(130, 211))
        jobs.append([])
        for word in DIGITS:
            for rep in range(reps):
                voice = f"{accent}+{variant}"
                jobs[-1].append((word, voice, rate + int(rng.integers(-15, 16)), pitch + int(rng.integers(-5, 6))))
                item = {"utt": f"spk{k:03d}_{word}_{rep}", "spk": f"spk{k:03d}", "text": word, "voice": voice}
                plan.append(item | {"label": DIGITS.index(word), "part": part})
    return plan, jobs
