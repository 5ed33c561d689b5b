"""Small fixed sets for the evaluation tests: band-limited noise, speech-like clips, images, a classifier."""

import numpy as np
import soundfile as sf
import torch

from audiodiff.eval.classifier import Classifier, ClassifierConfig, save_classifier

RATE = 22050


def noise_band(rng, n, lo, hi, rate=RATE):
    """White noise band-limited to [lo, hi] Hz by zeroing FFT bins. -> (n,)"""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spec[(freqs < lo) | (freqs > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / np.abs(x).max()


def write_wav(folder, name, audio, rate=RATE):
    folder.mkdir(exist_ok=True)
    sf.write(str(folder / f"{name}.wav"), audio.astype(np.float32), rate, subtype="FLOAT")


def _speechlike(rng, seconds=0.3, rate=16000):
    """Four harmonics of a random f0 under a slow envelope, plus a little noise. -> (T,) float32"""
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(110, 220)
    voiced = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in (1, 2, 3, 4))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def fixed_audio_sets(root):
    """ref: u0..u5, gen: u0..u4 (same names: 5 pairs), 16 kHz, 0.3 s, seeded."""
    rng = np.random.default_rng(14)
    ref, gen = root / "ref", root / "gen"
    ref.mkdir(), gen.mkdir()
    for i in range(6):
        sf.write(str(ref / f"u{i}.wav"), _speechlike(rng), 16000)
    for i in range(5):
        sf.write(str(gen / f"u{i}.wav"), _speechlike(rng), 16000)
    return ref, gen


def fixed_image_sets(root):
    """ref: images.npy of 20 blocky 16 x 16 images; gen: a folder of 12 PNGs."""
    from PIL import Image

    rng = np.random.default_rng(14)
    ref, gen = root / "iref", root / "igen"
    ref.mkdir(), gen.mkdir()

    def blocky(n):
        return np.repeat(np.repeat(rng.integers(0, 256, (n, 1, 8, 8)), 2, 2), 2, 3).astype(np.uint8)

    np.save(ref / "images.npy", blocky(20))
    for i, image in enumerate(blocky(12)):
        Image.fromarray(image[0]).save(gen / f"{i}.png")
    return ref, gen


def random_classifier(path, **config):
    """An untrained classifier (seed 0), saved as `audiodiff train-classifier` would: fixed, not good."""
    torch.manual_seed(0)
    model = Classifier(ClassifierConfig(labels=["a", "b", "c"], channels=[8, 16], feature_dim=16, **config))
    return save_classifier(model.eval(), path, {"test_accuracy": 0.5})


AUDIO_CLASSIFIER = dict(sample_rate=16000, samples=4000, n_fft=256, hop=64, n_mels=32)
