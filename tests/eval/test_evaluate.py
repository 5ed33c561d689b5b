"""`evaluate` at the native sample rate: paired metrics, the mean spectrum and report.html."""

import base64
import io
import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from audiodiff.audio.io import load_audio
from audiodiff.cli import main
from audiodiff.eval.classifier import Classifier, ClassifierConfig, save_classifier
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


# ------------------------------------------------------------ pinned values on a small fixed set


def _speechlike(rng, seconds=0.3, rate=16000):
    """Four harmonics of a random f0 under a slow envelope, plus a little noise. -> (T,) float32"""
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(110, 220)
    voiced = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in (1, 2, 3, 4))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def fixed_audio_sets(root):
    """ref: u0..u5, gen: u0..u4 (same names: 5 pairs), 16 kHz, 0.3 s, seeded."""
    rng = np.random.default_rng(14)
    ref, gen = root / "ref", root / "gen"
    ref.mkdir(), gen.mkdir()
    for i in range(6):
        sf.write(str(ref / f"u{i}.wav"), _speechlike(rng), 16000)
    for i in range(5):
        sf.write(str(gen / f"u{i}.wav"), _speechlike(rng), 16000)
    return ref, gen


def fixed_image_sets(root):
    """ref: images.npy of 20 blocky 16 x 16 images; gen: a folder of 12 PNGs."""
    from PIL import Image

    rng = np.random.default_rng(14)
    ref, gen = root / "iref", root / "igen"
    ref.mkdir(), gen.mkdir()

    def blocky(n):
        return np.repeat(np.repeat(rng.integers(0, 256, (n, 1, 8, 8)), 2, 2), 2, 3).astype(np.uint8)

    np.save(ref / "images.npy", blocky(20))
    for i, image in enumerate(blocky(12)):
        Image.fromarray(image[0]).save(gen / f"{i}.png")
    return ref, gen


def random_classifier(path, **config):
    """An untrained classifier (seed 0), saved as `audiodiff train-classifier` would: fixed, not good."""
    torch.manual_seed(0)
    model = Classifier(ClassifierConfig(labels=["a", "b", "c"], channels=[8, 16], feature_dim=16, **config))
    return save_classifier(model.eval(), path, {"test_accuracy": 0.5})


AUDIO_CLASSIFIER = dict(sample_rate=16000, samples=4000, n_fft=256, hop=64, n_mels=32)
# Measured before evaluate() became a metric registry (commit cfee32f); the refactor keeps them.
PINNED_AUDIO = {
    "fad": 31.11182740221444,
    "fad_inf": 28.41044979081015,
    "kad": 11.04078704642908,
    "ndb_k": 0.0,
    "classifier_fid": 0.01831996549357018,
    "inception_score": 1.0000147858371822,
    "modified_inception_score": 1.0000369660800001,
    "am_score": 1.0889188952342268,
    "inception_score_ref": 1.0000290527336189,
    "mrstft": 1.8070233106613158,
    "lsd_db": 9.696434964139069,
    "pesq_wb": 1.1429671049118042,
    "mean_spectrum_db_l1": 1.7147464347521313,
}
PINNED_IMAGES = {
    "power_spectrum_log10_l1": 0.062323732271905304,
    "pixel_histogram_tv": 0.29427083333333337,
    "classifier_fid": 0.00803775893656352,
    "inception_score": 1.0000846453719645,
    "modified_inception_score": 1.0001845789803026,
    "am_score": 1.0979106322008696,
    "inception_score_ref": 1.000126618492404,
}


def _table(metrics):
    return "\n\n| metric | value |\n|---|---:|\n" + "".join(f"| {k} | {v:.4g} |\n" for k, v in metrics.items())


def test_every_audio_metric_keeps_its_pinned_value_and_report_entries(tmp_path):
    pytest.importorskip("pesq")
    ref, gen = fixed_audio_sets(tmp_path)
    clf = random_classifier(tmp_path / "clf", **AUDIO_CLASSIFIER)
    asked = ["fad", "fad_inf", "kad", "ndb", "mean_spectrum", "mrstft", "lsd", "pesq"]
    rep = evaluate(ref, gen, tmp_path / "e", asked, "melstats", tmp_path / "cache", classifier=clf)
    assert list(rep["metrics"]) == list(PINNED_AUDIO)  # the order of metrics.md's rows
    assert rep["metrics"] == pytest.approx(PINNED_AUDIO, rel=1e-6, abs=1e-9)
    assert json.loads((tmp_path / "e" / "metrics.json").read_text()) == rep
    md = (tmp_path / "e" / "metrics.md").read_text()
    assert md.startswith(f"Reference: {ref} (6 files); generated: {gen} (5 files); embedder: melstats\n")
    assert md.endswith(_table(PINNED_AUDIO))
    extras = {"n_pairs": 5, "pesq_pairs_without_speech": 0, "ndb_bins": 2, "gen_class_histogram": [0, 0, 5]}
    assert {k: rep[k] for k in extras} == extras
    assert rep["classifier"]["labels"] == ["a", "b", "c"] and rep["classifier"]["test_accuracy"] == 0.5
    assert rep["embedder"] == {"name": "melstats", "version": "1", "sample_rate": 16000, "dim": 128,
                               "cache": str(tmp_path / "cache")}  # fmt: skip
    assert rep["cache"] == {"hits": 0, "computed": 11, "recomputed": []}
    settings = rep["settings"]
    assert settings["metrics"] == [*asked, "classifier"]
    assert settings["fad"] == {"sample_rate": 16000} and settings["classifier"] == {"sample_rate": 16000}
    assert settings["fad_inf"]["slope"] == pytest.approx(12.564999236234993, rel=1e-6)
    assert [n for n, _ in settings["fad_inf"]["points"]] == [2, 3, 4, 5]
    assert settings["kad"]["bandwidth"] == pytest.approx(6.226199119496306, rel=1e-6)
    assert settings["ndb"] == {"bins": 2, "alpha": 0.05, "kmeans_seed": 0, "sample_rate": 16000}
    assert settings["lsd"] == {"sample_rate": 16000, "n_fft": 1024, "hop": 256}
    assert settings["pesq"] == {"sample_rate": 16000, "mode": "wide-band (P.862.2)"}
    assert settings["mean_spectrum"]["distance"] == "mean |dB difference|"
    assert (tmp_path / "e" / "report.html").is_file() and (tmp_path / "e" / "mean_spectrum.png").is_file()


def test_image_metrics_keep_their_pinned_values_with_the_cli_defaults(tmp_path):
    ref, gen = fixed_image_sets(tmp_path)
    clf = random_classifier(tmp_path / "clf", kind="images", image_shape=[1, 16, 16])
    out = tmp_path / "e"
    res = CliRunner().invoke(main, ["evaluate", "--ref", str(ref), "--gen", str(gen), "--out", str(out),
                                    "--classifier", str(clf)])  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "metrics.json").read_text())
    assert list(rep["metrics"]) == list(PINNED_IMAGES)
    assert rep["metrics"] == pytest.approx(PINNED_IMAGES, rel=1e-6, abs=1e-9)
    assert (out / "metrics.md").read_text() == f"Reference: {ref}; generated: {gen}" + _table(PINNED_IMAGES)
    assert {k: rep[k] for k in ("ref", "gen", "n_ref", "n_gen", "kind")} == {
        "ref": str(ref), "gen": str(gen), "n_ref": 20, "n_gen": 12, "kind": "images"}  # fmt: skip
    assert rep["gen_class_histogram"] == [0, 9, 3] and set(rep["classifier"]) == {
        "path",
        "test_accuracy",
        "weights_sha1",
    }
    assert set(rep) == {"ref", "gen", "n_ref", "n_gen", "kind", "metrics", "gen_class_histogram", "classifier"}
    assert (out / "power_spectrum.png").is_file() and not (out / "report.html").exists()
