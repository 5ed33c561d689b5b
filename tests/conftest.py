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


def write_short_clip(folder):
    """folder/tiny.wav: 300 samples at 16 kHz, 2 speech16k hops once cut, shorter than one STFT frame."""
    import numpy as np
    import soundfile as sf

    folder.mkdir()
    sf.write(folder / "tiny.wav", 0.1 * np.sin(np.arange(300) / 5), 16000)
    return folder / "tiny.wav"


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


# ---- the CLI on tiny runs (shared by the train, generate, cli, checkpoint, runfiles and task tests)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
AMP = ["regularizer.lam=1e-3", "regularizer.losses=[{name: amp, kwargs: {reduction: mean}}]"]


def run_cli(*args):
    """`audiodiff ARGS` in-process; returns click's Result."""
    from click.testing import CliRunner

    from audiodiff.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def fail_cli(*args):
    """Run the CLI expecting a one-line error (an exception would escape CliRunner here)."""
    res = run_cli(*args)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
    return res.output


def base_args(corpus, exp, name, *extra):
    return [f"name={name}", f"exp_dir={exp}", f"data.train={corpus}", *TINY, *extra]


def train_cli(config, corpus, exp, name, *extra, flags=()):
    """Train the tiny model through the CLI; returns the run directory."""
    res = run_cli("train", config, *flags, "--no-progress", *base_args(corpus, exp, name, *extra))
    assert res.exit_code == 0, res.output
    return exp / name


def weights(run):
    from audiodiff.checkpoint import load_checkpoint

    return load_checkpoint(run)["model"]


@pytest.fixture
def config(tmp_path):
    """A training config for the tiny waveform model: DiffWave schedule, L1 loss, fast sampler."""
    path = tmp_path / "conf.yaml"
    path.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    return path


def on_a_full_disk(code: str, limit: int = 4096) -> str:
    """Run Python `code` in a child process that cannot grow any file past `limit` bytes (a full
    disk, as RLIMIT_FSIZE with SIGXFSZ ignored: a longer write fails with EFBIG); returns its output."""
    import subprocess
    import sys

    prelude = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, env=ENV, timeout=120)
    return proc.stdout + proc.stderr
