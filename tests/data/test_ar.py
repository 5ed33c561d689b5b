"""The `ar` corpus: reproducible from its seed, its analytic PSD right, its clips matching it."""

import json

import numpy as np
import pytest

from audiodiff.data.corpora import prepare
from audiodiff.data.corpora.ar import ar_clips, ar_coefficients, ar_noise_std, ar_psd, prepare_ar
from audiodiff.eval.psd import band_psd_error


def _wav_bytes(root):
    return {p.name: p.read_bytes() for p in sorted((root / "wav").glob("*.wav"))}


def test_ar_reproducible_from_seed(tmp_path):
    a = prepare("ar", tmp_path / "a", {"n": "20", "length": "256", "seed": "3"})
    prepare_ar(tmp_path / "b", n=20, length=256, seed=3)
    prepare_ar(tmp_path / "c", n=20, length=256, seed=4)
    assert a["utterances"] == {"train": 16, "valid": 2, "test": 2}
    assert _wav_bytes(tmp_path / "a") == _wav_bytes(tmp_path / "b")
    assert _wav_bytes(tmp_path / "a") != _wav_bytes(tmp_path / "c")
    spec = json.loads((tmp_path / "a" / "data" / "test" / "analytic_psd.json").read_text())
    assert spec == json.loads((tmp_path / "a" / "analytic_psd.json").read_text())
    assert len(spec["ar"]) == 3 and spec["sample_rate"] == 8000


def test_analytic_psd_integrates_to_the_variance():
    ar = ar_coefficients(8000, 1000.0, 0.95, 0.7)
    noise_std = ar_noise_std(ar, 0.2)
    freqs = np.linspace(0, 4000, 40001)
    psd = ar_psd(ar, noise_std, freqs, 8000)
    assert np.trapezoid(psd, freqs) == pytest.approx(0.2**2, rel=1e-3)
    assert freqs[np.argmax(psd)] == pytest.approx(1000.0, abs=30)  # the resonance
    assert 10 * np.log10(psd.max() / psd.min()) > 30  # a spectrum spanning tens of dB


def test_ar_clips_match_the_analytic_psd():
    ar = ar_coefficients(8000, 1000.0, 0.95, 0.7)
    noise_std = ar_noise_std(ar, 0.2)
    clips = ar_clips(ar, noise_std, 300, 2048, np.random.default_rng(0))
    assert clips.std() == pytest.approx(0.2, rel=0.02)
    freqs = np.arange(4001.0)
    spec = {"sample_rate": 8000, "freqs_hz": freqs, "psd": ar_psd(ar, noise_std, freqs, 8000)}
    result = band_psd_error(clips, spec)
    assert result["max_db_99"] < 0.25
    assert max(abs(b["error_db"]) for b in result["bands"]) < 0.5


@pytest.mark.parametrize(
    "options, match",
    [({"radius": 1.0}, "radius"), ({"resonance_hz": 5000.0}, "resonance_hz"), ({"std": 0.5}, "std"), ({"n": 5}, "n=")],
)
def test_ar_bad_options(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        prepare_ar(tmp_path, **options)
