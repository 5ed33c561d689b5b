"""egs/asterisk_en/local/lmnt_train.py: lmnt's trainer on our data, their mels, their checkpoints scored as a curve."""

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("lmnt_train", ROOT / "egs" / "asterisk_en" / "local" / "lmnt_train.py")
lt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lt)

PARAMS = {"sample_rate": 16000, "hop_samples": 256, "n_fft": 1024, "n_mels": 80}


def _speechy(seconds: float, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a moving pitch and some noise, int16 (what their reader scales by 32767.5)."""
    t = np.arange(int(16000 * seconds)) / 16000
    pitch = 180 + 40 * np.sin(2 * np.pi * 1.5 * t)
    voice = sum(np.sin(2 * np.pi * np.cumsum(k * pitch) / 16000) / k for k in range(1, 8))
    audio = 0.2 * voice + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def _their_formula(audio: np.ndarray, sr=16000, hop=256, n_fft=1024, n_mels=80) -> np.ndarray:
    """torchaudio's MelSpectrogram(power=1, normalized=True, HTK, f_min 20) + their dB mapping, in numpy."""
    win = 4 * hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    padded = np.pad(audio, n_fft // 2, mode="reflect")
    frames = np.stack([padded[i : i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, hop)])
    mag = np.abs(np.fft.rfft(frames, axis=1)).T / np.sqrt((window**2).sum())
    mel_of = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel_of(20.0), mel_of(sr / 2), n_mels + 2) / 2595) - 1)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    up = (freqs[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    down = (edges[2:, None] - freqs[None]) / (edges[2:, None] - edges[1:-1, None])
    mel = np.maximum(0, np.minimum(up, down)) @ mag
    return np.clip((20 * np.log10(np.maximum(mel, 1e-5)) - 20 + 100) / 100, 0, 1)


def test_their_mels_shape_range_and_formula_on_a_synthetic_wav():
    audio = torch.from_numpy(_speechy(0.7).astype(np.float32)) / 32767.5
    mel = lt.lmnt_mel(audio, PARAMS)
    assert mel.shape == (80, audio.numel() // 256 + 1)  # centred frames, as their preprocess
    assert 0 <= mel.min() and mel.max() <= 1 and mel.max() > 0.5 and mel.std() > 0.05
    np.testing.assert_allclose(mel.numpy(), _their_formula(audio.double().numpy()), atol=2e-5)


def test_their_mels_equal_their_preprocess_transform(tmp_path, monkeypatch):
    """Against diffwave.preprocess.transform itself, where torchaudio is installed (the pinned stack has none)."""
    pytest.importorskip("torchaudio.transforms", reason="torchaudio is not installed")
    preprocess = pytest.importorskip("diffwave.preprocess", reason="reference package 'diffwave' is not installed")
    wav = tmp_path / "a.wav"
    sf.write(wav, _speechy(0.9, seed=1), 16000, subtype="PCM_16")
    # torchaudio.load_wav (gone from torchaudio 2): the int16 values as floats, shape (1, T)
    legacy = lambda path: (torch.from_numpy(sf.read(path, dtype="int16")[0].astype(np.float32))[None], 16000)  # noqa: E731
    monkeypatch.setattr(preprocess.T, "load_wav", legacy, raising=False)
    for key, value in PARAMS.items():
        monkeypatch.setitem(preprocess.params, key, value)
    preprocess.transform(str(wav))
    theirs = np.load(f"{wav}.spec.npy")
    ours = lt.lmnt_mel(lt.read_lmnt_audio(wav, 16000), PARAMS).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_missing_diffwave_package_is_one_line(monkeypatch):
    for key in [k for k in sys.modules if k == "diffwave" or k.startswith("diffwave.")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, "diffwave", None)
    with pytest.raises(SystemExit, match=r"needs lmnt's `diffwave` package: pip install --no-deps diffwave"):
        lt.lmnt("params")


@pytest.fixture
def tiny_data(tmp_path):
    pytest.importorskip("diffwave.model", reason="reference package 'diffwave' is not installed")
    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for k, seconds in enumerate((0.5, 0.6, 0.45)):
        sf.write(tmp_path / f"u{k}.wav", _speechy(seconds, seed=k), 16000, subtype="PCM_16")
        lines.append(f"u{k} {tmp_path / f'u{k}.wav'}")
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    conf = tmp_path / "tiny.yaml"  # the recipe's vocoder at 2 layers x 4 channels, 2 clips a batch
    baseline = ROOT / "egs" / "asterisk_en" / "conf" / "baseline.yaml"
    conf.write_text(f"defaults: [{baseline}]\nmodel: {{diffwave: {{layers: 2, channels: 4, cycle: 2}}}}\n"
                    "train: {batch_size: 2}\n")  # fmt: skip
    return data, conf


def test_params_take_the_recipe_vocoder_sizes_where_lmnt_has_a_knob():
    pytest.importorskip("diffwave.params", reason="reference package 'diffwave' is not installed")
    params = lt.lmnt_params(ROOT / "egs" / "asterisk_en" / "conf" / "baseline.yaml")
    sizes = ("residual_layers", "residual_channels", "dilation_cycle_length", "crop_mel_frames", "batch_size")
    assert [params[k] for k in sizes] == [12, 32, 8, 2048 // 256, 8]
    assert (params["learning_rate"], params["max_grad_norm"], params["hop_samples"]) == (1e-3, 1.0, 256)
    assert np.allclose(params["noise_schedule"], np.linspace(1e-4, 0.05, 50))  # lmnt's own, as ours


def test_their_collator_crops_audio_and_mels_together(tiny_data):
    data, conf = tiny_data
    params = lt.lmnt_params(conf)
    records = lt.lmnt_records(data, params)
    assert [r["spectrogram"].shape for r in records] == [(8000 // 256 + 1, 80), (9600 // 256 + 1, 80), (29, 80)]
    batch = next(lt.batches(records, params, seed=0))
    assert batch["audio"].shape == (2, 8 * 256) and batch["spectrogram"].shape == (2, 80, 8)
    # the crop's audio is the stretch its mel frames describe: frames j..j+7 <-> samples 256 j..256 (j + 8)
    for audio, mel in zip(batch["audio"].numpy(), batch["spectrogram"].numpy()):
        found = [
            (r, j)
            for r in records
            for j in range(len(r["spectrogram"]) - 8 + 1)
            if np.array_equal(audio, np.pad(r["audio"], (0, 2048))[256 * j : 256 * j + 2048])
        ]
        assert len(found) == 1
        record, j = found[0]
        np.testing.assert_array_equal(mel, record["spectrogram"][j : j + 8].T)


def test_train_saves_their_checkpoints_with_wall_time_resumes_and_scores_a_curve(tiny_data, tmp_path, monkeypatch):
    data, conf = tiny_data
    run = tmp_path / "lmnt"
    base = ["train", "--train", str(data), "--out", str(run), "--conf", str(conf), "--ckpt_every", "2"]
    base += ["--log_every", "2"]
    ticks = itertools.count()  # a clock that advances 1 s a reading: wall.json is rounded to 0.1 s, and two tiny
    monkeypatch.setattr(lt, "clock", lambda: float(next(ticks)))  # steps on a fast CPU took under 0.05 s (flaky)
    lt.main([*base, "--steps", "4"])
    wall = json.loads((run / "wall.json").read_text())
    assert list(wall) == ["2", "4"] and 0 < wall["2"] < wall["4"]
    lt.main([*base, "--steps", "6"])  # continues from weights.pt (their checkpoint: step, model, optimizer)
    wall = json.loads((run / "wall.json").read_text())
    assert list(wall) == ["2", "4", "6"] and wall["6"] > wall["4"]
    state, info = lt.split_lmnt_checkpoint(lt.safe_torch_load(run / "weights-6.pt"))
    assert (
        info["step"] == 6
        and info["params"]["residual_layers"] == 2
        and "optimizer" in torch.load(run / "weights-6.pt", weights_only=False)
    )
    logged = [line.split()[1] for line in (run / "log.txt").read_text().splitlines() if line.startswith("step ")]
    assert logged == ["2", "4", "6"]  # every --log_every steps, the resumed run appending
    evaluated = []

    def fake_cli(argv):  # evaluate: records the set it was given
        gen = Path(argv[argv.index("--gen") + 1])
        evaluated.append(json.loads((gen / "settings.json").read_text()))
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"metrics": {"mrstft": 5.0 - len(evaluated)}}))

    monkeypatch.setattr(lt.lc, "_cli", fake_cli)
    argv = ["curve", str(run), "--ref", str(data), "--seeds", "3", "--generate", f"--mels-from {data}"]
    result = lt.main([*argv, "--metrics", "mrstft", "--steps", "2,6"])
    assert [(r["step"], r["wall_s"], r["mrstft"]) for r in result["rows"]] == [(2, wall["2"], 4.0), (6, wall["6"], 3.0)]
    assert evaluated[0]["files"] == ["u0.wav", "u1.wav", "u2.wav"] and evaluated[1]["step"] == 6
    gen = run / "curve" / "step_00000006" / "generated"
    for k, seconds in enumerate((0.5, 0.6, 0.45)):  # their output (whole hops) cut to the clip's length
        audio, rate = sf.read(gen / f"u{k}.wav")
        assert rate == 16000 and audio.shape == (int(16000 * seconds),) and 0 < np.abs(audio).max() <= 1
    first = sf.read(gen / "u0.wav")[0]
    lt.vocode_with_lmnt(run / "weights-6.pt", tmp_path / "again", lt.lc.parse_args(argv[1:]))
    np.testing.assert_array_equal(sf.read(tmp_path / "again" / "u0.wav")[0], first)  # seed 3 for every clip
    assert "raw weights" in (run / "curve" / "curve.md").read_text()


def test_wall_time_and_minutes_count_from_the_first_step_as_ours(tiny_data, tmp_path, monkeypatch):
    """Our trainer reads its clips and builds its model before its clock starts (the TensorBoard file,
    train.max_minutes): lmnt's setup and their mels are not training time either, on a fresh or resumed run."""
    data, conf = tiny_data
    now = [1000.0]
    monkeypatch.setattr(lt, "clock", lambda: now[0])
    records = lt.lmnt_records

    def slow_records(*args):  # reading the clips and computing their mels: 600 s on the fake clock
        now[0] += 600
        return records(*args)

    learner = lt.lmnt("learner").DiffWaveLearner
    step = learner.train_step

    def ten_seconds(self, features):
        now[0] += 10
        return step(self, features)

    monkeypatch.setattr(lt, "lmnt_records", slow_records)
    monkeypatch.setattr(learner, "train_step", ten_seconds)
    run = tmp_path / "lmnt"
    base = ["train", "--train", str(data), "--out", str(run), "--conf", str(conf), "--ckpt_every", "2"]
    lt.main([*base, "--steps", "4", "--minutes", "1"])  # 1 minute: not over after 40 s of steps
    assert json.loads((run / "wall.json").read_text()) == {"2": 20.0, "4": 40.0}
    lt.main([*base, "--steps", "6", "--minutes", "1"])
    assert json.loads((run / "wall.json").read_text())["6"] == 60.0  # 40 + 20, the second setup not counted


def test_train_on_a_missing_data_dir_or_a_conf_lmnt_cannot_take_is_one_line(tiny_data, tmp_path):
    data, conf = tiny_data
    base = ["train", "--out", str(tmp_path / "lmnt"), "--steps", "1"]
    with pytest.raises(SystemExit, match=r"^lmnt_train.py train: data source not found: .*nowhere"):
        lt.main([*base, "--train", str(tmp_path / "nowhere"), "--conf", str(conf)])
    odd = tmp_path / "odd.yaml"  # 2176 samples: whole hops of ours (128), not of lmnt's (256)
    odd.write_text(f"defaults: [{conf}]\ndata: {{segment: 2176}}\n")
    with pytest.raises(SystemExit, match=r"^lmnt_train.py train: .*segment=2176 is not a whole number of lmnt hops"):
        lt.main([*base, "--train", str(data), "--conf", str(odd)])
    gl = tmp_path / "gl.yaml"  # a Griffin-Lim-conditioned vocoder: lmnt's network has no input for the waveform
    gl.write_text(f"defaults: [{conf}]\ndata: {{cond_waveform: griffin_lim}}\n")
    with pytest.raises(SystemExit, match=r"^lmnt_train.py train: .*data.cond_waveform=griffin_lim: lmnt's DiffWave"):
        lt.main([*base, "--train", str(data), "--conf", str(gl)])


def test_params_take_the_conf_sample_rate_and_train_refuses_clips_at_another(tiny_data, tmp_path):
    data, conf = tiny_data
    rate22 = tmp_path / "r22.yaml"
    rate22.write_text(f"defaults: [{conf}]\ndata: {{sample_rate: 22050}}\n")
    params = lt.lmnt_params(rate22)
    assert params["sample_rate"] == 22050 and params["n_mels"] == 80  # was 16000 whatever the conf said
    assert lt.lmnt_params(conf)["sample_rate"] == 16000
    base = ["train", "--train", str(data), "--out", str(tmp_path / "lmnt"), "--steps", "1", "--conf", str(rate22)]
    with pytest.raises(SystemExit, match=r"^lmnt_train.py train: .*u0.wav: sample rate 16000, .* is 22050"):
        lt.main(base)


def test_a_resumed_run_draws_new_crops_and_noise_not_the_first_runs_again(tiny_data, tmp_path, monkeypatch, capsys):
    """Three copies of one clip: a batch's crops depend only on the crop draws (python's random), and
    the step's t and noise on torch's; a resume used to re-seed both to --seed and replay steps 1-2."""
    import shutil

    data, conf = tiny_data
    for k in (1, 2):
        shutil.copy(data.parent / "u0.wav", data.parent / f"u{k}.wav")
    learner = lt.lmnt("learner").DiffWaveLearner
    step, seen = learner.train_step, []

    def recording(self, features):
        state = torch.get_rng_state()
        seen.append((features["audio"].clone(), torch.randn(4)))  # the crops; torch's next draws
        torch.set_rng_state(state)
        return step(self, features)

    monkeypatch.setattr(learner, "train_step", recording)
    base = ["train", "--train", str(data), "--out", str(tmp_path / "lmnt"), "--conf", str(conf), "--ckpt_every", "2"]
    lt.main([*base, "--steps", "2"])
    lt.main([*base, "--steps", "4"])
    (crops1, noise1), (crops3, noise3) = seen[0], seen[2]
    assert not torch.equal(noise1, noise3)
    assert not torch.equal(crops1, crops3)
    assert lt.resume_seed(0, 0) == 0 and len({lt.resume_seed(s, k) for s in (0, 1) for k in (2, 4)}) == 4
    with pytest.raises(SystemExit):  # SeedSequence takes no negative seeds: said at the command line
        lt.main([*base, "--steps", "6", "--seed", "-1"])
    assert "--seed -1: want a non-negative integer" in capsys.readouterr().err
