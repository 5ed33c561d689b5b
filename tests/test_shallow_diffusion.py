"""Shallow diffusion from Griffin-Lim (`generate --init griffin-lim --init-level K`): the sampler skips its first K
steps and starts at level K from the Griffin-Lim waveform of the same mels, noised to that level."""

import json

import pytest
import torch

from audiodiff.audio.io import load_audio
from audiodiff.config import ExperimentConfig
from audiodiff.diffusion import DDPM
from audiodiff.diffusion.prior import ScaledNoise
from audiodiff.diffusion.samplers import SeededNoise, fast_sigmas
from audiodiff.eval.context import run_context
from audiodiff.sampling import run_plan, sampling_plan
from tests.conftest import fail_cli, run_cli, train_cli, write_corpus

VOCODER = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "task=vocoder"]
SHALLOW = ["--init", "griffin-lim", "--init-level"]


@pytest.fixture(scope="module")
def vocoder(tmp_path_factory):
    """A tiny DDPM vocoder after 2 steps (its output layer still near its zero init: x0_hat ~ x) and 2 clips."""
    root = tmp_path_factory.mktemp("shallow")
    config = root / "conf.yaml"
    config.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    corpus = write_corpus(root, n=2)
    return train_cli(config, corpus, root / "exp", "voc", "train.steps=2", *VOCODER), corpus


def vocode(run, corpus, out, *args):
    res = run_cli(
        "generate", "--ckpt", run, "--mels-from", corpus, "--out", out, "--device", "cpu", "--seeds", "0", *args
    )
    assert res.exit_code == 0, res.output
    return res.output, json.loads((out / "settings.json").read_text())


def test_level_0_skips_nothing_and_is_the_default_bit_for_bit(tmp_path, vocoder):
    run, corpus = vocoder
    _, plain = vocode(run, corpus, tmp_path / "plain")
    _, zero = vocode(run, corpus, tmp_path / "zero", *SHALLOW, "0")
    assert plain["files"] == zero["files"] == ["utt0.wav", "utt1.wav"] and "init" not in plain
    for name in plain["files"]:
        assert torch.equal(load_audio(tmp_path / "plain" / name, 16000), load_audio(tmp_path / "zero" / name, 16000))
    assert zero["init"]["level"] == 0 and "Griffin-Lim unused" in zero["init"]["note"]
    assert run_context(tmp_path / "zero")["sampler"] == run_context(tmp_path / "plain")["sampler"] == "fast, 6 steps"


def test_the_last_level_gives_back_griffin_lim_plus_that_levels_noise(tmp_path, vocoder):
    run, corpus = vocoder
    assert run_cli("griffin-lim", "--mels-from", corpus, "--out", tmp_path / "gl").exit_code == 0
    output, settings = vocode(run, corpus, tmp_path / "g5", "--sampler", "fast", *SHALLOW, "5")
    sigma = float(fast_sigmas()[5])  # 0.0100: the one step left goes from there to 0
    assert settings["init"]["level"] == 5 and settings["init"]["levels"] == 6
    assert settings["init"]["sigma"] == pytest.approx(sigma) and settings["init"]["griffin_lim"]["iters"] == 64
    assert f"5 of 6 steps skipped, starting at sigma {sigma:.4g}" in output
    assert run_context(tmp_path / "g5")["sampler"] == "fast, 6 steps, from griffin-lim at level 5 of 6 (sigma 0.01)"
    for name in settings["files"]:
        gl, got = load_audio(tmp_path / "gl" / name, 16000), load_audio(tmp_path / "g5" / name, 16000)
        assert got.shape == gl.shape  # aligned sample for sample
        assert torch.corrcoef(torch.stack([gl, got]))[0, 1] > 0.99
        z = SeededNoise([0])(torch.zeros(1, *got.shape))[0]  # the seed's first draw: the starting noise
        residual = got - gl
        assert 0.9 < float(residual.std()) / sigma < 1.1
        assert torch.corrcoef(torch.stack([residual, z]))[0, 1] > 0.95


def test_each_clip_is_read_once_for_its_condition_and_its_griffin_lim_start(tmp_path, vocoder, monkeypatch):
    """The Griffin-Lim starts come from the clips the vocoder's jobs read (Job.audio); each clip was read twice."""
    import audiodiff.tasks.audio

    run, corpus = vocoder
    reads, load = [], audiodiff.tasks.audio.load_audio
    monkeypatch.setattr(
        audiodiff.tasks.audio, "load_audio", lambda path, *a, **k: reads.append(path) or load(path, *a, **k)
    )
    _, settings = vocode(run, corpus, tmp_path / "g3", *SHALLOW, "3")
    assert settings["init"]["level"] == 3 and sorted(reads) == sorted(set(reads)) and len(reads) == 2


@pytest.mark.parametrize("sampler,steps,skip", [("fast", 6, 2), ("ddpm", 50, 40), ("ddim", 8, 3)])
def test_the_first_state_is_init_plus_the_levels_noise_scaled_by_the_prior(sampler, steps, skip):
    """x = init + sigma_K * scale * z, i.e. sqrt(abar) x = sqrt(abar) init + sqrt(1 - abar) scale z, per sample."""
    cfg = ExperimentConfig(name="t")
    formulation = DDPM.from_preset("diffwave")
    plan = sampling_plan(cfg, formulation, sampler, steps)
    init = torch.randn(2, 1, 8192) * 0.3
    scale = torch.tensor([0.5, 2.0]).view(2, 1, 1)  # a per-sample prior std (PriorGrad)
    seen = []
    run_plan(plan, lambda x, s, c: x * 0, formulation, [3, 4], (1, 8192), None, lambda *a: seen.append(a[1:3]),
             prior=ScaledNoise(scale), start=(skip, init))  # fmt: skip
    sigma, first = seen[0][0], seen[0][1]
    assert len(seen) == len(plan[1]) - 1 - skip and sigma == pytest.approx(float(plan[1][skip]))
    z = SeededNoise([3, 4])(torch.zeros(2, 1, 8192))
    torch.testing.assert_close(first, init + sigma * scale * z)
    abar = 1 / (1 + sigma**2)
    stds = (abar**0.5 * (first - init)).flatten(1).std(1)
    torch.testing.assert_close(stds, (1 - abar) ** 0.5 * scale.flatten(), rtol=0.05, atol=0)
    with pytest.raises(ValueError, match=f"skip {len(plan[1]) - 1} is out of range: allowed 0..{len(plan[1]) - 2}"):
        run_plan(plan, lambda x, s, c: x * 0, formulation, [3, 4], (1, 8192), start=(len(plan[1]) - 1, init))
    with pytest.raises(ValueError, match=r"init of shape \(2, 1, 8192\), the samples' is \(2, 1, 4096\)"):
        run_plan(plan, lambda x, s, c: x * 0, formulation, [3, 4], (1, 4096), start=(skip, init))


def test_errors_name_the_option_and_what_is_allowed(tmp_path, vocoder, config):
    run, corpus = vocoder
    out = tmp_path / "g"

    def fails(ckpt, *args, mels=True):
        message = fail_cli("generate", "--ckpt", ckpt, "--out", out, "--device", "cpu",
                           *(["--mels-from", corpus] if mels else []), *args)  # fmt: skip
        assert not out.exists()
        return message

    assert "--init griffin-lim needs --mels-from DIR and --init-level K" in fails(run, *SHALLOW, "2", mels=False)
    assert "--init griffin-lim needs --mels-from DIR and --init-level K" in fails(run, "--init", "griffin-lim")
    assert "--init-level needs --init; the one init is griffin-lim" in fails(run, "--init-level", "2")
    message = fails(run, *SHALLOW, "6")
    assert "--init-level 6 is out of range: allowed 0..5, the steps to skip of --sampler fast's 6 levels" in message
    message = fails(run, "--sampler", "ddpm", "--steps", "4", *SHALLOW, "4")
    assert "--init-level 4 is out of range: allowed 0..3, the steps to skip of --sampler ddpm's 4 levels" in message
    wave = train_cli(config, corpus, tmp_path / "exp", "wave", "train.steps=1")
    edm = train_cli(config, corpus, tmp_path / "exp", "edm", "train.steps=1", "diffusion.kind=edm",
                    "sample.sampler=heun", *VOCODER)  # fmt: skip
    for ckpt, kind in ((wave, "task=waveform, diffusion.kind=ddpm"), (edm, "task=vocoder, diffusion.kind=edm")):
        message = fails(ckpt, *SHALLOW, "1", mels=ckpt == edm)
        assert (
            f"applies to mel-conditioned DDPM vocoders (task=vocoder, diffusion.kind=ddpm); this model is {kind}"
            in message
        )
