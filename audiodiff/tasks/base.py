"""The Task interface: what is generated, owned in one place.

A task owns its training examples, the map from a batch to model space `(x0, cond)`, the
shape of one sample, decoding samples back to audio or pictures, and writing them. `train()`
and `generate()` loop over a task and never ask which kind of data they hold. A new task is a
subclass registered in `audiodiff.builders.TASKS` plus a config naming it (`task: <name>`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from audiodiff.config import ExperimentConfig
    from audiodiff.data.examples import Example


def seed_names(seeds: list[int]) -> list[str]:
    """File stems for seeds, zero-padded to the widest so that names sort as numbers: 00 .. 15."""
    width = len(str(max(seeds))) if seeds else 1
    return [f"{s:0{width}d}" for s in seeds]


class Job(NamedTuple):
    """One file to generate: its name (file stem), seed and condition (None, or one example's); a
    vocoder's job also holds the clip (T,) its condition was taken from, on the CPU (shallow diffusion
    starts from that clip's Griffin-Lim waveform: `audiodiff.generate`)."""

    name: str
    seed: int
    cond: Tensor | None
    audio: Tensor | None = None


class Task(ABC):
    """Base class of tasks. Subclasses set `networks` and implement the abstract methods
    (`examples`, `to_model`, `shape`, `decode`, `write`, `summarize`, `log_samples`); the rest
    has defaults. A subclass missing one cannot be instantiated.

    Attributes:
        networks: the model.kind values whose network fits the task (checked when a config loads).
        waveform: the model generates waveforms at data.sample_rate (losses with a sample rate
            must use it).
        max_batch: the most jobs sampled together (None: generate's --batch-size).
        suffix: the suffix of the files `write` writes (".wav", ".png").
        bad: training files left out by data.on_bad_audio=skip (after `examples()`).
    """

    networks: tuple[str, ...] = ()
    waveform = False
    max_batch: int | None = None
    suffix = ""

    def __init__(self, cfg: ExperimentConfig, device: str | torch.device = "cpu", **options) -> None:
        if options:
            option = next(iter(options)).replace("_", "-")
            raise ValueError(f"generate: --{option} does not apply to task={cfg.task}")
        self.cfg, self.device, self.bad = cfg, torch.device(device), []

    @classmethod
    def problems(cls, cfg: ExperimentConfig) -> list[str]:
        """What in `cfg` does not fit the task, one line each (checked when a config loads)."""
        if cfg.model.kind not in cls.networks:
            return [f"task={cfg.task} needs model.kind in {list(cls.networks)}, got model.kind={cfg.model.kind}"]
        return []

    # ---- training
    @abstractmethod
    def examples(self) -> Dataset:
        """Training Examples keyed by (index, seed) (see audiodiff.data.examples)."""

    @abstractmethod
    def to_model(self, batch: Example) -> tuple[Tensor, Tensor | None]:
        """(x0, cond) in model space on the task's device, from a collated batch of Examples."""

    def check_loss(self, spectral: torch.nn.Module) -> None:
        """Raise a one-line ValueError if the regularizer cannot run on this task's samples."""
        return None  # by default every regularizer fits

    def preview_condition(self, seeds: list[int]) -> Tensor | None:
        """The condition of the samples logged during training (one per seed), or None."""
        return self.labels(seeds)

    # ---- class labels (a UNet with model.unet.num_classes > 0)
    @property
    def classes(self) -> int:
        """The number of classes of a class-conditional model, else 0."""
        return self.cfg.model.unet.num_classes if self.cfg.model.kind == "unet" else 0

    def labels(self, seeds: list[int]) -> Tensor | None:
        """Class labels (len(seeds),) of a class-conditional model (seed k gets class seed_k mod classes), else None."""
        classes = self.classes
        return torch.tensor([s % classes for s in seeds], device=self.device) if classes else None

    def batch_labels(self, batch) -> Tensor | None:
        """The batch's class labels (B,) on the task's device for a class-conditional model, else None."""
        return batch["label"].to(self.device) if self.classes else None

    def label_names(self, seeds: list[int]) -> list[str] | None:
        """The class names `labels(seeds)` stand for (data.labels, else the class ids as text), or None."""
        labels = self.labels(seeds)
        if labels is None:
            return None
        names = list(self.cfg.data.labels) or [str(i) for i in range(self.classes)]
        return [names[i] for i in labels.tolist()]

    # ---- generation
    @abstractmethod
    def shape(self, cond: Tensor | None = None) -> tuple[int, ...]:
        """Model-space shape of one sample (without the batch axis), for a batch condition `cond`."""

    def jobs(self, seeds: list[int], source: str | None = None) -> list[Job]:
        """What to generate: one job per seed, with its class label if the model has classes
        (a conditional task may read `source`)."""
        self.no_source(source)
        labels = self.labels(seeds)
        names = seed_names(seeds)
        return [Job(names[i], s, None if labels is None else labels[i]) for i, s in enumerate(seeds)]

    def no_source(self, source: str | None) -> None:
        """Raise if generate was given audio to vocode (`--mels-from`) that this task would ignore."""
        if source:
            raise ValueError(
                f"generate: --mels-from applies to vocoders (task=vocoder); this model is task={self.cfg.task}"
            )

    @abstractmethod
    def decode(self, x: Tensor, seeds: list[int]) -> Tensor:
        """Samples (B, ...) in model space -> outputs (audio (B, ..., T) or images (B, C, H, W))."""

    @abstractmethod
    def write(self, out: Path, names: list[str], outputs: Tensor) -> list[Path]:
        """Write one file per output; returns the paths."""

    @abstractmethod
    def summarize(self, out: Path, paths: list[Path], outputs: list[Tensor], source: str | None) -> dict:
        """Write the overview (a grid) of a generation run; returns what settings.json adds."""

    @abstractmethod
    def log_samples(self, writer, out: Path, seeds: list[int], outputs: Tensor, step: int) -> None:
        """Write training-time samples to `out` and to TensorBoard."""
