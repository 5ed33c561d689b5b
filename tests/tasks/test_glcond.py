"""data.cond_waveform=griffin_lim: a vocoder conditioned on its mels and their Griffin-Lim waveform."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from audiodiff.audio.features import griffin_lim
from audiodiff.builders import TASKS, build_formulation, build_network, build_task
from audiodiff.checkpoint import load_checkpoint
from audiodiff.config import ConfigError, load_config
from audiodiff.models.diffwave import unpack_waveform
from audiodiff.tasks.audio import vocoder_condition, vocoder_features
from tests.conftest import base_args, fail_cli, run_cli, train_cli

VOC = ["name=x", "data.train=/d", "task=vocoder", "model.diffwave.n_mels=80", "model.diffwave.hop=128"]
GL = ["data.cond_waveform=griffin_lim", "data.cond_griffin_lim.iters=4", "data.cond_griffin_lim.seed=3"]


def test_the_condition_packs_the_griffin_lim_waveform_of_its_own_mels_behind_them():
    scale = ["data.cond_scale=mel_range", "data.segment=1024"]
    plain = build_task(load_config(None, [*VOC, *scale]), "cpu")
    task = build_task(load_config(None, [*VOC, *scale, *GL]), "cpu")
    audio = torch.randn(2, 1, 1024) * 0.1
    cond = task.condition(audio)
    assert cond.shape == (2, 80 + 128, 8) and task.shape(cond) == (1, 1024)
    mel, wave = unpack_waveform(cond, 80, 128)
    assert torch.equal(mel, plain.condition(audio))  # the mel channels are the plain vocoder's
    feats = task.features(audio)  # Griffin-Lim of the raw log-mels, the last frame repeated: 9 frames -> 1024
    padded = torch.cat([feats, feats[..., -1:]], -1)  # each row's initial phase from its own generator, seed 3
    for row, want in zip(wave[:, 0], padded):
        alone = griffin_lim(task.logmel, want[None], 4, 0.99, 1024, torch.Generator().manual_seed(3))[0]
        torch.testing.assert_close(row, alone, rtol=1e-4, atol=1e-6)  # batched FFTs round differently
    assert torch.equal(task.condition(audio), cond)  # seeded: the same mels give the same condition
    assert torch.equal(vocoder_condition(feats, task.cfg.data), cond)  # a mel model's vocoder builds its own LogMel
    torch.testing.assert_close(vocoder_features(cond, task.cfg.data), feats)  # the mels back, the waveform left out
    other = build_task(load_config(None, [*VOC, *scale, *GL, "data.cond_griffin_lim.iters=8"]), "cpu")
    assert not torch.equal(other.condition(audio), cond)  # the recorded settings are the ones used


def test_a_clips_griffin_lim_condition_does_not_depend_on_its_batch():
    """Each row draws its own initial phase: a training crop's condition is the one it has alone (as generation
    computes it, batch 1), and a mel model's sample vocoded through a Griffin-Lim vocoder depends on its seed,
    not on the other samples of its batch (as with Griffin-Lim decoding: tasks/test_tasks.py)."""
    task = build_task(load_config(None, [*VOC, *GL, "data.segment=1024"]), "cpu")
    audio = torch.randn(3, 1, 1024, generator=torch.Generator().manual_seed(0)) * 0.1
    batch = task.condition(audio)
    for i in range(3):
        torch.testing.assert_close(batch[i], task.condition(audio[i : i + 1])[0], rtol=1e-4, atol=1e-6)
    conf = Path(__file__).parents[2] / "egs/digits/conf/mel_baseline.yaml"
    mel = TASKS["mel"](load_config(conf, ["name=mel", "data.train=unused"]))
    small = ["data.mel_preset=speech16k", "data.sample_rate=16000", "model.diffwave.layers=2"]
    small.append("model.diffwave.channels=4")
    voc = load_config(None, [*VOC, *GL, *small])
    net = build_network(voc).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # random weights throughout: the output layer starts at zero
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    mel.vocoder = (voc, net, build_formulation(voc), 0)
    x = torch.rand((3, *mel.shape()), generator=torch.Generator().manual_seed(2)) * 2 - 1
    together, alone = mel.decode(x, [5, 6, 7])[1], mel.decode(x[1:2], [6])[0]
    assert together.abs().max() > 0.01
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_priorgrad_takes_the_frame_energies_from_the_mel_channels_only():
    prior = ["diffusion.prior.kind=mel_energy", "diffusion.prior.energy_min=0.01", "diffusion.prior.energy_max=2"]
    plain_cfg = load_config(None, [*VOC, *prior, "data.segment=1024"])
    gl_cfg = load_config(None, [*VOC, *prior, *GL, "data.segment=1024"])
    audio = torch.randn(2, 1, 1024) * torch.linspace(0, 0.3, 1024)  # frame energies that vary
    cond = build_task(gl_cfg, "cpu").condition(audio)
    want = build_formulation(plain_cfg).prior_noise(build_task(plain_cfg, "cpu").condition(audio)).std
    assert want.std() > 0.01
    torch.testing.assert_close(build_formulation(gl_cfg).prior_noise(cond).std, want)


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            ["task=waveform", "model.diffwave.n_mels=0"],
            "data.cond_waveform=griffin_lim adds a waveform made from a "
            "vocoder's mels to its condition: it needs task=vocoder, got task=waveform",
        ),  # fmt: skip
        (["model.diffwave.wave_cond=2"], "model.diffwave.wave_cond=2 does not fit data.cond_waveform=griffin_lim"),
        (["data.cond_griffin_lim.momentum=1"], "data.cond_griffin_lim.momentum=1.0 must be in [0, 1)"),
        (["data.cond_griffin_lim.iters=0"], "data.cond_griffin_lim.iters=0 must be >= 1"),
        (
            ["data.cond_waveform=world"],
            "data.cond_waveform='world' is not allowed; choose one of ['none', 'griffin_lim']",
        ),
    ],
)
def test_bad_griffin_lim_settings_are_one_line_errors(extra, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [*VOC, *GL, *extra])
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="wave_cond=1 does not fit data.cond_waveform=none"):
        load_config(None, [*VOC, "model.diffwave.wave_cond=1"])


def test_a_griffin_lim_vocoder_trains_records_its_settings_and_vocodes(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    voc = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "task=vocoder", *GL]
    run = train_cli(config, corpus, exp, "gl", "train.steps=2", *voc)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["data"]["cond_waveform"] == "griffin_lim" and stored["model"]["diffwave"]["wave_cond"] == 1
    assert stored["data"]["cond_griffin_lim"] == {"iters": 4, "momentum": 0.99, "seed": 3}
    assert load_checkpoint(run)["model"]["layers.0.cond_proj.weight"].shape == (16, 81, 1)
    out = tmp_path / "gl_out"
    res = run_cli("generate", "--ckpt", run, "--mels-from", corpus, "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert sorted(p.stem for p in out.glob("*.wav")) == [f"utt{i}" for i in range(6)]
    settings = json.loads((out / "settings.json").read_text())
    assert settings["cond_waveform"] == "griffin_lim" and settings["cond_griffin_lim"]["iters"] == 4
    shallow = ["--init", "griffin-lim", "--init-level", "3", "--out", tmp_path / "shallow"]
    res = run_cli("generate", "--ckpt", run, "--mels-from", corpus, *shallow, "--device", "cpu")
    assert res.exit_code == 0, res.output
    out = fail_cli("train", config, "--no-progress", *base_args(corpus, exp, "w", "data.cond_waveform=griffin_lim"))
    assert "it needs task=vocoder, got task=waveform" in out


def test_the_asterisk_glcond_config_is_the_baseline_plus_the_griffin_lim_condition():
    from audiodiff.config import config_changes

    conf = Path(__file__).parents[2] / "egs/asterisk_en/conf"
    base, gl = (load_config(conf / f"{n}.yaml", ["name=x", "data.train=/d"]) for n in ("baseline", "glcond"))
    assert config_changes(base, gl) == {
        "data.cond_waveform": ("none", "griffin_lim"),
        "model.diffwave.wave_cond": (0, 1),
    }
    assert dict(gl.data.cond_griffin_lim) == {"iters": 32, "momentum": 0.99, "seed": 0}
