import importlib.metadata
import json

import librosa
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from audiodiff.cli import main
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


def test_ge2e_without_weights_fails_with_one_line(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embeddings.importlib.metadata, "files", missing)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps resemblyzer") as info:
        GE2EEmbedder()
    assert "\n" not in str(info.value)


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


def test_evaluate_cli_writes_report(tmp_path):
    ref = write_corpus(tmp_path / "a", n=6)
    gen = write_corpus(tmp_path / "b", n=5, seconds=0.3)
    out = tmp_path / "eval"
    res = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--ref",
            str(ref),
            "--gen",
            str(gen),
            "--out",
            str(out),
            "--embedder",
            "melstats",
            "--cache",
            str(tmp_path / "c"),
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_ref"] == 6 and report["n_gen"] == 5 and report["embedder"]["name"] == "melstats"
    assert set(report["metrics"]) == {"fad", "fad_inf", "kad", "mean_spectrum_db_l1"}
    assert report["durations_s"]["gen"]["mean"] == pytest.approx(0.3)
    assert (out / "mean_spectrum.png").stat().st_size > 1000 and "| fad |" in (out / "metrics.md").read_text()
    res = CliRunner().invoke(
        main, ["evaluate", "--ref", str(ref), "--gen", str(gen), "--out", str(out), "--metrics", "fad,is"]
    )
    assert res.exit_code != 0 and "unknown metric(s) ['is']" in res.output
