"""Dumped log-mel features, so mel-spectrogram recipes do not recompute them every epoch.

`dump_features(data_dir, preset, sample_rate)` writes <data_dir>/feats/<utt>.npy (float32
(n_mels, frames)), <data_dir>/feats.scp and <data_dir>/feats.json (the mel settings). Training
with `task: mel_features` crops these instead of computing log-mels from audio, and refuses a
dump made with other settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from audiodiff.audio.features import LogMel, mel_config
from audiodiff.audio.io import load_audio
from audiodiff.data.datasets import crop_or_pad, list_audio, with_label
from audiodiff.data.examples import Example, make_example
from audiodiff.data.kaldi import read_scp
from audiodiff.data.validate import usable_audio


def dump_features(data_dir: str | Path, preset: str, sample_rate: int, on_bad: str = "error") -> int:
    """Write the log-mels of every usable utterance of a data dir; returns the number written.

    The audio is audited first (`usable_audio`, too short = under one STFT frame): `on_bad`
    "error" stops listing every bad file, "skip" leaves them out of feats.scp.
    """
    data_dir = Path(data_dir)
    cfg = mel_config(preset, sample_rate=sample_rate)
    hint = "pass --on-bad-audio skip to dump the others"
    entries, _ = usable_audio(list_audio(data_dir), data_dir, on_bad, hint, min_seconds=cfg.n_fft / cfg.sample_rate)
    logmel = LogMel(cfg)
    (data_dir / "feats").mkdir(parents=True, exist_ok=True)
    lines = []
    with torch.no_grad():
        for utt, path in entries.items():
            feats = logmel(load_audio(path, sample_rate)[None])[0].numpy().astype(np.float32)
            target = data_dir / "feats" / f"{utt}.npy"
            np.save(target, feats)
            lines.append(f"{utt} {target.resolve()}\n")
    (data_dir / "feats.scp").write_text("".join(lines))
    (data_dir / "feats.json").write_text(json.dumps({"preset": preset, **asdict(cfg)}, indent=2) + "\n")
    return len(lines)


class MelFeatureExamples(Dataset):
    """Random `frames`-long crops of dumped log-mels (padded with the log floor), with their own draws.

    Items are Examples keyed by (index, seed) as DiffusionExamples: x = the (n_mels, frames) log-mel
    crop, noise (1, n_mels, frames); with `labels` set (class ids (N,), in `ids` order) its label.
    """

    def __init__(self, data_dir: str | Path, preset: str, sample_rate: int, frames: int) -> None:
        data_dir = Path(data_dir)
        meta, scp = data_dir / "feats.json", data_dir / "feats.scp"
        if not meta.is_file() or not scp.is_file():
            raise FileNotFoundError(f"no dumped features in {data_dir}: run audiodiff dump-features {data_dir}")
        stored = json.loads(meta.read_text())
        wanted = {"preset": preset, **asdict(mel_config(preset, sample_rate=sample_rate))}
        if stored != wanted:
            diff = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise ValueError(f"{meta}: features were dumped with other mel settings ({diff}); dump them again")
        self.floor = float(np.log(wanted["log_floor"]))
        table = read_scp(scp)
        self.ids = list(table)
        self.feats = [torch.from_numpy(np.load(path)) for path in table.values()]
        self.frames = frames
        self.labels: torch.Tensor | None = None  # class ids (N,) of a class-conditional task

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, key: tuple[int, int]) -> Example:
        index, seed = key
        g = torch.Generator().manual_seed(seed)
        crop = crop_or_pad(self.feats[index], self.frames, generator=g, value=self.floor)
        return make_example(crop, g, index, (1, *crop.shape), **with_label(self.labels, index))
