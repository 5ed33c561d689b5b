"""PriorGrad's mel-energy prior (audiodiff/diffusion/prior.py): the std it gives, training and sampling with it."""

import math
import re

import numpy as np
import pytest
import torch

from audiodiff.audio.features import LogMel, mel_config
from audiodiff.builders import build_formulation, build_network
from audiodiff.config import ConfigError, from_yaml, load_config, to_yaml
from audiodiff.diffusion.prior import (
    PriorConfig,
    build_prior,
    energy_range,
    frame_energy,
    record_training_range,
    spread_frames,
)
from audiodiff.sampling import sample
from audiodiff.tasks.audio import vocoder_condition

HOP, N_MELS = 128, 80
KIND = "diffusion.prior.kind=mel_energy"
NEW_KEYS = ("energy", "max_quantile", "align", "lifter_order", "floor")  # diffusion.prior keys added after the first
VOC = ["name=x", "data.train=/d", "task=vocoder", f"model.diffwave.n_mels={N_MELS}", f"model.diffwave.hop={HOP}",
       "model.diffwave.layers=2", "model.diffwave.channels=8", "model.diffwave.cycle=2", "model.diffwave.embed_dim=32",
       "data.segment=1024"]  # fmt: skip


def prior_config(*extra, std_min=0.1, energy=(0.0, 1.0)):
    """A tiny vocoder's config with the mel-energy prior (energy range given, as a trained run stores it)."""
    prior = ["diffusion.prior.kind=mel_energy", f"diffusion.prior.std_min={std_min}",
             f"diffusion.prior.energy_min={energy[0]}", f"diffusion.prior.energy_max={energy[1]}"]  # fmt: skip
    return load_config(None, [*VOC, *prior, *extra])


def frames(energies):
    """speech16k log-mels (1, 80, F) whose frame f has energy energies[f] (the same level in every band)."""
    level = torch.tensor(energies, dtype=torch.float64) / math.sqrt(N_MELS)
    return level.log().float()[None, None].expand(1, N_MELS, -1).contiguous()


def tiny_vocoder(cfg):
    net = build_network(cfg).eval()
    torch.nn.init.normal_(net.out.weight, std=0.1)  # the zero-initialised output layer would hide the network
    return net


def test_frame_energy_tracks_the_rms_and_std_follows_the_training_range():
    mel = mel_config("speech16k")
    logmel = LogMel(mel)
    audio = 0.1 * torch.randn(1, 4096, dtype=torch.float64)
    e1, e2 = frame_energy(logmel(audio), mel), frame_energy(logmel(2 * audio), mel)
    torch.testing.assert_close(e2, 2 * e1)  # twice the signal, twice the energy (a root of the power)
    prior = build_prior(prior_config(std_min=0.1, energy=(0.2, 1.2)))
    # silence (true zero energy and the log floor), below e_min, in range, above e_max
    silent = torch.full((1, N_MELS, 1), -math.inf)
    cond = torch.cat([silent, frames([1e-5 * math.sqrt(N_MELS), 0.1, 0.3, 0.7, 5.0])], -1)
    std = prior(cond)
    assert std.shape == (1, 1, 6 * HOP)
    assert torch.equal(std[0, 0, ::HOP], std[0, 0, HOP - 1 :: HOP])  # one value per frame, repeated hop times
    torch.testing.assert_close(std[0, 0, ::HOP], torch.tensor([0.1, 0.1, 0.1, 0.1, 0.5, 1.0]))


def test_the_prior_reads_the_raw_log_mels_whatever_the_condition_scale():
    feats = frames([0.05, 0.4, 0.9])
    raw = build_prior(prior_config())(feats)
    cfg = prior_config("data.cond_scale=mel_range", "data.mel_range=[-12,3]")
    torch.testing.assert_close(build_prior(cfg)(vocoder_condition(feats, cfg.data)), raw)
    torch.testing.assert_close(raw[0, 0, ::HOP], torch.tensor([0.1, 0.4, 0.9]))


def test_energy_range_is_the_smallest_and_largest_frame_rounded():
    lo, hi = energy_range([frames([0.123456789, 2.0]), frames([0.5, 3.14159265])], mel_config("speech16k"))
    assert (lo, hi) == (0.123457, 3.14159)


def test_max_quantile_sets_the_largest_energy_and_reference_energy_grows_as_the_rms_root():
    mel = mel_config("speech16k")
    energies = [0.01 * k for k in range(1, 100)] + [50.0]  # 99 ordinary frames and one click
    feats = [frames(energies[:60]), frames(energies[60:])]
    assert energy_range(feats, mel) == energy_range(feats, mel, max_quantile=1.0) == (0.01, 50.0)
    assert energy_range(feats, mel, max_quantile=0.98)[1] == float(f"{np.quantile(energies, 0.98):.6g}") < 1.0
    ref = frame_energy(frames([1.0, 4.0]), mel, "reference")  # sqrt(sum of magnitudes): sqrt(80 * e / sqrt(80))
    torch.testing.assert_close(ref, torch.tensor([[1.0, 4.0]]).mul(math.sqrt(N_MELS)).sqrt())
    audio = 0.1 * torch.randn(1, 4096, dtype=torch.float64)
    e1, e2 = (frame_energy(LogMel(mel)(a), mel, "reference") for a in (audio, 2 * audio))
    torch.testing.assert_close(e2, math.sqrt(2) * e1)
    with pytest.raises(ValueError, match=r"max_quantile=0.5: that quantile .* is not above the smallest"):
        energy_range([frames([1e-3] * 8 + [1.0, 2.0])], mel, max_quantile=0.5)


def test_spread_frames_centre_and_hold():
    """centre: frame k on [k*hop - hop/2, k*hop + hop/2), the first half hop frame 0's, the last the last frame's;
    hold: [k*hop, (k+1)*hop). Either way frames * hop samples, the audio's length."""
    per_frame = torch.tensor([[0.0, 1.0, 2.0]])
    want = {"centre": [0] * 2 + [1] * 4 + [2] * 6, "hold": [0] * 4 + [1] * 4 + [2] * 4}
    for align, values in want.items():
        assert spread_frames(per_frame, 4, align).tolist() == [[float(v) for v in values]], align
    odd = spread_frames(per_frame, 5, "centre")[0].tolist()  # hop 5: frame k from k*5 - 2
    assert odd == [0.0] * 3 + [1.0] * 5 + [2.0] * 7


@pytest.mark.parametrize(("align", "offset"), [("centre", 0), ("hold", HOP // 2)])
def test_a_clicks_std_peak_sits_on_its_stft_frame_centre(align, offset):
    """A click at sample k*hop is loudest in frame k, whose (centred) STFT window sits on k*hop; with
    align centre the std's excess over std_min is centred there (hold: half a hop late, the first version)."""
    mel, k, n = mel_config("speech16k"), 8, 16
    audio = torch.zeros(1, n * HOP, dtype=torch.float64)
    audio[0, k * HOP] = 1.0
    feats = LogMel(mel)(audio)[..., :n].float()
    peak = float(frame_energy(feats, mel).max())
    assert int(frame_energy(feats, mel).argmax()) == k
    cfg = prior_config(f"diffusion.prior.align={align}", std_min=0.01, energy=(0.0, peak))
    std = build_prior(cfg)(feats)[0, 0].double()
    assert std.shape == (n * HOP,)
    excess = std - 0.01
    centre = float((excess * torch.arange(n * HOP)).sum() / excess.sum())
    assert abs(centre - (k * HOP + offset - 0.5)) < 1.0, centre
    assert int(std.argmax()) == k * HOP - HOP // 2 + offset  # the first sample of the loudest frame's span


def test_new_runs_record_align_centre_and_a_range_stored_without_align_reads_as_hold():
    old = prior_config()  # a range and no align, as a run trained before align existed: read as hold
    assert old.diffusion.prior.align == "hold" and build_prior(old).align == "hold"
    text = to_yaml(old)  # as that run's checkpoint stored it: no energy, max_quantile, align keys
    text = "\n".join(line for line in text.splitlines() if line.strip().split(":")[0] not in NEW_KEYS)
    assert "align" not in text and "energy_min" in text
    stored = from_yaml(text)
    assert stored.diffusion.prior.align == "hold" and stored.diffusion.prior.energy == "rms"
    cond = frames([0.05, 1.0, 0.3])
    held = torch.tensor([0.1, 1.0, 0.3]).repeat_interleave(HOP)  # the first version's std, sample by sample
    assert torch.equal(build_prior(stored)(cond)[0, 0], held)
    prior = PriorConfig(kind="mel_energy")
    record_training_range(prior, [frames([0.5, 2.0])], mel_config("speech16k"))
    assert (prior.energy_min, prior.energy_max, prior.align) == (0.5, 2.0, "centre")
    prior = PriorConfig(kind="mel_energy", align="hold")  # set in the config: kept
    record_training_range(prior, [frames([0.5, 2.0])], mel_config("speech16k"))
    assert prior.align == "hold"


def test_std_one_everywhere_is_bit_identical_to_no_prior():
    """std_min = 1 makes the prior N(0, I): training and every sampler give the very same numbers."""
    none, one = load_config(None, VOC), prior_config(std_min=1.0)
    unit = ["diffusion.prior.kind=mel_energy", "diffusion.prior.std_min=1.0", "diffusion.prior.energy_min=0",
            "diffusion.prior.energy_max=1"]  # fmt: skip
    net = tiny_vocoder(none)
    cond = frames(torch.linspace(0.01, 1.0, 8).tolist())
    x0, t, noise = 0.1 * torch.randn(2, 1, 8 * HOP), torch.tensor([3, 40]), torch.randn(2, 1, 8 * HOP)
    for loss in ("l1", "l2"):
        terms = [
            build_formulation(load_config(None, [*VOC, *over, f"diffusion.loss_type={loss}"])).training_terms(
                net, x0, cond.expand(2, -1, -1), t=t, noise=noise
            )
            for over in ([], unit)
        ]
        for key in ("denoise", "x0_hat", "x"):
            assert torch.equal(terms[0][key], terms[1][key]), (loss, key)
    for sampler, steps, eta in (("fast", None, 0.0), ("ddpm", 5, 0.0), ("ddim", 5, 0.0), ("ddim", 5, 1.0)):
        outs = []
        for cfg in (none, one):
            cfg.sample.eta = eta
            outs.append(sample(net, build_formulation(cfg), cfg, [3], (1, 8 * HOP), cond, sampler, steps))
        assert torch.equal(outs[0], outs[1]), sampler
    assert build_formulation(one).prior_noise(cond).std.eq(1.0).all()


def test_training_noise_has_the_prior_std_and_the_error_is_weighted_by_its_inverse():
    cfg = prior_config("diffusion.loss_type=l1")
    ddpm = build_formulation(cfg)
    cond = frames([1e-6, 0.25, 1.0]).expand(64, -1, -1)  # std 0.1, 0.25, 1
    x0, t = torch.zeros(64, 1, 3 * HOP), torch.full((64,), 30)
    a = ddpm.abar[30].float()

    def exact_plus_delta(x_t, step, c):  # the true (scaled) noise of x0 = 0, plus 0.01
        return x_t / (1 - a).sqrt() + 0.01

    terms = ddpm.training_terms(exact_plus_delta, x0, cond, t=t)
    z = terms["x"] / terms["sigma"][:, None, None]  # x = x0 + sigma * std * z
    got = z.reshape(64, 1, 3, HOP).transpose(0, 2).reshape(3, -1).std(1)
    torch.testing.assert_close(got, torch.tensor([0.1, 0.25, 1.0]), rtol=0.05, atol=0)
    want = torch.full((64,), 0.01 * (1 / 0.1 + 1 / 0.25 + 1) / 3)  # mean |delta| / std: the L1 Sigma^-1/2 weighting
    torch.testing.assert_close(terms["denoise"], want, rtol=1e-3, atol=0)
    l2 = build_formulation(prior_config("diffusion.loss_type=l2")).training_terms(exact_plus_delta, x0, cond, t=t)
    torch.testing.assert_close(l2["denoise"], want.new_full((64,), 1e-4 * (100 + 16 + 1) / 3), rtol=1e-3, atol=0)


@pytest.mark.parametrize("sampler", ["fast", "ddpm", "ddim"])
def test_sampling_starts_from_and_adds_noise_that_follows_the_mel(sampler):
    """Silent frames start quiet and stay quiet; with the untrained network (output 0, x0_hat = x) every
    ancestral step adds std-scaled noise, so the output's silent/loud std ratio is std_min."""
    cfg = prior_config()
    cfg.sample.eta = 1.0
    net, ddpm = build_network(cfg).eval(), build_formulation(cfg)
    cond = frames([1e-6] * 16 + [1.0] * 16)  # 16 silent frames, then 16 at the largest training energy
    first = []
    out = sample(net, ddpm, cfg, [0], (1, 32 * HOP), cond, sampler, 6, lambda i, s, x, x0: first.append((s, x.clone())))
    half = 16 * HOP
    start = first[0][1][0, 0] / ddpm.prior_std(first[0][0])  # the starting draw, before its sigma-view scaling
    torch.testing.assert_close(start[:half].std(), torch.tensor(0.1), rtol=0.05, atol=0)
    torch.testing.assert_close(start[half:].std(), torch.tensor(1.0), rtol=0.05, atol=0)
    out_ratio = out[0, 0, :half].std() / out[0, 0, half:].std()
    torch.testing.assert_close(out_ratio, torch.tensor(0.1), rtol=0.05, atol=0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["diffusion.kind=edm"], f"{KIND} is a DDPM prior (PriorGrad): it needs diffusion.kind=ddpm, got edm"),
        (["task=waveform", "model.diffwave.n_mels=0"],
         f"{KIND} follows the energy of a conditioning mel: it needs task=vocoder, got task=waveform"),
        (["diffusion.prior.std_min=0"], "diffusion.prior.std_min=0.0 must be in (0, 1]"),
        (["diffusion.prior.energy_max=null"], "diffusion.prior.energy_min/energy_max: set both or neither"),
        (["diffusion.prior.energy_min=2"],
         "diffusion.prior: need 0 <= energy_min < energy_max < inf, got energy_min=2.0, energy_max=1.0"),
        (["diffusion.prior.max_quantile=0"], "diffusion.prior.max_quantile=0.0 must be in (0, 1] (1: the loudest"),
        (["diffusion.prior.max_quantile=1.5"], "diffusion.prior.max_quantile=1.5 must be in (0, 1]"),
        (["diffusion.prior.energy_max=inf"],
         "diffusion.prior: need 0 <= energy_min < energy_max < inf, got energy_min=0.0, energy_max=inf"),
    ],
)  # fmt: skip
def test_unsupported_prior_settings_are_one_line_errors(extra, message):
    with pytest.raises(ConfigError, match="^config: " + re.escape(message)) as err:
        prior_config(*extra)
    assert "\n" not in str(err.value)


def test_images_and_mels_cannot_take_the_prior_and_a_model_needs_its_energy_range():
    with pytest.raises(ConfigError, match="it needs task=vocoder, got task=image"):
        load_config(None, ["name=x", "data.train=/d", "task=image", "model.kind=unet", f"{KIND}"])
    cfg = load_config(None, [*VOC, "diffusion.prior.kind=mel_energy"])  # as loaded before training
    with pytest.raises(ValueError, match="needs diffusion.prior.energy_min and energy_max: `audiodiff train` computes"):
        build_formulation(cfg)
    with pytest.raises(ValueError, match="needs the condition it follows"):
        build_formulation(prior_config()).prior_noise(None)
