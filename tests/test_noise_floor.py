"""egs/asterisk_en/local/noise_floor.py: PESQ against white noise, and the noise in a vocoded set's silence."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("noise_floor", ROOT / "egs" / "asterisk_en" / "local" / "noise_floor.py")
nf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nf)


def _prompt(seed: int) -> np.ndarray:
    """1 s: 0.6 s of a harmonic voice with a moving pitch, then 0.4 s of near silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(9600) / 16000
    pitch = 160 + 30 * np.sin(2 * np.pi * 2 * t)
    voice = sum(np.sin(2 * np.pi * np.cumsum(k * pitch) / 16000) / k for k in range(1, 6)) * 0.3
    return np.concatenate([voice, np.zeros(6400)]) + 1e-4 * rng.standard_normal(16000)


@pytest.fixture
def sets(tmp_path):
    pytest.importorskip("pesq")
    ref, quiet, noisy = (tmp_path / n for n in ("ref", "quiet", "noisy"))
    for d in (ref, quiet, noisy):
        d.mkdir()
    rng = np.random.default_rng(1)
    lines = []
    for i in range(2):
        x = _prompt(i)
        sf.write(ref / f"u{i}.wav", x, 16000, subtype="FLOAT")
        sf.write(quiet / f"u{i}.wav", x + 0.0005 * rng.standard_normal(x.size), 16000, subtype="FLOAT")
        sf.write(noisy / f"u{i}.wav", x + 0.006 * rng.standard_normal(x.size), 16000, subtype="FLOAT")
        lines.append(f"u{i} {ref / f'u{i}.wav'}\n")
    (ref / "wav.scp").write_text("".join(lines))
    return tmp_path


def test_pesq_falls_with_white_noise_and_a_noisy_sets_silence_shows_its_noise(sets):
    out = sets / "nf"
    res = nf.main([str(sets / "ref"), "--gen", str(sets / "quiet"), str(sets / "noisy"), "--out", str(out)])
    curve = res["pesq_with_noise"]
    assert curve[0] > 4.5 and all(a > b for a, b in zip(curve, curve[1:]))  # stds ascend: PESQ strictly falls
    quiet, noisy = res["sets"]
    assert quiet["silent_share"] == pytest.approx(0.4, abs=0.05)  # the last 0.4 s, frames of 512
    assert quiet["ref_rms_silent"] == pytest.approx(1e-4, rel=0.2)
    assert quiet["gen_rms_silent"] == pytest.approx(0.0005, rel=0.2)
    assert noisy["gen_rms_silent"] == pytest.approx(0.006, rel=0.1)
    assert noisy["pesq_wb"] < quiet["pesq_wb"] - 1
    # the white-noise std of the noisy set's PESQ is near the noise it holds (it is white noise)
    assert noisy["white_noise_std_of_same_pesq"] == pytest.approx(0.006, rel=0.5)
    assert json.loads(out.with_suffix(".json").read_text())["sets"][1]["gen"] == str(sets / "noisy")
    assert "noise std of same PESQ" in out.with_suffix(".md").read_text()


def test_a_set_missing_a_prompt_is_a_one_line_error_naming_it(sets):
    (sets / "quiet" / "u1.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"quiet: no u1.wav for the reference's utterance 'u1'"):
        nf.main([str(sets / "ref"), "--gen", str(sets / "quiet"), "--out", str(sets / "nf"), "--stds", "0,0.01"])


def test_matching_std_interpolates_in_log_std_and_says_none_outside_the_curve():
    stds, curve = [0.0, 0.001, 0.01], [4.6, 3.5, 1.4]
    assert nf.matching_std(3.5, stds, curve) == pytest.approx(0.001)
    assert nf.matching_std((3.5 + 1.4) / 2, stds, curve) == pytest.approx(np.sqrt(0.001 * 0.01))
    assert nf.matching_std(4.0, stds, curve) is None and nf.matching_std(1.0, stds, curve) is None


def test_bad_stds_are_refused(sets):
    with pytest.raises(SystemExit):
        nf.main([str(sets / "ref"), "--stds", "0,-1"])
