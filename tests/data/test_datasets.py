import pytest
import torch

from audiodiff.data.datasets import AudioClips, DiffusionExamples, TrainingStream, list_audio
from audiodiff.data.kaldi import read_scp
from tests.conftest import write_corpus


def test_wav_scp_errors(tmp_path):
    d = tmp_path / "data" / "x"
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("a /x.wav\nb\n")
    with pytest.raises(ValueError, match=r"wav.scp:2: expected '<id> <value>'"):
        read_scp(d / "wav.scp")
    (d / "wav.scp").write_text("a /x.wav\na /y.wav\n")
    with pytest.raises(ValueError, match="wav.scp:2: duplicate id 'a'"):
        read_scp(d / "wav.scp")
    with pytest.raises(FileNotFoundError, match="data source not found"):
        list_audio(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no audio files"):
        list_audio(tmp_path / "empty")


def test_folder_and_data_dir_list_the_same_audio(tmp_path):
    d = write_corpus(tmp_path, n=3)
    assert sorted(list_audio(d).values()) == sorted(list_audio(tmp_path / "wav").values())


def test_stream_is_independent_of_process_count_and_accumulation():
    def step_items(world, accum, step):
        items = []
        for rank in range(world):
            it = iter(TrainingStream(10, 8, seed=5, rank=rank, world=world, accum=accum, start_step=step))
            for _ in range(accum):
                items += next(it)
        return sorted(items)

    for step in (0, 3):
        ref = step_items(1, 1, step)
        assert step_items(2, 1, step) == ref == step_items(2, 2, step) == step_items(4, 2, step)
    assert step_items(1, 1, 0) != step_items(1, 1, 1)
    with pytest.raises(ValueError, match="divisible by processes"):
        TrainingStream(10, 6, 0, world=4)


def test_examples_are_a_function_of_their_key(tmp_path):
    clips = AudioClips(write_corpus(tmp_path, n=2, seconds=0.2), 16000, 1024)
    ex = DiffusionExamples(clips)
    a, b = ex[(1, 123)], ex[(1, 123)]
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["noise"], b["noise"]) and a["u"] == b["u"]
    assert not torch.equal(ex[(1, 124)]["noise"], a["noise"])
    assert a["x"].shape == a["noise"].shape == (1, 1024)
    short = AudioClips(tmp_path / "wav", 16000, 8000)  # 0.2 s files padded to 0.5 s
    assert short[0][0].shape == (1, 8000) and short[0][0][0, 4000:].abs().sum() == 0


def test_dumped_features_equal_on_the_fly_log_mels(tmp_path):
    import numpy as np

    from audiodiff.audio.features import LogMel, mel_config
    from audiodiff.audio.io import load_audio
    from audiodiff.data.features import MelFeatureExamples, dump_features

    d = write_corpus(tmp_path, n=3, seconds=0.5)
    assert dump_features(d, "speech16k", 16000) == 3
    utt, path = next(iter(list_audio(d).items()))
    expected = LogMel(mel_config("speech16k"))(load_audio(path, 16000)[None])[0]
    torch.testing.assert_close(torch.from_numpy(np.load(d / "feats" / f"{utt}.npy")), expected)
    ex = MelFeatureExamples(d, "speech16k", 16000, frames=40)
    item = ex[(0, 7)]
    assert item["x"].shape == (80, 40) and item["noise"].shape == (1, 80, 40)
    assert torch.equal(ex[(0, 7)]["x"], item["x"])
    assert MelFeatureExamples(d, "speech16k", 16000, frames=200)[(0, 1)]["x"][:, -1].max() < -11
    with pytest.raises(ValueError, match=r"other mel settings \(\['sample_rate'\]\)"):
        MelFeatureExamples(d, "speech16k", 22050, frames=40)
    with pytest.raises(FileNotFoundError, match="run audiodiff dump-features"):
        MelFeatureExamples(tmp_path / "wav", "speech16k", 16000, frames=40)
