import os

import pytest
import torch

# Parallel test workers on a 2-core box must not oversubscribe (see ENVIRONMENT.md).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip where no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def write_corpus(root, n=6, seconds=0.25, sample_rate=16000):
    """A tiny Kaldi data dir of harmonic tones: root/data/train/wav.scp -> root/wav/*.wav."""
    import math

    import soundfile as sf

    wav_dir, data_dir = root / "wav", root / "data" / "train"
    wav_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        t = torch.arange(int(seconds * sample_rate)) / sample_rate
        x = sum(torch.sin(2 * math.pi * (150 + 40 * i) * k * t) / k for k in (1, 2, 3)) * 0.2
        path = wav_dir / f"utt{i}.wav"
        sf.write(str(path), x.numpy(), sample_rate)
        lines.append(f"utt{i} {path}")
    (data_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    return data_dir


TINY = [
    "model.diffwave.layers=2",
    "model.diffwave.channels=8",
    "model.diffwave.cycle=2",
    "model.diffwave.n_mels=0",
    "model.diffwave.embed_dim=32",
    "data.segment=1024",
    "train.batch_size=4",
    "train.log_every=1",
    "train.ckpt_every=2",
    "sample.steps=4",
]


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path)
