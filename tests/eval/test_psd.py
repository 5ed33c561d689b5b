"""band_psd: per-band power-spectrum error against an analytic PSD (issue 16, problem 4)."""

import json

import numpy as np
import pytest

from audiodiff.data.corpora.ar import ar_clips, ar_coefficients, ar_noise_std, ar_psd
from audiodiff.eval.psd import band_psd_error, load_analytic_psd
from tests.conftest import run_cli

SR = 8000


def _process(tilt=0.7):
    ar = ar_coefficients(SR, 1000.0, 0.95, tilt)
    return ar, ar_noise_std(ar, 0.2)


def _spec(tilt=0.7):
    ar, noise_std = _process(tilt)
    freqs = np.arange(SR // 2 + 1.0)
    return {"sample_rate": SR, "freqs_hz": freqs, "psd": ar_psd(ar, noise_std, freqs, SR)}


def test_a_long_real_sample_scores_near_zero():
    ar, noise_std = _process()
    result = band_psd_error(ar_clips(ar, noise_std, 1, 400_000, np.random.default_rng(1)), _spec())
    assert result["max_db_99"] < 0.3
    assert max(result["low_db"], result["mid_db"], result["high_db"]) < 0.5
    assert sum(b["energy_share"] for b in result["bands"]) == pytest.approx(1.0)
    assert sum(b["energy_share"] for b in result["bands"] if b["in_99"]) >= 0.99


def test_white_noise_and_a_wrong_tilt_score_large():
    rng = np.random.default_rng(2)
    white = band_psd_error(0.2 * rng.standard_normal((100, 2048)), _spec())
    assert white["max_db_99"] > 5 and white["high_db"] > 20  # too little at 500-1500 Hz, far too much above
    ar, noise_std = _process(tilt=0.3)  # a flatter spectrum than the analytic one
    wrong = band_psd_error(ar_clips(ar, noise_std, 100, 2048, rng), _spec())
    assert wrong["max_db_99"] > 2 and wrong["high_db"] > 3


def test_the_bands_with_99_percent_are_the_most_energetic():
    result = band_psd_error(np.random.default_rng(3).standard_normal((4, 1024)), _spec())
    shares = [b["energy_share"] for b in result["bands"]]
    kept = [b["energy_share"] for b in result["bands"] if b["in_99"]]
    assert min(kept) >= max([s for s in shares if s not in kept], default=0)
    assert sum(kept) - min(kept) < 0.99  # the fewest bands


def test_analytic_psd_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="analytic PSD not found"):
        load_analytic_psd(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"sample_rate": 8000}))
    with pytest.raises(ValueError, match="freqs_hz"):
        load_analytic_psd(tmp_path / "bad.json")


def test_evaluate_band_psd_end_to_end(tmp_path):
    run_cli("prepare", "ar", "--out", tmp_path / "ar", "n=200")
    data = tmp_path / "ar" / "data"
    res = run_cli("evaluate", "--ref", data / "test", "--gen", data / "train", "--out", tmp_path / "ev",
                  "--metrics", "band_psd")  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["metrics"]["psd_band_max_db_99"] < 0.5
    assert len(report["psd_bands"]) == 8
