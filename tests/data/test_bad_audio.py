"""Bad audio is found up front, every file listed by id: train, evaluate, dump-features, validate-data-dir."""

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from audiodiff.cli import main
from audiodiff.data.validate import check_audio, usable_audio, validate_data_dir
from tests.conftest import TINY, write_corpus

BAD = {
    "bad_unreadable": "unreadable",
    "bad_nan": "non-finite",
    "bad_inf": "non-finite",
    "bad_silent": "silent",
    "bad_tiny": "too short (10 samples",
    "bad_header": "empty",
}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def mixed(tmp_path):
    """A data dir of 6 good tones and the 6 kinds of bad file, ids sorted."""
    d = write_corpus(tmp_path, n=6)
    wav = tmp_path / "wav"
    (wav / "bad_unreadable.wav").write_bytes(b"RIFF not really a wav file")
    x = 0.3 * np.sin(np.arange(4000) * 0.1)
    sf.write(str(wav / "bad_nan.wav"), np.full(4000, np.nan), 16000, subtype="FLOAT")
    sf.write(str(wav / "bad_inf.wav"), np.where(np.arange(4000) == 7, np.inf, x), 16000, subtype="FLOAT")
    sf.write(str(wav / "bad_silent.wav"), np.zeros(4000), 16000)
    sf.write(str(wav / "bad_tiny.wav"), x[:10], 16000)
    sf.write(str(wav / "bad_header.wav"), np.zeros(0), 16000)
    lines = (d / "wav.scp").read_text().splitlines() + [f"{u} {wav / u}.wav" for u in BAD]
    (d / "wav.scp").write_text("".join(f"{line}\n" for line in sorted(lines)))
    return d


def assert_lists_all(text, but=()):
    for utt, why in BAD.items():
        assert utt in but or f"{utt}: {why}" in text, (utt, text)


def test_check_audio_names_each_defect(mixed):
    entries = {u: str(mixed.parent.parent / "wav" / f"{u}.wav") for u in BAD}
    for utt, why in BAD.items():
        assert why in check_audio(entries[utt], min_seconds=0.032), utt
    good, bad = usable_audio(
        entries | {"ok": str(mixed.parent.parent / "wav" / "utt0.wav")}, "x", "skip", min_seconds=0.032
    )
    assert list(good) == ["ok"] and list(bad) == list(BAD)
    with pytest.raises(ValueError, match="6 of 6 audio files are unusable"):
        usable_audio(entries, "x", "skip", min_seconds=0.032)  # nothing left: an error even when skipping


def test_train_lists_every_bad_file_then_stops_or_skips(tmp_path, mixed):
    conf = tmp_path / "conf.yaml"
    conf.write_text("diffusion:\n  schedule: diffwave\nsample:\n  sampler: fast\n")
    args = [f"exp_dir={tmp_path / 'exp'}", f"data.train={mixed}", *TINY, "train.steps=2"]
    res = cli("train", conf, "--no-progress", "name=stop", *args)
    assert res.exit_code != 0 and "6 of 12 audio files are unusable" in res.output
    assert "data.on_bad_audio=skip" in res.output and len(res.output.strip().splitlines()) == 1
    assert_lists_all(res.output)
    res = cli("train", conf, "--no-progress", "name=skip", "data.on_bad_audio=skip", *args)
    assert res.exit_code == 0, res.output
    log = (tmp_path / "exp" / "skip" / "log.txt").read_text()
    assert_lists_all(log)
    assert "skipped=0" in log  # no NaN file reached a step
    res = cli("train", conf, "--no-progress", "name=x", "data.on_bad_audio=maybe", *args)
    assert res.exit_code != 0 and "data.on_bad_audio='maybe' is not allowed" in res.output


def test_evaluate_lists_every_bad_file_then_stops_or_skips(tmp_path, mixed):
    (mixed.parent.parent / "wav" / "bad_missing.wav").unlink(missing_ok=True)
    with open(mixed / "wav.scp", "a") as f:
        f.write(f"bad_missing {mixed.parent.parent / 'wav' / 'bad_missing.wav'}\n")
    gen = write_corpus(tmp_path / "gen", n=4).parent.parent / "wav"
    args = ["--ref", mixed, "--gen", gen, "--embedder", "melstats", "--metrics", "fad,mean_spectrum", "--cache", ""]
    res = cli("evaluate", *args, "--out", tmp_path / "e1")
    assert res.exit_code != 0 and "6 of 13 audio files are unusable" in res.output
    assert "bad_missing: file not found" in res.output and "--on-bad-audio skip" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert_lists_all(res.output, but={"bad_silent"})  # silence is scored in evaluation, not dropped
    assert "bad_silent" not in res.output
    res = cli("evaluate", *args, "--out", tmp_path / "e2", "--on-bad-audio", "skip")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    assert report["n_ref"] == 7 and np.isfinite(report["metrics"]["fad_melstats"])
    assert sorted(report["skipped_audio"]["ref"]) == sorted({*BAD, "bad_missing"} - {"bad_silent"})


def test_dump_features_audits_first(mixed):
    res = cli("dump-features", mixed)
    assert res.exit_code != 0 and len(res.output.strip().splitlines()) == 1
    assert_lists_all(res.output)
    res = cli("dump-features", mixed, "--on-bad-audio", "skip")
    assert res.exit_code == 0 and "6 feature files" in res.output


def test_validator_warns_about_short_clips(tmp_path):
    d = write_corpus(tmp_path, n=2, seconds=0.25)
    sf.write(str(tmp_path / "wav" / "utt2.wav"), 0.3 * np.sin(np.arange(10) * 0.1), 16000)
    (d / "wav.scp").write_text((d / "wav.scp").read_text() + f"utt2 {tmp_path / 'wav' / 'utt2.wav'}\n")
    problems, warnings = validate_data_dir(d)
    assert problems == [] and len(warnings) == 1 and "utt2: short clip: 10 samples = 0.6 ms" in warnings[0]
    assert len(validate_data_dir(d, min_seconds=1.0).warnings) == 3  # shorter than a 1 s crop
    res = cli("validate-data-dir", d)
    assert res.exit_code == 0 and "warning: wav.scp: utt2: short clip" in res.output and "valid" in res.output
