"""Float WAVs: read back exactly, and the same samples give the same bytes whenever written."""

import time

import numpy as np
import pytest
import soundfile as sf

from audiodiff.audio.io import save_float_wav


def test_a_float_wav_reads_back_exactly_and_unclipped(tmp_path):
    x = np.random.default_rng(0).standard_normal(1001).astype(np.float32) * 1.5  # beyond [-1, 1]
    save_float_wav(tmp_path / "a.wav", x, 8000)
    info = sf.info(str(tmp_path / "a.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 1, 1001, "FLOAT")
    back, rate = sf.read(str(tmp_path / "a.wav"), dtype="float32")
    assert rate == 8000 and np.array_equal(back, x)


def test_a_float_wav_written_a_second_later_has_the_same_bytes(tmp_path):
    # soundfile's float WAVs carry a PEAK chunk with the time of writing: the ar corpus prepared
    # twice from one seed differed in the files written in different seconds
    x = np.linspace(-0.5, 0.5, 300, dtype=np.float32)
    save_float_wav(tmp_path / "a.wav", x, 8000)
    time.sleep(1.1)
    save_float_wav(tmp_path / "b.wav", x, 8000)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_a_float_wav_refuses_non_finite_samples(tmp_path):
    with pytest.raises(ValueError, match="bad.wav.*NaN"):
        save_float_wav(tmp_path / "bad.wav", np.array([0.0, np.nan], np.float32), 8000)
