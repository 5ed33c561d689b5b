"""Set and paired audio metrics: NDB/K, MR-STFT distance, log-spectral distance, PESQ, mean spectrum."""

import numpy as np
import pytest
import torch

from audiodiff.eval.metrics import band_log_spectral_distance, log_spectral_distance, mrstft_distance, ndb, pesq_wb


def test_ndb_and_paired_metrics_properties():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2000, 4))
    same = ndb(real, rng.normal(size=(2000, 4)), bins=20)
    far = ndb(real, rng.normal(1.5, 1.0, size=(2000, 4)), bins=20)
    assert same["ndb_k"] <= 0.15 and far["ndb_k"] >= 0.5
    x = torch.randn(8000)
    assert mrstft_distance(x, x) == pytest.approx(0, abs=1e-6) and log_spectral_distance(x, x) == 0
    assert log_spectral_distance(x, 0.5 * x) == pytest.approx(20 * np.log10(2), rel=1e-3)


@pytest.mark.parametrize("n", [64, 300, 512, 1024])
def test_paired_stft_metrics_score_a_pair_shorter_than_their_frame_zero_padded_alike(n):
    """Under the centred STFT's n_fft // 2 + 1 samples (lsd 513, mrstft 1025) torch.stft stops with a
    padding error; the pair is zero-padded at the end, both clips alike: the same score as the padded pair,
    identical clips differ by nothing and a gain is its dB in every band."""
    x, y = torch.randn(n, generator=torch.Generator().manual_seed(n)), torch.randn(n)
    pad = torch.nn.functional.pad
    lsd_pad, mr_pad = (0, max(513 - n, 0)), (0, 1025 - n)
    assert log_spectral_distance(x, y) == log_spectral_distance(pad(x, lsd_pad), pad(y, lsd_pad))
    assert mrstft_distance(x, y) == mrstft_distance(pad(x, mr_pad), pad(y, mr_pad)) > 0
    assert log_spectral_distance(x, x) == 0 and mrstft_distance(x, x) == pytest.approx(0, abs=1e-6)
    db = 20 * np.log10(2)
    assert log_spectral_distance(torch.cat([x, torch.randn(2000)]), 2 * x) == pytest.approx(db, rel=1e-3)  # cut first
    bands = band_log_spectral_distance(x, 2 * x, 16000)
    assert [b["lsd_db"] for b in bands] + [b["level_err_db"] for b in bands] == pytest.approx([db] * 6, rel=1e-3)


@pytest.mark.parametrize("n", [1025, 3000])
def test_paired_stft_metrics_of_pairs_long_enough_are_bit_identical_to_the_unpadded_scores(n):
    """aligned_pair pads only pairs under the STFT's minimum: a pair long enough for mrstft's 2048-point frame
    (cut to the shorter clip) scores bit for bit as before the padding existed (archived scores stay)."""
    from audiodiff.eval.metrics import _db_difference
    from audiodiff.losses import MultiResolutionSTFTLoss

    g = torch.Generator().manual_seed(n)
    x, y = torch.randn(n + 100, generator=g), torch.randn(n, generator=g)
    window = torch.hann_window(1024, dtype=torch.float64)
    old_db = [10 * torch.log10(torch.stft(c[:n].double(), 1024, 256, window=window, return_complex=True).abs().square()
                               + 1e-10) for c in (y, x)]  # fmt: skip
    old_lsd = float((old_db[0] - old_db[1]).square().mean(0).sqrt().mean())
    old_mr = float(MultiResolutionSTFTLoss("auraloss")(y[None, None, :n].float(), x[None, None, :n].float()))
    assert log_spectral_distance(x, y) == old_lsd and mrstft_distance(x, y) == old_mr
    assert torch.equal(_db_difference(x, y, 1024), old_db[0] - old_db[1])  # what band_lsd reads


def test_band_lsd_of_a_louder_clip_is_its_gain_in_every_band_and_the_level_error_is_signed():
    x = torch.randn(16000, generator=torch.Generator().manual_seed(0))
    db = 20 * np.log10(2)
    bands = band_log_spectral_distance(x, 2 * x, 16000)
    assert [b["band_hz"] for b in bands] == [[0, 1000], [1000, 4000], [4000, 8000]]
    assert [b["lsd_db"] for b in bands] == pytest.approx([db] * 3, rel=1e-6)
    assert [b["level_err_db"] for b in bands] == pytest.approx([db] * 3, rel=1e-6)  # generated louder: +
    assert [b["level_err_db"] for b in band_log_spectral_distance(2 * x, x, 16000)] == pytest.approx([-db] * 3)
    assert [b["band_hz"] for b in band_log_spectral_distance(x, x, 8000)] == [[0, 1000], [1000, 4000]]  # Nyquist 4k
    y = 0.5 * x + 0.01 * torch.randn(16000, generator=torch.Generator().manual_seed(1))
    whole = band_log_spectral_distance(x, y, 16000, edges_hz=(0,))  # one band over all bins: lsd itself
    assert whole[0]["lsd_db"] == pytest.approx(log_spectral_distance(x, y), rel=1e-12)


def test_band_lsd_puts_an_error_above_4khz_in_the_high_band_only():
    """The clip with its 4-8 kHz half (FFT bins) doubled: +6.02 dB there; at 0-1 kHz 0 but in the two edge
    frames (reflect padding: 1.85 and 0.16 dB), at 1-4 kHz the Hann window's leakage next to 4 kHz (0.2 dB)."""
    x = np.random.default_rng(0).standard_normal(16000)
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(16000, 1 / 16000) >= 4000] *= 2
    low, mid, high = band_log_spectral_distance(torch.from_numpy(x), torch.from_numpy(np.fft.irfft(spec, 16000)), 16000)
    assert high["lsd_db"] == pytest.approx(6.02, abs=0.15) and high["level_err_db"] == pytest.approx(6.02, abs=0.15)
    assert low["lsd_db"] < 0.1 and abs(low["level_err_db"]) < 0.1
    assert mid["lsd_db"] < 0.5 and abs(mid["level_err_db"]) < 0.3


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


def _old_mean_log_spectrum(paths, sample_rate, n_fft=1024):
    """mean_log_spectrum before clips too short for its STFT were padded (the reference for long clips)."""
    from audiodiff.audio.io import load_audio

    window = torch.hann_window(n_fft)
    total, frames = torch.zeros(n_fft // 2 + 1, dtype=torch.float64), 0
    for p in paths:
        spec = torch.stft(load_audio(p, sample_rate), n_fft, n_fft // 4, window=window, return_complex=True)
        total += spec.abs().square().sum(1).double()
        frames += spec.shape[1]
    return (10 * torch.log10(total / max(frames, 1) + 1e-12)).numpy()


def test_mean_log_spectrum_pads_a_clip_too_short_for_its_stft_and_counts_it(tmp_path):
    """A 4 kHz clip of 128 ms (512 samples, the audit's shortest) is under the 513 samples the centred
    1024-point STFT takes: it was torch's padding error. It is zero-padded to 513 (the same spectrum as
    that padded file) and counted; clips long enough are scored bit for bit as before, uncounted."""
    import soundfile as sf

    from audiodiff.eval.metrics import mean_log_spectrum

    x = (0.2 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32)
    for name, clip in (("short", x[:512]), ("padded", np.pad(x[:512], (0, 1))), ("tiny", x[:40]), ("long", x)):
        sf.write(str(tmp_path / f"{name}.wav"), clip, 4000, subtype="FLOAT")
    f = {n: str(tmp_path / f"{n}.wav") for n in ("short", "padded", "tiny", "long")}
    assert np.array_equal(mean_log_spectrum([f["short"]], 4000), mean_log_spectrum([f["padded"]], 4000))
    from audiodiff.eval.metrics import mean_log_spectrum_padded

    short, padded = (
        mean_log_spectrum_padded([f["short"], f["tiny"]], 4000),
        mean_log_spectrum_padded([f["padded"]], 4000),
    )
    assert short[1] == 2 and padded[1] == 0 and np.isfinite(short[0]).all()
    for files in ([f["padded"]], [f["long"]], [f["long"], f["padded"]]):  # 513 samples and more: as before
        assert np.array_equal(mean_log_spectrum(files, 4000), _old_mean_log_spectrum(files, 4000))
