"""Set and paired audio metrics: NDB/K, MR-STFT distance, log-spectral distance, PESQ, mean spectrum."""

import numpy as np
import pytest
import torch

from audiodiff.eval.metrics import log_spectral_distance, mrstft_distance, ndb, pesq_wb


def test_ndb_and_paired_metrics_properties():
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
    assert pesq_wb(voiced[:4000], voiced[:4000]) > 4  # 0.25 s: the shortest PESQ takes
    with pytest.raises(ValueError, match=r"at least 0.25 s \(4000 samples\), got 3999"):
        pesq_wb(voiced, voiced[:3999])  # was the pesq package's BufferTooShortError


def test_mean_log_spectrum_peaks_at_a_tones_bin_and_is_level_in_db(tmp_path):
    import soundfile as sf

    from audiodiff.eval.metrics import mean_log_spectrum

    t = np.arange(16000) / 16000
    for name, amp in (("a", 0.5), ("b", 0.05)):
        sf.write(str(tmp_path / f"{name}.wav"), (amp * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 16000)
    loud, quiet = (mean_log_spectrum([str(tmp_path / f"{n}.wav")], 16000) for n in ("a", "b"))
    assert loud.shape == (513,) and int(np.argmax(loud)) == 64  # 1000 Hz / (16000 / 1024) Hz per bin
    assert loud[64] - quiet[64] == pytest.approx(20, abs=0.01)  # 10x the amplitude: +20 dB
