"""`evaluate` at the native sample rate: paired metrics, the mean spectrum and report.html."""

import base64
import io
import json
import re

import numpy as np
import pytest
import soundfile as sf

from audiodiff.audio.io import load_audio
from audiodiff.eval.evaluate import evaluate

RATE = 22050


def _noise_band(rng, n, lo, hi, rate=RATE):
    """White noise band-limited to [lo, hi] Hz by zeroing FFT bins. -> (n,)"""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spec[(freqs < lo) | (freqs > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / np.abs(x).max()


def _write(folder, name, audio, rate=RATE):
    folder.mkdir(exist_ok=True)
    sf.write(str(folder / f"{name}.wav"), audio.astype(np.float32), rate, subtype="FLOAT")


def test_pairs_differing_only_above_8khz_have_nonzero_mrstft_and_lsd_at_22khz(tmp_path):
    rng = np.random.default_rng(0)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(2):
        low = 0.3 * _noise_band(rng, RATE, 50, 7000)
        _write(ref, f"u{i}", low + 0.1 * _noise_band(rng, RATE, 9000, 10500))
        _write(gen, f"u{i}", low)  # the same clip without its 9-10.5 kHz band
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["mrstft", "lsd"])
    assert rep["settings"]["mrstft"]["sample_rate"] == RATE and rep["settings"]["lsd"]["sample_rate"] == RATE
    assert rep["metrics"]["mrstft"] > 0.5  # 1.76; at 16 kHz (the band above its Nyquist) it was 0.0027
    assert rep["metrics"]["lsd_db"] > 10  # 37 dB; at 16 kHz it was 0.1 dB
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert saved["settings"]["mrstft"] == {"sample_rate": RATE, "resolutions": "auraloss"}


def test_paired_metrics_use_the_lower_native_rate_of_the_two_sets(tmp_path):
    """An 8 kHz model against 22.05 kHz references: compared at 8 kHz, where both carry content."""
    rng = np.random.default_rng(1)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(2):
        _write(ref, f"u{i}", 0.3 * _noise_band(rng, RATE, 50, 3500) + 0.1 * _noise_band(rng, RATE, 6000, 10000))
        _write(gen, f"u{i}", load_audio(ref / f"u{i}.wav", 8000).numpy(), 8000)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["mrstft", "lsd"])
    assert rep["settings"]["mrstft"]["sample_rate"] == 8000 and rep["settings"]["lsd"]["sample_rate"] == 8000
    assert rep["metrics"]["mrstft"] < 0.1  # the same audio below 4 kHz


def test_mean_spectrum_sees_a_10khz_tone_missing_from_the_generated_set(tmp_path):
    t = np.arange(RATE) / RATE
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(3):
        speechlike = 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)
        _write(ref, f"r{i}", speechlike + 0.2 * np.sin(2 * np.pi * 10000 * t))
        _write(gen, f"g{i}", speechlike)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["mean_spectrum"])
    assert rep["settings"]["mean_spectrum"]["sample_rate"] == RATE
    assert rep["metrics"]["mean_spectrum_db_l1"] > 5  # 13.5 dB; at 16 kHz, without the tone: 1.3


def test_report_html_embeds_clips_at_their_native_rates(tmp_path):
    rng = np.random.default_rng(2)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    _write(ref, "a", 0.2 * _noise_band(rng, RATE, 50, 10000))
    _write(gen, "a", 0.2 * _noise_band(rng, 8000, 50, 3900, rate=8000), rate=8000)
    evaluate(ref, gen, tmp_path / "e", metrics=["mrstft"])
    sources = re.findall(
        r'<audio [^>]*src="data:audio/wav;base64,([^"]+)"', (tmp_path / "e" / "report.html").read_text()
    )
    rates = [sf.info(io.BytesIO(base64.b64decode(s))).samplerate for s in sources]
    assert rates == [8000, RATE]  # generated first, then reference; neither resampled to 16 kHz


@pytest.mark.parametrize("metric", ["fad", "kad"])
def test_embedding_metrics_record_the_embedders_rate_and_kad_its_definition(tmp_path, metric):
    from tests.conftest import write_corpus

    ref = write_corpus(tmp_path / "a", n=4, sample_rate=RATE)
    rep = evaluate(ref, ref, tmp_path / "e", metrics=[metric], embedder="melstats", cache_dir=tmp_path / "c")
    assert rep["settings"][metric]["sample_rate"] == 16000  # melstats embeds at 16 kHz
    if metric == "kad":
        kad = rep["settings"]["kad"]
        assert kad["scale"] == 100 and "reference" in kad["bandwidth_rule"] and "kadtk" in kad["definition"]
