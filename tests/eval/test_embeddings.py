"""Audio embedders (GE2E) and the per-file embedding cache."""

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from audiodiff.eval import embeddings
from audiodiff.eval.embeddings import GE2EEmbedder, MelStatsEmbedder, embed_files
from tests.conftest import write_corpus


def fake_ge2e_weights(path):
    """A checkpoint with resemblyzer's layout and shapes: {"step", "model_state", "optimizer_state"}."""
    state = {
        "similarity_weight": torch.tensor([10.0]),
        "similarity_bias": torch.tensor([-5.0]),
        "linear.weight": torch.randn(256, 256) * 0.05,
        "linear.bias": torch.randn(256) * 0.05,
    }
    for layer in range(3):
        state[f"lstm.weight_ih_l{layer}"] = torch.randn(1024, 40 if layer == 0 else 256) * 0.05
        state[f"lstm.weight_hh_l{layer}"] = torch.randn(1024, 256) * 0.05
        state[f"lstm.bias_ih_l{layer}"] = torch.randn(1024) * 0.05
        state[f"lstm.bias_hh_l{layer}"] = torch.randn(1024) * 0.05
    torch.save({"step": 1, "model_state": state, "optimizer_state": {}}, path)
    return state


def test_ge2e_loads_resemblyzer_layout_and_matches_its_front_end(tmp_path):
    state = fake_ge2e_weights(tmp_path / "pretrained.pt")
    emb = GE2EEmbedder(tmp_path / "pretrained.pt")
    assert torch.equal(emb.net.lstm.weight_hh_l2, state["lstm.weight_hh_l2"])
    t = torch.arange(16000) / 16000
    wav = 0.001 * torch.sin(2 * torch.pi * 220 * t)  # quiet: gets resemblyzer's -30 dBFS gain
    gain = 10 ** ((-30 - 10 * np.log10(np.mean(wav.double().numpy() ** 2))) / 20)
    ref = librosa.feature.melspectrogram(
        y=wav.double().numpy() * gain, sr=16000, n_fft=400, hop_length=160, n_mels=40
    ).T
    np.testing.assert_allclose(emb.mels(wav).numpy(), ref, rtol=1e-4, atol=1e-7)
    out = emb([wav, 0.5 * wav])
    assert out.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, rtol=1e-5)


class Counting(MelStatsEmbedder):
    calls = 0

    def __call__(self, wavs):
        Counting.calls += len(wavs)
        return super().__call__(wavs)


def test_cache_hit_skips_the_embedder(tmp_path):
    paths = sorted((write_corpus(tmp_path, n=4).parent.parent / "wav").glob("*.wav"))
    first, info1 = embed_files(paths, Counting(), tmp_path / "cache")
    assert Counting.calls == 4 and info1["computed"] == 4
    second, info2 = embed_files(paths, Counting(), tmp_path / "cache")
    assert Counting.calls == 4 and info2["cache_hits"] == 4 and np.array_equal(first, second)
    assert info2["durations"] == pytest.approx([0.25] * 4)


def test_bad_cache_entries_are_recomputed_with_a_warning_naming_each(tmp_path):
    paths = sorted((write_corpus(tmp_path, n=5).parent.parent / "wav").glob("*.wav"))
    first, _ = embed_files(paths, Counting(), tmp_path / "cache")
    entries = sorted((tmp_path / "cache").glob("*/*"))
    assert len(entries) == 5
    entries[0].write_bytes(b"")  # empty
    entries[1].write_bytes(entries[1].read_bytes()[:100])  # truncated
    sha1 = entries[2].name.split(".")[0]
    embeddings._write_entry(entries[2], sha1, Counting(), np.zeros(3, np.float32), 0.25)  # wrong shape
    entries[3].write_bytes(entries[4].read_bytes())  # another file's entry under this file's name
    calls = Counting.calls
    with pytest.warns(embeddings.CacheWarning) as caught:
        second, info = embed_files(paths, Counting(), tmp_path / "cache")
    assert np.array_equal(second, first) and Counting.calls == calls + 4
    assert info["cache_hits"] == 1 and info["computed"] == 4
    reasons = {Path(r["entry"]).name: r["reason"] for r in info["recomputed"]}
    assert set(reasons) == {e.name for e in entries[:4]}
    assert reasons[entries[0].name] == "empty file" and "unreadable" in reasons[entries[1].name]
    assert "shape (3,)" in reasons[entries[2].name] and "another file" in reasons[entries[3].name]
    messages = [str(w.message) for w in caught]
    assert all(any(str(e) in m and "recomputed" in m for m in messages) for e in entries[:4])
    third, info = embed_files(paths, Counting(), tmp_path / "cache")  # repaired on the way
    assert np.array_equal(third, first) and info["cache_hits"] == 5 and info["recomputed"] == []


def test_cache_writes_are_atomic(tmp_path, monkeypatch):
    """A write that dies before its final rename leaves no entry under the entry's name."""
    import os

    paths = sorted((write_corpus(tmp_path, n=2).parent.parent / "wav").glob("*.wav"))

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        embed_files(paths, Counting(), tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.startswith(".")] == []
    monkeypatch.undo()
    _, info = embed_files(paths, Counting(), tmp_path / "cache")
    assert info["computed"] == 2 and info["recomputed"] == []
