"""SpecGrad's spectral-envelope prior (audiodiff/diffusion/spec_envelope.py): the filter, the coloured noise's
spectrum, whiten against colour, the loss, sampling, config errors, and a training run's stored prior."""

import math
import re

import pytest
import torch
import yaml

from audiodiff.audio.features import LogMel, mel_config
from audiodiff.builders import build_formulation, build_network
from audiodiff.config import ConfigError, load_config
from audiodiff.diffusion.prior import frame_range
from audiodiff.diffusion.spec_envelope import FilteredNoise, envelope_gains, spectral_envelope
from audiodiff.sampling import sample

HOP, N_MELS, BINS, N_FFT = 128, 80, 257, 512  # speech16k
KIND = "diffusion.prior.kind=spec_envelope"
VOC = ["name=x", "data.train=/d", "task=vocoder", f"model.diffwave.n_mels={N_MELS}", f"model.diffwave.hop={HOP}",
       "model.diffwave.layers=2", "model.diffwave.channels=8", "model.diffwave.cycle=2", "model.diffwave.embed_dim=32",
       "data.segment=1024"]  # fmt: skip
LOGMEL = LogMel(mel_config("speech16k"))
BIN = torch.arange(BINS, dtype=torch.float64)
FALLING = torch.exp(-BIN / 40)  # an amplitude spectrum falling 55 dB from 0 to 8 kHz
RISING = torch.exp((BIN - 256) / 60)  # rising 37 dB
WINDOW_POWER = float(torch.hann_window(N_FFT).square().sum())  # E|STFT(z)|^2 of white noise of std 1, every bin


def spec_config(*extra, floor=0.01, energy_max=1.0):
    """A tiny vocoder's config with the spec_envelope prior, its range given (as a trained run stores it)."""
    prior = [KIND, f"diffusion.prior.floor={floor}", "diffusion.prior.energy_min=0.001",
             f"diffusion.prior.energy_max={energy_max}"]  # fmt: skip
    return load_config(None, [*VOC, *prior, *extra])


def logmels(spectra) -> torch.Tensor:
    """speech16k log-mels (1, 80, F) of the amplitude spectra (each (257,)) of F frames."""
    return (LOGMEL.fb @ torch.stack(list(spectra), -1)).clamp_min(1e-5).log().float()[None]


def band_db(power: torch.Tensor, lo_hz: float, hi_hz: float) -> torch.Tensor:
    """10 log10 of the mean of `power` (..., 257, frames) over the bins in [lo_hz, hi_hz) -> (..., frames)."""
    band = slice(int(lo_hz / 8000 * 256), int(hi_hz / 8000 * 256))
    return 10 * power[..., band, :].mean(-2).log10()


def test_the_filter_follows_the_mels_envelope_and_scales_with_it():
    """Twice the mels, twice the envelope (a log shift is the cepstrum's c0); a falling spectrum gives a falling
    filter and a rising one a rising filter, each band within 3 dB of the spectrum's own tilt; the loudest training
    envelope (RMS e_max) gets filter RMS 1, a louder one is scaled down to it, and silence sits at the floor."""
    feats = logmels([FALLING, RISING]).double()
    env = spectral_envelope(feats, LOGMEL, 24)
    torch.testing.assert_close(spectral_envelope(feats + math.log(2), LOGMEL, 24), 2 * env)
    for f, spectrum in enumerate((FALLING, RISING)):  # the tilt from 0.5-1 kHz to 5-6 kHz
        want = band_db(spectrum[:, None] ** 2, 5000, 6000) - band_db(spectrum[:, None] ** 2, 500, 1000)
        got = band_db(env[0, :, f : f + 1] ** 2, 5000, 6000) - band_db(env[0, :, f : f + 1] ** 2, 500, 1000)
        assert abs(float(got - want)) < 3.0, (f, float(got), float(want))
    gain = float(env[0, :, 0].square().mean().sqrt())
    prior = build_formulation(spec_config(energy_max=gain)).prior
    cond = logmels([FALLING, 2 * FALLING, 0.5 * FALLING, torch.full((BINS,), 1e-9)])
    filt = prior(cond)[0]
    assert filt.shape == (BINS, 4)
    rms = filt.square().mean(0).sqrt()
    torch.testing.assert_close(rms[:2], torch.tensor([1.0, 1.0]), rtol=0.01, atol=0)  # e_max, and twice it
    torch.testing.assert_close(filt[:, 1], filt[:, 0], rtol=1e-4, atol=0)  # scaled down to the same filter
    assert 0.45 < float(rms[2]) < 0.51 and filt.min() == pytest.approx(0.01)  # half, floored in the top bins
    assert torch.equal(filt[:, 3], torch.full((BINS,), 0.01))  # silence: the floor everywhere


def test_coloured_noise_has_the_filters_power_spectrum_frame_by_frame():
    """E|STFT(colour(z))_fk|^2 = |H_fk|^2 * sum(window^2) where the filter changes slowly. Over 400 draws a bin's
    mean power is a mean of 400 exponentials (relative std 5%); a 1 kHz band averages 32 bins, about 11
    independent ones (the Hann window correlates neighbours): a band's relative std is about 1/sqrt(400 * 11) =
    1.5%, 0.065 dB (measured over 5 seeds: 0.059 dB, mean -0.008). The 120 band-frames checked reach 3.5 of
    those (at most 0.27 dB over the 5 seeds); 0.4 dB is 6.7. The window's smoothing of the filter across its
    main lobe adds at most 0.05 dB (the coloured draws against their own white draws' power times |H|^2).
    Where the filter drops 40 dB in one frame the noise leaks across the overlapping windows: those frames are
    left out (the next test measures them)."""
    prior = build_formulation(spec_config()).prior
    spectra = [0.5 * FALLING] * 12 + [0.5 * RISING] * 12  # two settled halves, 24 frames
    op = prior.operator(logmels(spectra).expand(400, -1, -1))
    z = torch.randn(400, 1, 24 * HOP, generator=torch.Generator().manual_seed(0))
    spec = torch.stft(op.colour(z)[:, 0], N_FFT, HOP, N_FFT, torch.hann_window(N_FFT), return_complex=True)
    power, want = spec.abs().square().mean(0), op.filt[0].square() * WINDOW_POWER
    assert power.shape == want.shape == (BINS, 25)  # 24 mel frames, 25 centred STFT frames: the last takes the 24th's
    settled = [*range(2, 9), *range(15, 23)]
    for lo in range(0, 8000, 1000):
        err = (band_db(power, lo, lo + 1000) - band_db(want, lo, lo + 1000))[settled]
        assert err.abs().max() < 0.4, (lo, err)
    # the two halves differ by far more than that: the test can fail (30 dB between their top bands)
    assert float(band_db(power, 7000, 8000)[20] - band_db(power, 7000, 8000)[5]) > 25


def test_whiten_undoes_colour_where_the_filter_changes_slowly():
    """whiten(colour(z)) = iSTFT(STFT(iSTFT(H STFT z)) / H) is z only up to the iSTFT's projection of H STFT(z)
    onto consistent STFTs. Measured relative error (norm over the frame's samples, 300 draws): at most 0.2%
    in frames of a settled filter (0.1-2% for sharp resonances), 0.4% under a 20 dB ramp over 24 frames, so
    the bound 1% where the filter changes by at most 1 dB a frame. Where it drops 40 dB between two frames the
    loud frame's noise leaks under the quiet frame's filter and the error reaches 2.4 times the noise (3.7 at a
    40 dB change of tilt): asserted here so that a better whiten shows. It only reweights the loss there
    (the L2 loss |A (eps_hat - eps)|^2 has the minimiser E[eps | x_t] for any invertible A)."""
    prior = build_formulation(spec_config()).prior
    z = torch.randn(300, 1, 24 * HOP, generator=torch.Generator().manual_seed(1))

    def frame_errors(spectra):
        op = prior.operator(logmels(spectra).expand(300, -1, -1))
        err = (op.whiten(op.colour(z)) - z).reshape(300, 24, HOP).square().sum((0, 2))
        return (err / z.reshape(300, 24, HOP).square().sum((0, 2))).sqrt()

    ramp = frame_errors(0.5 * FALLING * 10 ** (-f / 20) for f in range(24))  # 1 dB a frame
    assert ramp.max() < 0.01, ramp
    step = frame_errors([0.5 * FALLING] * 12 + [0.005 * FALLING] * 12)  # 40 dB down from frame 12
    assert step[:9].max() < 0.01 and step[14:].max() < 0.01 and 1.5 < step.max() < 4, step


def test_the_loss_is_the_whitened_error_of_coloured_noise_by_hand():
    """training_terms at a fixed t and z: eps = iSTFT(H STFT z), x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, and the
    L1 loss is the mean |iSTFT(STFT(out - eps) / H)|, with the STFT written out here (centred, the mel's window)."""
    cfg = spec_config("diffusion.loss_type=l1")
    ddpm = build_formulation(cfg)
    net = build_network(cfg).eval()
    torch.nn.init.normal_(net.out.weight, std=0.1)  # the zero-initialised output layer would hide the network
    cond = logmels([0.5 * FALLING * 10 ** (-f / 10) for f in range(8)]).expand(2, -1, -1)
    gen = torch.Generator().manual_seed(3)
    x0, z, t = (
        0.1 * torch.randn(2, 1, 8 * HOP, generator=gen),
        torch.randn(2, 1, 8 * HOP, generator=gen),
        torch.tensor([3, 40]),
    )
    terms = ddpm.training_terms(net, x0, cond, t=t, noise=z)
    filt = ddpm.prior(cond)
    filt = torch.cat([filt, filt[..., -1:]], -1)  # 9 centred STFT frames for 8 mel frames
    stft = {"n_fft": N_FFT, "hop_length": HOP, "win_length": N_FFT, "window": torch.hann_window(N_FFT)}

    def filtered(x, gain):
        return torch.istft(torch.stft(x[:, 0], **stft, return_complex=True) * gain, **stft, length=x.shape[-1])[:, None]

    eps = filtered(z, filt)
    abar = ddpm.abar[t].float()[:, None, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    with torch.no_grad():
        err = net(x_t, t.float(), cond) - eps
    want = filtered(err, 1 / filt).abs().mean((1, 2))
    torch.testing.assert_close(terms["denoise"].detach(), want, rtol=1e-5, atol=0)
    torch.testing.assert_close(terms["x"], x_t / abar.sqrt())
    assert not torch.allclose(want, err.abs().mean((1, 2)), rtol=0.1)  # whitening changes the loss


def test_the_filter_and_the_noise_are_the_same_under_bf16_autocast():
    """Training runs under bf16 autocast (train.bf16 on CUDA, train.fast_cpu on CPUs), generation without: the
    filter is built in float32 either way, so the prior a model trains with is the one it samples with, bit for
    bit (the mel basis's pseudo-inverse multiplied in bf16 moved the filter by up to 12% on random mels)."""
    prior = build_formulation(spec_config()).prior
    cond = torch.cat([logmels([0.5 * FALLING] * 4 + [0.05 * RISING] * 4), 0.5 * torch.randn(1, N_MELS, 8) - 3])
    z = torch.randn(2, 1, 8 * HOP, generator=torch.Generator().manual_seed(5))
    want = prior(cond), prior.operator(cond).colour(z), prior.operator(cond).whiten(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = prior(cond), prior.operator(cond).colour(z), prior.operator(cond).whiten(z)
    assert all(g.dtype == torch.float32 and torch.equal(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize(("sampler", "steps"), [("fast", None), ("ddpm", 6), ("ddim", 6)])
def test_sampling_starts_from_and_adds_coloured_noise(sampler, steps):
    """With the zero-initialised output layer (eps_hat = 0) and no clipping every sampler step is linear in x and
    the noise draw, so with the same seeds the prior's sample is colour() of the N(0, I) model's sample: the
    start and every ancestral draw (eta 1) were coloured; so was the first state (up to rounding)."""
    cond = logmels([0.5 * FALLING] * 8 + [0.5 * RISING] * 8)
    outs, firsts = [], []
    for cfg in (load_config(None, VOC), spec_config()):
        cfg.sample.eta, cfg.sample.clip_denoised = 1.0, False
        net, ddpm = build_network(cfg).eval(), build_formulation(cfg)
        seen = []
        outs.append(
            sample(net, ddpm, cfg, [4], (1, 16 * HOP), cond, sampler, steps, lambda *a, seen=seen: seen.append(a[2]))
        )
        firsts.append(seen[0])
    op = build_formulation(spec_config()).prior_noise(cond)
    torch.testing.assert_close(firsts[1], op.colour(firsts[0]), rtol=1e-5, atol=1e-5)
    scale = float(outs[0].abs().max())
    torch.testing.assert_close(outs[1], op.colour(outs[0]), rtol=0, atol=1e-5 * scale)
    assert not torch.allclose(outs[1], outs[0], rtol=0.1)  # the filter is not the identity


def test_the_operator_refuses_noise_of_another_length():
    op = build_formulation(spec_config()).prior_noise(logmels([FALLING] * 8))
    assert isinstance(op, FilteredNoise)
    with pytest.raises(ValueError, match=r"noise \(1, 1, 1280\) has 11 STFT frames \(hop 128\), its filter \(1, 257, "
                       r"9\) is for 9 \(a condition of 8 mel frames covers 1024 samples\)"):  # fmt: skip
        op.colour(torch.zeros(1, 1, 10 * HOP))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["diffusion.kind=edm"], f"{KIND} is a DDPM prior (SpecGrad): it needs diffusion.kind=ddpm, got edm"),
        (["task=waveform", "model.diffwave.n_mels=0"],
         f"{KIND} follows the spectral envelope of a conditioning mel: it needs task=vocoder, got task=waveform"),
        (["diffusion.prior.lifter_order=0"],
         "diffusion.prior.lifter_order=0 must be in 1..256 (quefrencies kept, up to half the n_fft of "
         "data.mel_preset=speech16k)"),
        (["diffusion.prior.lifter_order=257"], "diffusion.prior.lifter_order=257 must be in 1..256"),
        (["diffusion.prior.floor=0"], "diffusion.prior.floor=0.0 must be in (0, 1] (the filter's smallest magnitude)"),
        (["diffusion.prior.floor=2"], "diffusion.prior.floor=2.0 must be in (0, 1]"),
        (["diffusion.prior.std_min=0.2"],
         "diffusion.prior.std_min=0.2 applies to kind=mel_energy (PriorGrad), not kind=spec_envelope; leave it out "
         "(keys of spec_envelope: lifter_order, floor)"),
        (["diffusion.prior.align=centre"], "diffusion.prior.align=centre applies to kind=mel_energy (PriorGrad)"),
        (["diffusion.prior.kind=mel_energy"],
         "diffusion.prior.floor=0.02 applies to kind=spec_envelope (SpecGrad), not kind=mel_energy; leave it out"),
        (["diffusion.prior.kind=spectral"],
         "diffusion.prior.kind='spectral' is not allowed; choose one of ['none', 'mel_energy', 'spec_envelope']"),
        (["diffusion.prior.lifter_order=ten"], "bad value for 'diffusion.prior.lifter_order': Value 'ten'"),
    ],
)  # fmt: skip
def test_bad_spec_envelope_settings_are_one_line_errors_naming_the_key(extra, message):
    floor = 0.02 if "diffusion.prior.kind=mel_energy" in extra else 0.01
    with pytest.raises(ConfigError, match="^config: " + re.escape(message)) as err:
        spec_config(*extra, floor=floor)
    assert "\n" not in str(err.value)


def test_a_20_step_run_stores_its_envelope_range_and_its_checkpoint_rebuilds_the_prior(tmp_path, corpus, config):
    """20 steps with diffusion.prior.kind=spec_envelope on tiny synthetic clips: finite losses; the training
    clips' envelope-RMS range (max_quantile 0.9) goes into config.yaml and the checkpoint, generation rebuilds the
    same prior from the checkpoint alone (the filter of a condition bit for bit) and vocodes finite audio."""
    from audiodiff.audio.io import load_audio
    from audiodiff.builders import load_for_generation
    from audiodiff.checkpoint import load_checkpoint
    from tests.conftest import run_cli, train_cli

    prior = [KIND, "diffusion.prior.max_quantile=0.9", "diffusion.prior.lifter_order=20", "diffusion.prior.floor=0.02"]
    voc = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "task=vocoder", *prior]
    run = train_cli(config, corpus, tmp_path / "exp", "sg", "train.steps=20", "train.ckpt_every=10", *voc)
    lines = [line for line in (run / "log.txt").read_text().splitlines() if line.startswith("step ")]
    losses = [float(re.search(r" loss=(\S+)", line).group(1)) for line in lines]
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)
    mel = mel_config("speech16k")
    clips = [load_audio(p, 16000).double()[None] for p in sorted((corpus.parent.parent / "wav").glob("*.wav"))]
    want = frame_range(envelope_gains((LogMel(mel)(c)[..., : c.shape[-1] // HOP] for c in clips), mel, 20), 0.9)
    stored = yaml.safe_load(load_checkpoint(run)["config"])["diffusion"]["prior"]
    assert stored == {"kind": "spec_envelope", "std_min": 0.1, "energy": "rms", "max_quantile": 0.9, "align": None,
                      "lifter_order": 20, "floor": 0.02, "energy_min": want[0], "energy_max": want[1]}  # fmt: skip
    assert yaml.safe_load((run / "config.yaml").read_text())["diffusion"]["prior"] == stored
    cfg, _, formulation, step = load_for_generation(run)
    assert step == 20 and (formulation.prior.energy_max, formulation.prior.floor) == (want[1], 0.02)
    rebuilt = build_formulation(spec_config("diffusion.prior.lifter_order=20", floor=0.02, energy_max=want[1]))
    cond = logmels([0.5 * FALLING, 0.05 * RISING, 0.2 * FALLING])
    assert torch.equal(formulation.prior(cond), rebuilt.prior(cond))
    out = tmp_path / "sg_out"
    res = run_cli("generate", "--ckpt", run, "--mels-from", corpus, "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    audio = [load_audio(p, 16000) for p in sorted(out.glob("*.wav"))]
    assert len(audio) == 6 and all(torch.isfinite(a).all() for a in audio)


def test_the_card_names_egs_specgrad_yaml_s_prior():
    """egs/asterisk_en/conf/specgrad.yaml loads (its keys are this kind's) and a model card names the prior."""
    from pathlib import Path

    from audiodiff.card import _diffusion

    conf = Path(__file__).parents[2] / "egs/asterisk_en/conf/specgrad.yaml"
    over = ["name=x", "data.train=/d", "diffusion.prior.energy_min=0.001", "diffusion.prior.energy_max=3.5"]
    d = load_config(conf, over).diffusion
    assert _diffusion(d).endswith(
        "; SpecGrad spec_envelope prior (lifter order 24, floor 0.01, training envelope RMS 0.001 .. 3.5 "
        "(its 0.99 quantile))"
    )


def test_a_fine_tune_keeps_its_sources_spec_envelope_prior_and_says_so(tmp_path):
    """A fine-tuned spec_envelope run takes its source's prior block (range, lifter order, floor), as PriorGrad's;
    keep_prior_align leaves it alone (align is PriorGrad's placement)."""
    from audiodiff.checkpoint import ResumedPrior
    from audiodiff.config import to_yaml
    from audiodiff.finetune import inherit_prior
    from audiodiff.runfiles import keep_prior_align

    ckpt = tmp_path / "ckpt-00000002.pt"
    source = spec_config("diffusion.prior.lifter_order=20", floor=0.03, energy_max=2.5)
    torch.save({"config": to_yaml(source), "model": {}, "step": 2}, ckpt)
    cfg = load_config(None, [*VOC, KIND, "train.init_from=/gone.pt"])  # no range: the source's
    keep_prior_align(cfg, ResumedPrior(ckpt))
    note = inherit_prior(cfg, ResumedPrior(ckpt))
    assert note == (
        f"diffusion.prior from {ckpt}, the prior its weights were trained with: spec_envelope, lifter order 20, "
        "floor 0.03, envelope RMS 0.001 .. 2.5"
    )
    assert cfg.diffusion.prior == source.diffusion.prior and cfg.diffusion.prior.align is None
