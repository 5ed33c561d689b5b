"""Training datasets over Kaldi-style data dirs (wav.scp) or folders of audio files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from audiodiff.audio.io import load_audio
from audiodiff.data.examples import Example, make_example
from audiodiff.data.kaldi import read_scp
from audiodiff.data.validate import usable_audio

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def crop_or_pad(
    x: Tensor, length: int, random: bool = True, generator: torch.Generator | None = None, value: float = 0.0
) -> Tensor:
    """`length` samples of the last axis: a crop (random from `generator`, or the start) or a pad with `value`."""
    if x.shape[-1] < length:
        return torch.nn.functional.pad(x, (0, length - x.shape[-1]), value=value)
    start = int(torch.randint(0, x.shape[-1] - length + 1, (), generator=generator)) if random else 0
    return x[..., start : start + length]


def list_audio(source: str | Path) -> dict[str, str]:
    """Utterances of a data dir (its wav.scp) or of a folder (audio files, recursively), sorted by id.

    wav.scp is read by `audiodiff.data.kaldi.read_scp` (safe ids, relative paths against the data
    dir); a folder's ids are the files' relative paths without suffix, with '/' turned into '_'.
    """
    source = Path(source)
    if (source / "wav.scp").is_file():
        entries = read_scp(source / "wav.scp")
    elif source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        entries = {str(p.relative_to(source).with_suffix("")).replace("/", "_"): str(p) for p in files}
    else:
        raise FileNotFoundError(f"data source not found: {source} (want a data dir with wav.scp or a folder of audio)")
    if not entries:
        raise ValueError(f"data source {source} has no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return dict(sorted(entries.items()))


class AudioClips(Dataset):
    """Fixed-length clips: random crops (training) or the start of each file (evaluation), zero-padded.

    Items are (audio (1, segment), index). Files are decoded and resampled once and kept in memory
    when `cache` is set (small corpora, the offline recipes); otherwise read on every access.
    Every file is audited first (`usable_audio`: unreadable, empty, NaN/inf, silent, shorter than
    `min_seconds`): `on_bad="error"` stops listing all bad files, "skip" leaves them out (`self.bad`).
    """

    def __init__(
        self,
        source: str | Path,
        sample_rate: int,
        segment: int,
        random_crop: bool = True,
        cache: bool = True,
        on_bad: str = "error",
        min_seconds: float = 0.0,
    ) -> None:
        hint = "set data.on_bad_audio=skip to train on the others"
        self.entries, self.bad = usable_audio(list_audio(source), source, on_bad, hint, min_seconds=min_seconds)
        self.ids = list(self.entries)
        self.sample_rate, self.segment, self.random_crop = sample_rate, segment, random_crop
        self._cache: dict[int, Tensor] = {}
        self.cache = cache

    def __len__(self) -> int:
        return len(self.ids)

    def audio(self, index: int) -> Tensor:
        if index in self._cache:
            return self._cache[index]
        wav = load_audio(self.entries[self.ids[index]], self.sample_rate)
        if self.cache:
            self._cache[index] = wav
        return wav

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return crop_or_pad(self.audio(index), self.segment, self.random_crop)[None], index


def item_seed(seed: int, position: int) -> int:
    """Seed of the example at `position` of the training stream (crop, noise and level draws)."""
    return (seed * 0x9E3779B97F4A7C15 + position * 0xBF58476D1CE4E5B9) % (2**63)


class TrainingStream(torch.utils.data.Sampler):
    """Global-batch stream of (dataset index, example seed) for one process.

    The stream is a sequence of epochs, each a seeded permutation of the dataset. Optimizer
    step s uses stream positions s*B .. s*B+B-1 (B = global batch); process r of W, in
    accumulation micro-step a of A, takes its contiguous share of them. So the examples of a
    step, and their random draws, do not depend on W or A, and resuming at step s is exact.

    Yields lists (micro-batches) of B / (W * A) items, from `start_step` on, forever.
    """

    def __init__(
        self, n: int, global_batch: int, seed: int, rank: int = 0, world: int = 1, accum: int = 1, start_step: int = 0
    ) -> None:
        if global_batch % (world * accum):
            raise ValueError(
                f"train.batch_size={global_batch} must be divisible by processes ({world}) x grad_accum ({accum})"
            )
        self.n, self.batch, self.seed = n, global_batch, seed
        self.rank, self.world, self.accum, self.start_step = rank, world, accum, start_step
        self.micro = global_batch // (world * accum)
        self._perms: dict[int, Tensor] = {}

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))}
        return int(self._perms[epoch][offset])

    def __iter__(self):
        step = self.start_step
        while True:
            for a in range(self.accum):
                first = step * self.batch + self.rank * (self.batch // self.world) + a * self.micro
                yield [(self._index(p), item_seed(self.seed, p)) for p in range(first, first + self.micro)]
            step += 1


class DiffusionExamples(Dataset):
    """Training examples with their own random draws, from `(index, seed)` keys.

    Returns an Example with x = a crop (1, segment) drawn from the seed, and noise shaped like the
    model's input ((1, segment) for waveforms, (1, n_mels, frames) for mel models), and with
    `labels` (class ids (N,)) the example's label.
    """

    def __init__(
        self, clips: AudioClips, noise_shape: tuple[int, ...] | None = None, labels: Tensor | None = None
    ) -> None:
        self.clips = clips
        self.noise_shape = tuple(noise_shape) if noise_shape else (1, clips.segment)
        self.labels = labels  # class ids (N,) of a class-conditional task, else None

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> Example:
        index, seed = key
        g = torch.Generator().manual_seed(seed)
        clip = crop_or_pad(self.clips.audio(index), self.clips.segment, generator=g)
        return make_example(clip[None], g, index, self.noise_shape, **with_label(self.labels, index))


def with_label(labels: Tensor | None, index: int) -> dict:
    """{"label": labels[index]} for a labelled dataset, {} for an unlabelled one (labels None)."""
    return {} if labels is None else {"label": labels[index]}


class ImageArrays(Dataset):
    """Images saved by the image corpora (<dir>/images.npy uint8 (N, C, H, W), labels.npy), as float in [-1, 1].

    Items are Examples keyed by (index, seed) like DiffusionExamples, with x = the image and its label.
    """

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        if not (directory / "images.npy").is_file():
            raise FileNotFoundError(f"image data not found: {directory / 'images.npy'} (prepare mnist or checkerboard)")
        self.images = torch.from_numpy(np.load(directory / "images.npy"))
        labels = directory / "labels.npy"
        self.labels = (
            torch.from_numpy(np.load(labels)) if labels.is_file() else torch.zeros(len(self.images), dtype=torch.long)
        )

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, key: tuple[int, int]) -> Example:
        index, seed = key
        g = torch.Generator().manual_seed(seed)
        image = self.images[index].float() / 127.5 - 1
        return make_example(image, g, index, tuple(image.shape), label=self.labels[index])
