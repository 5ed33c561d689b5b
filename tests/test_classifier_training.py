"""Training the evaluation classifier (audiodiff.classifier_training): it learns held-out data, round-trips."""

import numpy as np
import pytest
import torch

from audiodiff.classifier_training import load_labelled, train_classifier
from audiodiff.eval.classifier import ClassifierConfig, load_classifier
from audiodiff.eval.evaluate import evaluate


def _tone_corpus(root, split, n_per_class, seed, sr=8000, seconds=0.25):
    """A labelled data dir: class 0 = 300-500 Hz tones, class 1 = 1500-2500 Hz, random amplitude/phase."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    d = root / split
    (root / "wav").mkdir(parents=True, exist_ok=True)
    d.mkdir(parents=True)
    scp, lab = [], []
    t = np.arange(int(sr * seconds)) / sr
    for i in range(2 * n_per_class):
        c = i % 2
        f = rng.uniform(*((300, 500) if c == 0 else (1500, 2500)))
        x = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28))
        x = x + 0.01 * rng.standard_normal(len(t))
        path = root / "wav" / f"{split}{i}.wav"
        sf.write(str(path), x.astype(np.float32), sr)
        scp.append(f"{split}{i} {path}")
        lab.append(f"{split}{i} {['low', 'high'][c]}")
    (d / "wav.scp").write_text("\n".join(scp) + "\n")
    (d / "utt2label").write_text("\n".join(lab) + "\n")
    return d


def _small(sr=8000):
    return ClassifierConfig(
        sample_rate=sr, samples=2000, n_fft=256, hop=64, n_mels=32, channels=[8, 16], feature_dim=16
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf")
    splits = {s: _tone_corpus(root, s, n, seed) for s, n, seed in (("train", 24, 0), ("valid", 8, 1), ("test", 10, 2))}
    info = train_classifier(
        splits["train"], splits["valid"], root / "model", splits["test"], epochs=15, batch_size=8, lr=5e-3,
        config=_small(), log=lambda _: None,
    )  # fmt: skip
    return root, splits, info


def test_audio_classifier_learns_held_out_tones_and_round_trips(trained):
    root, splits, info = trained
    assert info["test_accuracy"] >= 0.9 and info["config"]["labels"] == ["low", "high"]
    model, meta = load_classifier(root / "model")
    assert meta["test_accuracy"] == info["test_accuracy"] and len(meta["weights_sha1"]) == 40
    x, y, _ = load_labelled(splits["test"], model.config)
    with torch.no_grad():
        assert (model(x).argmax(1).numpy() == y).mean() == pytest.approx(info["test_accuracy"])
    rep = evaluate(splits["test"], splits["valid"], root / "eval", metrics=[], classifier=root / "model")
    assert 1.05 < rep["metrics"]["inception_score"] <= 2.0 + 1e-9  # two balanced classes, told apart
    assert sum(rep["gen_class_histogram"]) == 16 and rep["metrics"]["classifier_fid"] > 0


def test_unknown_label_in_evaluated_split_is_named(trained, tmp_path):
    root, splits, _ = trained
    d = tmp_path / "odd"
    d.mkdir()
    (d / "wav.scp").write_text((splits["test"] / "wav.scp").read_text())
    lines = (splits["test"] / "utt2label").read_text().splitlines()
    (d / "utt2label").write_text("\n".join([lines[0].split()[0] + " middle", *lines[1:]]) + "\n")
    model, _ = load_classifier(root / "model")
    with pytest.raises(ValueError, match=r"utt2label: labels \['middle'\]"):
        load_labelled(d, model.config)


def test_image_classifier_learns_stripe_orientation(tmp_path):
    rng = np.random.default_rng(0)

    def split(name, n):
        labels = np.arange(n) % 2
        period = rng.integers(2, 5, n)
        grid = np.arange(16)
        imgs = np.empty((n, 1, 16, 16), np.uint8)
        for i in range(n):
            line = ((grid + rng.integers(0, 4)) // period[i]) % 2 * 200 + 20
            imgs[i, 0] = np.tile(line, (16, 1)) if labels[i] else np.tile(line[:, None], (1, 16))
        d = tmp_path / name
        d.mkdir()
        np.save(d / "images.npy", imgs)
        np.save(d / "labels.npy", labels)
        return d

    tr, va, te = split("train", 48), split("valid", 16), split("test", 20)
    info = train_classifier(tr, va, tmp_path / "m", te, epochs=6, batch_size=16, lr=5e-3,
                            config=ClassifierConfig(channels=[8, 16], feature_dim=16), log=lambda _: None)  # fmt: skip
    assert info["config"]["kind"] == "images" and info["config"]["image_shape"] == [1, 16, 16]
    assert info["test_accuracy"] >= 0.9
    rep = evaluate(te, te, tmp_path / "out", classifier=tmp_path / "m")
    assert rep["metrics"]["classifier_fid"] == pytest.approx(0.0, abs=1e-6)
