"""`evaluate` end to end: metrics at the native sample rate, the CLI command, image sets, pinned values."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from PIL import Image

from audiodiff.audio.io import load_audio
from audiodiff.cli import main
from audiodiff.data.corpora import prepare
from audiodiff.eval.context import BETTER, direction
from audiodiff.eval.embeddings import ABOUT
from audiodiff.eval.evaluate import evaluate
from audiodiff.eval.images import load_images
from tests.conftest import write_corpus
from tests.eval.conftest import (
    AUDIO_CLASSIFIER,
    RATE,
    fixed_audio_sets,
    fixed_image_sets,
    noise_band,
    random_classifier,
    write_wav,
)


def test_pairs_differing_only_above_8khz_have_nonzero_mrstft_and_lsd_at_22khz(tmp_path):
    rng = np.random.default_rng(0)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(2):
        low = 0.3 * noise_band(rng, RATE, 50, 7000)
        write_wav(ref, f"u{i}", low + 0.1 * noise_band(rng, RATE, 9000, 10500))
        write_wav(gen, f"u{i}", low)  # the same clip without its 9-10.5 kHz band
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
        write_wav(ref, f"u{i}", 0.3 * noise_band(rng, RATE, 50, 3500) + 0.1 * noise_band(rng, RATE, 6000, 10000))
        write_wav(gen, f"u{i}", load_audio(ref / f"u{i}.wav", 8000).numpy(), 8000)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["mrstft", "lsd"])
    assert rep["settings"]["mrstft"]["sample_rate"] == 8000 and rep["settings"]["lsd"]["sample_rate"] == 8000
    assert rep["metrics"]["mrstft"] < 0.1  # the same audio below 4 kHz


def test_paired_metrics_score_pairs_too_short_for_their_stft_and_count_them(tmp_path):
    """4 kHz clips of 128 ms (512 samples, the audit's shortest) are under the 513 samples lsd's STFT takes
    and mrstft's 1025: each pair is zero-padded, both clips alike, scored (6.02 dB for a doubled clip)
    and counted; was torch.stft's padding error."""
    rng = np.random.default_rng(4)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(2):
        x = 0.2 * rng.standard_normal(512)
        write_wav(ref, f"u{i}", x, 4000), write_wav(gen, f"u{i}", 2 * x, 4000)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["mrstft", "lsd", "band_lsd"])
    m = rep["metrics"]
    assert m["lsd_db"] == pytest.approx(20 * np.log10(2), rel=1e-3) and 0 < m["mrstft"] < np.inf
    assert [m["lsd_db_0_1khz"], m["level_err_db_1_2khz"]] == pytest.approx([20 * np.log10(2)] * 2, rel=1e-3)
    assert rep["mrstft_pairs_zero_padded"] == rep["lsd_pairs_zero_padded"] == rep["band_lsd_pairs_zero_padded"] == 2


def test_mean_spectrum_scores_clips_too_short_for_its_stft_and_counts_them_per_set(tmp_path):
    """4 kHz clips of 128 ms (512 samples, the audit's shortest) are under the 513 samples the mean
    spectrum's 1024-point STFT takes: was torch.stft's padding traceback. Each is zero-padded alike, so a
    set of doubled clips is 6.02 dB louder in every bin, and the report counts them per set."""
    rng = np.random.default_rng(5)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(3):
        x = 0.2 * rng.standard_normal(512 + 600 * (i == 2))  # the third: long enough, not padded
        write_wav(ref, f"u{i}", x, 4000), write_wav(gen, f"u{i}", 2 * x, 4000)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["mean_spectrum", "band_spectrum"])
    assert rep["metrics"]["mean_spectrum_db_l1"] == pytest.approx(20 * np.log10(2), rel=1e-3)
    assert rep["mean_spectrum_clips_zero_padded"] == {"ref": 2, "gen": 2}
    long = tmp_path / "long"
    for i in range(2):
        write_wav(long, f"u{i}", 0.2 * rng.standard_normal(1112), 4000)
    whole = evaluate(long, long, tmp_path / "w", metrics=["mean_spectrum"])  # no short clip: no key
    assert "mean_spectrum_clips_zero_padded" not in whole and whole["metrics"]["mean_spectrum_db_l1"] == 0


def sets_missing_a_10khz_tone(tmp_path):
    """ref, gen dirs: 3 clips of speech-like tones each, the ref's with a 10 kHz tone added."""
    t = np.arange(RATE) / RATE
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(3):
        speechlike = 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)
        write_wav(ref, f"r{i}", speechlike + 0.2 * np.sin(2 * np.pi * 10000 * t))
        write_wav(gen, f"g{i}", speechlike)
    return ref, gen


def test_mean_spectrum_sees_a_10khz_tone_missing_from_the_generated_set(tmp_path):
    ref, gen = sets_missing_a_10khz_tone(tmp_path)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["mean_spectrum"])
    assert rep["settings"]["mean_spectrum"]["sample_rate"] == RATE
    assert rep["metrics"]["mean_spectrum_db_l1"] > 5  # 13.5 dB; at 16 kHz, without the tone: 1.3


def test_band_spectrum_puts_a_missing_10khz_tone_in_its_octave_only(tmp_path):
    """The signed per-octave error (a grid's per-band columns for audio): the 8-11.025 kHz band lacks the
    ref's tone (a deficit, best at 0), the 250-500 Hz band with the same speech-like tones in both is ~0."""
    ref, gen = sets_missing_a_10khz_tone(tmp_path)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["band_spectrum"])
    m = rep["metrics"]
    assert list(m)[0] == "mean_spectrum_err_db_0_250hz" and list(m)[-1] == "mean_spectrum_err_db_8000_11025hz"
    assert m["mean_spectrum_err_db_8000_11025hz"] < -10 and abs(m["mean_spectrum_err_db_250_500hz"]) < 0.5
    assert direction("mean_spectrum_err_db_8000_11025hz") == "zero"


def test_band_lsd_of_matched_clips_names_each_band_and_its_signed_level_error(tmp_path):
    """Vocoder pairs at 16 kHz, the generated clips 6.02 dB louder: LSD and level error +6.02 in each of
    0-1, 1-4 and 4-8 kHz (the grid's per-band columns), the level error signed (best at 0)."""
    rng = np.random.default_rng(2)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(2):
        x = 0.2 * noise_band(rng, 8000, 0, 8000, 16000)
        write_wav(ref, f"u{i}", x, 16000), write_wav(gen, f"u{i}", 2 * x, 16000)
    m = evaluate(ref, gen, tmp_path / "e", metrics=["band_lsd"])["metrics"]
    bands = ("0_1khz", "1_4khz", "4_8khz")
    assert list(m) == [f"{k}_{b}" for b in bands for k in ("lsd_db", "level_err_db")]
    assert list(m.values()) == pytest.approx([20 * np.log10(2)] * 6, rel=1e-4)
    assert direction("level_err_db_4_8khz") == "zero" and direction("lsd_db_4_8khz") == "lower"


def test_band_lsd_at_8khz_has_two_bands_and_records_the_edges_it_used(tmp_path):
    """At 8 kHz the 4 kHz edge is Nyquist: two bands, 0-1 and 1-4 kHz, and settings name those edges only."""
    rng = np.random.default_rng(3)
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    x = 0.2 * noise_band(rng, 4000, 0, 4000, 8000)
    write_wav(ref, "u0", x, 8000), write_wav(gen, "u0", 2 * x, 8000)
    rep = evaluate(ref, gen, tmp_path / "e", metrics=["band_lsd"])
    assert list(rep["metrics"]) == [f"{k}_{b}" for b in ("0_1khz", "1_4khz") for k in ("lsd_db", "level_err_db")]
    assert rep["settings"]["band_lsd"]["band_edges_hz"] == [0.0, 1000.0, "nyquist"]


@pytest.mark.parametrize("metric", ["fad", "kad"])
def test_embedding_metrics_record_the_embedders_rate_and_kad_its_definition(tmp_path, metric):
    ref = write_corpus(tmp_path / "a", n=4, sample_rate=RATE)
    rep = evaluate(ref, ref, tmp_path / "e", metrics=[metric], embedder="melstats", cache_dir=tmp_path / "c")
    assert rep["settings"][metric]["sample_rate"] == 16000  # melstats embeds at 16 kHz
    if metric == "kad":
        kad = rep["settings"]["kad"]
        assert kad["scale"] == 100 and "reference" in kad["bandwidth_rule"] and "kadtk" in kad["definition"]


# ------------------------------------------------------------------------------ the CLI command


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


def test_pesq_of_a_clip_shorter_than_a_quarter_second_is_a_one_line_error_naming_the_file(tmp_path):
    pytest.importorskip("pesq")
    ref = write_corpus(tmp_path / "a", n=2, seconds=0.25)  # 4000 samples: PESQ's shortest input
    gen = write_corpus(tmp_path / "b", n=2, seconds=0.248)  # a vocoder's frames x hop: 3968, was a traceback
    args = ["evaluate", "--ref", str(ref), "--out", str(tmp_path / "e"), "--metrics", "pesq", "--gen"]
    assert CliRunner().invoke(main, [*args, str(ref)]).exit_code == 0
    res = CliRunner().invoke(main, [*args, str(gen)])
    assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
    assert res.output.startswith(f"Error: metric 'pesq': {tmp_path / 'b' / 'wav' / 'utt0.wav'} (reference ")
    assert res.output.endswith("wide-band PESQ needs clips of at least 0.25 s (4000 samples), got 3968\n")


def test_evaluate_cli_writes_report(tmp_path):
    ref = write_corpus(tmp_path / "a", n=6)
    gen = write_corpus(tmp_path / "b", n=5, seconds=0.3)
    out = tmp_path / "eval"
    args = ["evaluate", "--ref", str(ref), "--gen", str(gen), "--out", str(out), "--embedder", "melstats"]
    res = CliRunner().invoke(main, [*args, "--cache", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_ref"] == 6 and report["n_gen"] == 5 and report["embedder"]["name"] == "melstats"
    assert set(report["metrics"]) == {"fad_melstats", "fad_inf_melstats", "kad_melstats", "ndb_k_melstats",
                                      "mean_spectrum_db_l1"}  # fmt: skip
    assert report["durations_s"]["gen"]["mean"] == pytest.approx(0.3)
    settings = report["settings"]
    assert settings["kad"]["bandwidth"] > 0 and settings["ndb"]["bins"] == report["ndb_bins"]
    assert len(settings["fad_inf"]["points"]) >= 2 and settings["metrics"][0] == "fad"
    assert (out / "mean_spectrum.png").stat().st_size > 1000 and "| fad_melstats |" in (out / "metrics.md").read_text()
    res = CliRunner().invoke(
        main, ["evaluate", "--ref", str(ref), "--gen", str(gen), "--out", str(out), "--metrics", "fad,is"]
    )
    assert res.exit_code != 0 and "unknown metric(s) ['is']" in res.output


def test_mean_spectrum_uses_the_lower_native_rate_of_the_two_sets(tmp_path):
    """8 kHz clips vs the same clips upsampled to 16 kHz: equal below 4 kHz, so the distance is small."""
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


def test_evaluate_images_from_a_png_folder(tmp_path):
    prepare("checkerboard", str(tmp_path / "cb"), {"n": "60", "size": "32"})
    gen = tmp_path / "gen"
    gen.mkdir()
    for i, image in enumerate(np.load(tmp_path / "cb" / "data" / "train" / "images.npy")[:12]):
        Image.fromarray(image[0]).save(gen / f"{i}.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(gen / "grid.png")  # the grid is not a sample
    out = tmp_path / "eval"
    res = CliRunner().invoke(
        main, ["evaluate", "--ref", str(tmp_path / "cb" / "data" / "test"), "--gen", str(gen), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_gen"] == 12 and report["kind"] == "images"
    assert 0 <= report["metrics"]["pixel_histogram_tv"] < 1 and (out / "power_spectrum.png").is_file()
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(wrong / "0.png")
    res = CliRunner().invoke(
        main, ["evaluate", "--ref", str(tmp_path / "cb" / "data" / "test"), "--gen", str(wrong), "--out", str(out)]
    )
    assert res.exit_code != 0 and "image shapes differ" in res.output
    with pytest.raises(FileNotFoundError, match="no images"):
        load_images(tmp_path / "empty_dir_that_is_missing")


# ------------------------------------------------------------ pinned values on a small fixed set


# Measured before evaluate() became a metric registry (commit cfee32f); the refactor keeps them.
# Embedding scores carry their embedder's name since issue 17 (fad -> fad_melstats), values unchanged.
PINNED_AUDIO = {
    "fad_melstats": 31.11182740221444,
    "fad_inf_melstats": 28.41044979081015,
    "kad_melstats": 11.04078704642908,
    "ndb_k_melstats": 0.0,
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
    "power_spectrum_db_low": 0.42669274499682874,  # signed per-band errors, added in session 5 (issue 16)
    "power_spectrum_db_mid": -0.471731506063682,
    "power_spectrum_db_high": -0.5922227062514406,
    "pixel_histogram_tv": 0.29427083333333337,
    "classifier_fid": 0.00803775893656352,
    "inception_score": 1.0000846453719645,
    "modified_inception_score": 1.0001845789803026,
    "am_score": 1.0979106322008696,
    "inception_score_ref": 1.000126618492404,
}


def _table(metrics):
    rows = "".join(f"| {k} | {v:.4g} | {BETTER[direction(k)]} |\n" for k, v in metrics.items())
    return "\n\n| metric | value | better |\n|---|---:|---|\n" + rows


def test_every_audio_metric_keeps_its_pinned_value_and_report_entries(tmp_path):
    pytest.importorskip("pesq")
    ref, gen = fixed_audio_sets(tmp_path)
    clf = random_classifier(tmp_path / "clf", **AUDIO_CLASSIFIER)
    asked = ["fad", "fad_inf", "kad", "ndb", "mean_spectrum", "mrstft", "lsd", "pesq"]
    rep = evaluate(ref, gen, tmp_path / "e", asked, "melstats", tmp_path / "cache", classifier=clf)
    assert list(rep["metrics"]) == list(PINNED_AUDIO)  # the order of metrics.md's rows
    # rel 1e-4, not 1e-6: classifier-FID's 0.0183 came out 1.4e-6 relative off on an Intel Xeon (AVX-512)
    # against the AMD EPYC (AVX2) it was pinned on, float kernels differing; a changed formula moves more
    assert rep["metrics"] == pytest.approx(PINNED_AUDIO, rel=1e-4, abs=1e-9)
    assert json.loads((tmp_path / "e" / "metrics.json").read_text()) == rep
    md = (tmp_path / "e" / "metrics.md").read_text()
    assert md.startswith(f"Reference: {ref} (6 files); generated: {gen} (5 files); embedder: melstats (mean and")
    assert md.endswith(_table(PINNED_AUDIO))
    extras = {"n_pairs": 5, "pesq_pairs_without_speech": 0, "ndb_bins": 2, "gen_class_histogram": [0, 0, 5]}
    assert {k: rep[k] for k in extras} == extras
    assert rep["classifier"]["labels"] == ["a", "b", "c"] and rep["classifier"]["test_accuracy"] == 0.5
    assert rep["embedder"] == {"name": "melstats", "version": "1", "sample_rate": 16000, "dim": 128,
                               "cache": str(tmp_path / "cache"), "about": ABOUT["melstats"]}  # fmt: skip
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
    assert rep["metrics"] == pytest.approx(PINNED_IMAGES, rel=1e-4, abs=1e-9)  # rel 1e-4: as the audio test
    assert (out / "metrics.md").read_text() == f"Reference: {ref}; generated: {gen}" + _table(PINNED_IMAGES)
    assert {k: rep[k] for k in ("ref", "gen", "n_ref", "n_gen", "kind")} == {
        "ref": str(ref), "gen": str(gen), "n_ref": 20, "n_gen": 12, "kind": "images"}  # fmt: skip
    assert rep["gen_class_histogram"] == [0, 9, 3] and set(rep["classifier"]) == {
        "path",
        "test_accuracy",
        "weights_sha1",
    }
    assert set(rep) == {"ref", "gen", "n_ref", "n_gen", "kind", "metrics", "gen_class_histogram", "classifier",
                        "commit", "run", "power_spectrum_bands"}  # fmt: skip
    assert [(b["band"], b["radii"]) for b in rep["power_spectrum_bands"]] == [("low", [1, 3]), ("mid", [4, 6]),
                                                                              ("high", [7, 8])]  # fmt: skip
    assert (out / "power_spectrum.png").is_file() and not (out / "report.html").exists()


def test_power_spectrum_bands_of_a_set_against_itself_are_zero_and_signed(tmp_path):
    ref, _ = fixed_image_sets(tmp_path)
    rep = evaluate(ref, ref, tmp_path / "e", metrics=["power_spectrum"])
    bands = {k: v for k, v in rep["metrics"].items() if k.startswith("power_spectrum_db_")}
    assert bands == {"power_spectrum_db_low": 0.0, "power_spectrum_db_mid": 0.0, "power_spectrum_db_high": 0.0}
    assert {direction(k) for k in bands} == {"zero"}  # + excess, - deficit: best at 0
    high = {"band": "high", "radii": [7, 8], "cycles_per_pixel": [0.4375, 0.5625],
            "cycles_per_pixel_along": "height and width", "error_db": 0.0}  # fmt: skip
    assert rep["power_spectrum_bands"][2] == high


def test_power_spectrum_of_images_smaller_than_6x6_is_the_distance_without_bands(tmp_path):
    """4 x 4 images have 2 rings above DC, too few for low/mid/high: the whole metric used to raise."""
    rng = np.random.default_rng(3)
    for name in ("ref", "gen"):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "images.npy", rng.integers(0, 256, (10, 1, 4, 4)).astype(np.uint8))
    rep = evaluate(tmp_path / "ref", tmp_path / "gen", tmp_path / "e", metrics=["power_spectrum"], kind="images")
    assert list(rep["metrics"]) == ["power_spectrum_log10_l1"] and rep["metrics"]["power_spectrum_log10_l1"] > 0
    assert "power_spectrum_bands" not in rep and (tmp_path / "e" / "power_spectrum.png").is_file()


def test_classifier_metrics_score_identical_sets_as_equal_and_use_the_cache(tmp_path):
    ref, gen = fixed_audio_sets(tmp_path)
    clf = random_classifier(tmp_path / "clf", **AUDIO_CLASSIFIER)
    kw = dict(metrics=[], classifier=clf, cache_dir=tmp_path / "cache")
    m = evaluate(ref, ref, tmp_path / "e1", **kw)["metrics"]
    assert m["classifier_fid"] == pytest.approx(0.0, abs=1e-6)
    assert m["inception_score"] == pytest.approx(m["inception_score_ref"], rel=1e-12)
    entries = sorted((tmp_path / "cache").glob("classifier-*/*"))
    assert len(entries) == 6  # one per reference clip, shared by both sides
    rep = evaluate(ref, gen, tmp_path / "e2", **kw)
    assert rep["metrics"]["classifier_fid"] > 0 and sum(rep["gen_class_histogram"]) == 5
    assert set(rep["metrics"]) == {"classifier_fid", "inception_score", "modified_inception_score", "am_score",
                                   "inception_score_ref"}  # fmt: skip
    with pytest.raises(ValueError, match="needs --classifier"):
        evaluate(ref, ref, tmp_path / "e3", metrics=["classifier"])


def test_evaluate_cli_device_errors_blame_the_option(tmp_path, monkeypatch):
    ref = write_corpus(tmp_path / "a", n=4)
    args = ["evaluate", "--ref", str(ref), "--gen", str(ref), "--out", str(tmp_path / "e"), "--embedder", "melstats"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = CliRunner().invoke(main, [*args, "--device", "cuda"])
    assert (
        res.exit_code == 1
        and res.output == "Error: --device cuda: torch sees no CUDA GPU on this machine; use --device cpu\n"
    )
    res = CliRunner().invoke(main, [*args, "--device", "gpu"])
    assert res.exit_code == 1 and "--device gpu: not a device name" in res.output
    assert not (tmp_path / "e").exists()


def test_conditional_accuracy_scores_the_requested_labels_of_a_class_conditional_set(tmp_path):
    ref, gen = fixed_audio_sets(tmp_path)  # the random classifier calls all five generated clips "c"
    clf = random_classifier(tmp_path / "clf", **AUDIO_CLASSIFIER)
    files = [f"u{i}.wav" for i in range(5)]
    (gen / "settings.json").write_text(json.dumps({"files": files, "labels": ["c", "c", "a", "c", "b"]}))
    rep = evaluate(ref, gen, tmp_path / "e", metrics=[], classifier=clf, cache_dir=tmp_path / "cache")
    assert rep["gen_class_histogram"] == [0, 0, 5]
    assert rep["metrics"]["conditional_accuracy"] == pytest.approx(0.6)
    assert rep["conditional_accuracy_per_class"] == {"a": 0.0, "b": 0.0, "c": 1.0}
    assert direction("conditional_accuracy") == "higher"
    (gen / "settings.json").write_text(json.dumps({"files": files, "labels": ["c", "c", "a", "c", "z"]}))
    with pytest.raises(ValueError, match=r"requested labels \['z'\] \(settings.json\) are not among the classifier's"):
        evaluate(ref, gen, tmp_path / "e2", metrics=[], classifier=clf, cache_dir=tmp_path / "cache")
    (gen / "settings.json").write_text(json.dumps({"files": files, "labels": ["c"]}))
    with pytest.raises(ValueError, match="settings.json lists 5 files but 1 labels"):
        evaluate(ref, gen, tmp_path / "e3", metrics=[], classifier=clf, cache_dir=tmp_path / "cache")


def test_conditional_accuracy_of_a_class_conditional_image_set(tmp_path):
    from audiodiff.eval.classifier import Classifier, ClassifierConfig, save_classifier

    ref, gen = fixed_image_sets(tmp_path)
    torch.manual_seed(0)  # the weights of random_classifier's image classifier, its classes named 0, 1, 2
    config = ClassifierConfig(labels=["0", "1", "2"], channels=[8, 16], feature_dim=16, kind="images",
                              image_shape=[1, 16, 16])  # fmt: skip
    clf = save_classifier(Classifier(config).eval(), tmp_path / "clf", {"test_accuracy": 0.5})
    files = [f"{i}.png" for i in range(12)]
    (gen / "settings.json").write_text(json.dumps({"files": files, "labels": [1] * 12}))  # as the image task writes
    rep = evaluate(ref, gen, tmp_path / "e", classifier=clf)
    assert rep["gen_class_histogram"] == [0, 9, 3]
    assert rep["metrics"]["conditional_accuracy"] == pytest.approx(0.75)
    assert rep["conditional_accuracy_per_class"] == {"1": 0.75}
