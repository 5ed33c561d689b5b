import json
from pathlib import Path

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


def test_evaluate_cli_recomputes_an_empty_cache_entry_and_names_it(tmp_path):
    ref = write_corpus(tmp_path / "a", n=4)
    args = ["evaluate", "--ref", str(ref), "--gen", str(ref), "--metrics", "fad", "--embedder", "melstats"]
    args += ["--cache", str(tmp_path / "c")]
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "e1")]).exit_code == 0
    empty = sorted((tmp_path / "c").glob("*/*"))[0]
    empty.write_bytes(b"")  # was: "Aborted!" (numpy's EOFError, taken by click for Ctrl-D)
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "e2")])
    assert res.exit_code == 0 and "Aborted" not in res.output, res.output
    cache = json.loads((tmp_path / "e2" / "metrics.json").read_text())["cache"]
    assert [(r["entry"], r["reason"]) for r in cache["recomputed"]] == [(str(empty), "empty file")]
    assert cache["hits"] == 7 and cache["computed"] == 1  # the same 4 files as ref and gen: one bad entry


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
    assert set(report["metrics"]) == {"fad", "fad_inf", "kad", "ndb_k", "mean_spectrum_db_l1"}
    assert report["durations_s"]["gen"]["mean"] == pytest.approx(0.3)
    settings = report["settings"]
    assert settings["kad"]["bandwidth"] > 0 and settings["ndb"]["bins"] == report["ndb_bins"]
    assert len(settings["fad_inf"]["points"]) >= 2 and settings["metrics"][0] == "fad"
    assert (out / "mean_spectrum.png").stat().st_size > 1000 and "| fad |" in (out / "metrics.md").read_text()
    res = CliRunner().invoke(
        main, ["evaluate", "--ref", str(ref), "--gen", str(gen), "--out", str(out), "--metrics", "fad,is"]
    )
    assert res.exit_code != 0 and "unknown metric(s) ['is']" in res.output


def test_report_html_holds_playable_audio_and_images(tmp_path):
    import base64
    import io
    from html.parser import HTMLParser

    import soundfile as sf

    ref = write_corpus(tmp_path / "a", n=3)
    gen = write_corpus(tmp_path / "b", n=3, seconds=0.3)
    for wav in (tmp_path / "b" / "wav").glob("*.wav"):  # the same words at half the amplitude
        data, rate = sf.read(wav)
        sf.write(wav, 0.5 * data, rate)
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
            "--metrics",
            "fad,mrstft,lsd",
            "--cache",
            str(tmp_path / "c"),
        ],
    )
    assert res.exit_code == 0, res.output

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.sources = {"audio": [], "img": []}

        def handle_starttag(self, tag, attrs):
            if tag in self.sources:
                self.sources[tag].append(dict(attrs)["src"])

    parser = Collect()
    parser.feed((out / "report.html").read_text())
    assert len(parser.sources["audio"]) == 6 and len(parser.sources["img"]) == 6
    audio, sr = sf.read(io.BytesIO(base64.b64decode(parser.sources["audio"][0].split(",", 1)[1])))
    assert sr == 16000 and len(audio) == int(0.3 * 16000)  # the generated clips come first
    assert base64.b64decode(parser.sources["img"][0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_pairs"] == 3 and report["metrics"]["mrstft"] > 0
    assert report["metrics"]["lsd_db"] > 3  # about 6 dB, plus 16-bit quantization at low levels


def test_ndb_and_paired_metrics_properties():
    from audiodiff.eval.metrics import log_spectral_distance, mrstft_distance, ndb

    rng = np.random.default_rng(0)
    real = rng.normal(size=(2000, 4))
    same = ndb(real, rng.normal(size=(2000, 4)), bins=20)
    far = ndb(real, rng.normal(1.5, 1.0, size=(2000, 4)), bins=20)
    assert same["ndb_k"] <= 0.15 and far["ndb_k"] >= 0.5
    x = torch.randn(8000)
    assert mrstft_distance(x, x) == pytest.approx(0, abs=1e-6) and log_spectral_distance(x, x) == 0
    assert log_spectral_distance(x, 0.5 * x) == pytest.approx(20 * np.log10(2), rel=1e-3)


def test_pesq_wide_band_is_high_for_identical_and_lower_for_noisy_speechlike_audio():
    pytest.importorskip("pesq")
    from audiodiff.eval.metrics import pesq_wb

    t = torch.arange(32000) / 16000
    voiced = (
        sum(torch.sin(2 * np.pi * 150 * k * t) / k for k in (1, 2, 3)) * 0.2 * (1 + torch.sin(2 * np.pi * 3 * t)) / 2
    )
    clean = pesq_wb(voiced, voiced)
    noisy = pesq_wb(voiced, voiced + 0.05 * torch.randn(32000))
    assert clean > 4.5 and noisy < clean - 1
    assert pesq_wb(torch.zeros(32000), torch.zeros(32000)) is None  # no speech: reported, not a crash
    with pytest.raises(ValueError, match="16 kHz"):
        pesq_wb(voiced, voiced, sample_rate=8000)


def _chromium():
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell"):
        if path := shutil.which(name):
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_report_html_players_and_images_load_in_headless_chromium(tmp_path):
    """Open report.html in headless Chromium: every <img> decodes and every <audio> reads its metadata."""
    import subprocess

    from audiodiff.eval.evaluate import evaluate
    from tests.conftest import write_corpus

    ref = write_corpus(tmp_path / "r", n=3)
    out = tmp_path / "e"
    evaluate(ref, ref, out, metrics=["fad"], embedder="melstats", cache_dir=tmp_path / "c")
    harness = tmp_path / "harness.html"
    harness.write_text(
        '<html><body><iframe id="f" src="e/report.html"></iframe><pre id="r">pending</pre><script>\n'
        'const f = document.getElementById("f");\n'
        "f.onload = () => setTimeout(() => {\n"
        "  const d = f.contentDocument;\n"
        "  const imgs = [...d.images].filter(i => i.complete && i.naturalWidth > 0).length;\n"
        '  const auds = [...d.querySelectorAll("audio")];\n'
        "  const ok = auds.filter(a => a.readyState >= 1 && a.duration > 0).length;\n"
        '  document.getElementById("r").textContent = `img ${imgs}/${d.images.length} audio ${ok}/${auds.length}`;\n'
        "}, 1500);\n"
        "</script></body></html>"
    )
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
           "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=10000", "--dump-dom",
           harness.as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert "img 6/6 audio 6/6" in dom, dom[-500:]


def test_mean_spectrum_uses_the_lower_native_rate_of_the_two_sets(tmp_path):
    """8 kHz clips vs the same clips upsampled to 16 kHz: equal below 4 kHz, so the distance is small."""
    import soundfile as sf

    from audiodiff.audio.io import load_audio
    from audiodiff.eval.evaluate import evaluate

    ref, gen = tmp_path / "r", tmp_path / "g"
    ref.mkdir(), gen.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        x = (0.1 * rng.standard_normal(8000)).astype(np.float32)
        sf.write(str(ref / f"{i}.wav"), x, 8000)
        sf.write(str(gen / f"{i}.wav"), load_audio(ref / f"{i}.wav", 16000).numpy(), 16000)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["mean_spectrum"])
    assert rep["settings"]["mean_spectrum"]["sample_rate"] == 8000
    assert rep["metrics"]["mean_spectrum_db_l1"] < 2.0  # resampler roll-off in the last bins below 4 kHz
