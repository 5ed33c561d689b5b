"""One reader of Kaldi tables: safe utterance ids, one rule for relative paths, used everywhere."""

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from audiodiff.cli import main
from audiodiff.data.datasets import AudioClips, list_audio
from audiodiff.data.kaldi import read_scp, read_table
from audiodiff.data.validate import validate_data_dir
from tests.conftest import TINY, write_corpus

UNSAFE = ["../../../x/pwn", "/abs/pwn", "a/b", "..", "x..y"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def tone(path, n=4000, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), 0.3 * np.sin(np.arange(n) * 0.1), sr)


def test_reader_errors_name_file_line_and_id(tmp_path):
    t = tmp_path / "utt2label"
    t.write_text("a 1\n\nb two words \n")
    assert read_table(t) == {"a": "1", "b": "two words"}
    for text, why in [
        ("a 1\nb\n", "utt2label:2: expected '<id> <value>', got 'b'"),
        ("a 1\na 2\n", "utt2label:2: duplicate id 'a'"),
        ("a 1\n../x 2\n", "utt2label:2: unsafe id '../x'"),
    ]:
        t.write_text(text)
        with pytest.raises(ValueError, match=why):
            read_table(t)
    problems = []
    t.write_text("a 1\n\nb\n/x 2\na 3\n")
    assert read_table(t, problems) == {"a": "1"} and len(problems) == 4
    (tmp_path / "wav.scp").write_text("a sox a.wav -t wav - |\n")
    with pytest.raises(ValueError, match="a: piped commands are not supported"):
        read_scp(tmp_path / "wav.scp")


@pytest.mark.parametrize("utt", UNSAFE[:2])
def test_unsafe_ids_rejected_by_dump_features_and_validator(tmp_path, utt):
    d = tmp_path / "a" / "b" / "c" / "data"
    tone(tmp_path / "good.wav")
    d.mkdir(parents=True)
    (d / "wav.scp").write_text(f"{utt} {tmp_path / 'good.wav'}\n")
    res = cli("dump-features", d)
    assert res.exit_code != 0 and f"unsafe id {utt!r}" in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    assert not list(tmp_path.rglob("pwn*")) and not (d / "feats.scp").exists()
    res = cli("validate-data-dir", d)
    assert res.exit_code != 0 and f"unsafe id {utt!r}" in res.output


def test_unsafe_ids_rejected_everywhere_ids_become_names(tmp_path):
    for utt in UNSAFE:
        (tmp_path / "wav.scp").write_text(f"{utt} /x.wav\n")
        with pytest.raises(ValueError, match="ids must be plain file names"):
            read_scp(tmp_path / "wav.scp")
        assert any("unsafe id" in p for p in validate_data_dir(tmp_path).problems)


def test_generate_mels_from_rejects_unsafe_ids(tmp_path):
    corpus = write_corpus(tmp_path, n=2)
    conf = tmp_path / "conf.yaml"
    conf.write_text("diffusion:\n  schedule: diffwave\nsample:\n  sampler: fast\n")
    voc = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "data.condition=mel", "data.mel_preset=speech16k"]
    args = ["name=voc", f"exp_dir={tmp_path / 'exp'}", f"data.train={corpus}", *TINY, "train.steps=1", *voc]
    assert cli("train", conf, "--no-progress", *args).exit_code == 0
    bad = tmp_path / "deep" / "er" / "bad"
    bad.mkdir(parents=True)
    (bad / "wav.scp").write_text(f"../../pwn {tmp_path / 'wav' / 'utt0.wav'}\n")
    out = tmp_path / "deep" / "er" / "out"
    res = cli("generate", "--ckpt", tmp_path / "exp" / "voc", "--mels-from", bad, "--out", out, "--device", "cpu")
    assert res.exit_code != 0 and "unsafe id '../../pwn'" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not list(tmp_path.rglob("pwn*"))


@pytest.mark.parametrize("where", ["data dir", "its parent", "its grandparent"])
def test_validate_and_train_resolve_relative_paths_the_same_way(tmp_path, where):
    """Regression: validate resolved 'wav/a.wav' against the grandparent, training against the parent."""
    d = tmp_path / "root" / "data" / "train"
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("a wav/a.wav\n")
    base = {"data dir": d, "its parent": d.parent, "its grandparent": d.parent.parent}[where]
    tone(base / "wav" / "a.wav")
    valid = validate_data_dir(d).problems == []
    try:
        AudioClips(d, 16000, 1024)
        trainable = True
    except ValueError as err:
        assert "file not found" in str(err) or where == "its parent"
        if where == "its parent":  # training's old rule: the error says where the file is and why it is not used
            assert "relative paths are resolved against the folder holding wav.scp (they were against its" in str(err)
        trainable = False
    assert valid == trainable == (where == "data dir")
    if valid:
        assert list_audio(d) == {"a": str(d / "wav" / "a.wav")}
