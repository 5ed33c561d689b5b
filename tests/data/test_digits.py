import hashlib

import pytest
import soundfile as sf

from audiodiff.data.datasets import list_audio
from audiodiff.data.kaldi import read_scp

pytest.importorskip("espeakng_loader")
from audiodiff.data.corpora.digits import DIGITS, prepare_digits  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return out, prepare_digits(out, speakers=10, reps=1, seed=3)


def test_splits_have_unseen_voices_and_all_digits(corpus):
    out, summary = corpus
    assert sum(summary["utterances"].values()) == 100
    voices = {k: set(v) for k, v in summary["voices"].items()}
    variants = {k: {v.split("+")[1] for v in vs} for k, vs in voices.items()}
    assert not variants["train"] & variants["test"] and not variants["train"] & variants["valid"]
    for part in ("train", "valid", "test"):
        d = out / "data" / part
        scp = read_scp(d / "wav.scp")
        assert list(scp) == sorted(scp)  # Kaldi wants sorted keys
        words = dict(line.split() for line in (d / "text").read_text().splitlines())
        assert set(words) == set(scp) and set(words.values()) == set(DIGITS)
        spk = dict(line.split() for line in (d / "utt2spk").read_text().splitlines())
        assert all(utt.startswith(s) for utt, s in spk.items())


def test_clips_are_one_second_16k_and_not_silent(corpus):
    out, _ = corpus
    for path in list(list_audio(out / "data" / "test").values())[:10]:
        audio, sr = sf.read(path)
        assert sr == 16000 and audio.shape == (16000,)
        assert 0.25 < abs(audio).max() <= 0.91 and (abs(audio) > 0.01).mean() > 0.1


def test_deterministic_from_the_seed(corpus, tmp_path):
    out, _ = corpus
    again = tmp_path / "again"
    prepare_digits(again, speakers=10, reps=1, seed=3)

    def digest(root):
        return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted((root / "wav").glob("*.wav"))}

    assert digest(out) == digest(again)
    other = tmp_path / "other"
    prepare_digits(other, speakers=10, reps=1, seed=4)
    assert digest(other) != digest(out)


def test_center_placement_centres_every_word_with_the_random_placements_gains():
    import numpy as np

    from audiodiff.data.corpora.digits import _place

    word = np.concatenate([np.zeros(50), np.hanning(400), np.zeros(70)]).astype(np.float32)  # trimmed to 400
    rand = [_place(word, 2000, np.random.default_rng(s)) for s in range(5)]
    cent = [_place(word, 2000, np.random.default_rng(s), "center") for s in range(5)]
    starts = [int(np.flatnonzero(c)[0]) for c in rand]
    assert len(set(starts)) > 1  # random offsets differ
    for r, c in zip(rand, cent):
        active = np.flatnonzero(c)
        assert abs(active[0] - (1999 - active[-1])) <= 2  # centred: equal silence either side
        assert np.abs(c).max() == pytest.approx(np.abs(r).max())  # the same gain


def test_an_unknown_placement_is_refused_naming_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match="placement='middle'; allowed: random, center"):
        prepare_digits(tmp_path, speakers=10, placement="middle")
