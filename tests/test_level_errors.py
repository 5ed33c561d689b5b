"""recipes/level_errors.py: per-level denoising errors of a DDPM or EDM vocoder on fixed held-out crops."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from audiodiff.builders import load_for_generation
from tests.conftest import train_cli, write_corpus

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("level_errors", ROOT / "recipes" / "level_errors.py")
le = importlib.util.module_from_spec(spec)
spec.loader.exec_module(le)

VOCODER = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "task=vocoder"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny DDPM vocoder (checkpoints at steps 2 and 4), the same with PriorGrad's prior (step 2) and with EDM
    (step 2), 3 clips."""
    root = tmp_path_factory.mktemp("levels")
    config = root / "conf.yaml"
    config.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    corpus = write_corpus(root, n=3)
    plain = train_cli(config, corpus, root / "exp", "plain", "train.steps=4", *VOCODER)
    prior = train_cli(config, corpus, root / "exp", "pg", "train.steps=2", *VOCODER, "diffusion.prior.kind=mel_energy")
    edm_conf = root / "edm.yaml"
    edm_conf.write_text("diffusion: {kind: edm, sigma_data: 0.15}\nsample: {sampler: heun, steps: 4}\n")
    edm = train_cli(edm_conf, corpus, root / "exp", "edm", "train.steps=2", *VOCODER)
    return plain, prior, corpus, edm


@pytest.fixture(scope="module")
def spec_run(runs, tmp_path_factory):
    """The tiny DDPM vocoder with SpecGrad's prior (diffusion.prior.kind=spec_envelope), 2 steps on the same clips."""
    root = tmp_path_factory.mktemp("levels_spec")
    config = root / "conf.yaml"
    config.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    return train_cli(
        config, runs[2], root / "exp", "sg", "train.steps=2", *VOCODER, "diffusion.prior.kind=spec_envelope"
    )


def args(*extra):
    return le.parse_args([*map(str, extra)])


def test_two_calls_give_the_same_numbers_on_the_same_crops(tmp_path, runs):
    plain, _, corpus, _ = runs
    common = ["--data", corpus, "--crops", "3", "--crop-length", "1024", "--levels", "0,25,49"]
    first = le.main([str(plain), *map(str, common), "--out", str(tmp_path / "a")])
    second = le.main([str(plain), *map(str, common), "--out", str(tmp_path / "b"), "--batch-size", "2"])
    rows = [[c["rows"] for c in r["checkpoints"]] for r in (first, second)]
    assert rows[0] == rows[1]  # bit-identical, whatever the batch split
    assert [c["label"] for c in first["checkpoints"]] == ["plain@2", "plain@4"]
    assert [r["t"] for r in rows[0][0]] == [0, 25, 49]
    assert rows[0][0] != rows[0][1]  # the columns differ by their weights
    saved = json.loads((tmp_path / "a" / "levels.json").read_text())
    assert saved["checkpoints"][1]["rows"] == rows[0][1] and saved["split"] == first["split"]
    table = (tmp_path / "a" / "levels.md").read_text()
    assert "| t | sigma | plain@2 | plain@4 |" in table and (tmp_path / "a" / "levels.png").stat().st_size > 0
    # more noise, lower input SNR; and the input SNR does not depend on the weights
    snr_in = [r["all"]["input_snr_db"] for r in rows[0][0]]
    assert snr_in == sorted(snr_in, reverse=True) and snr_in == [r["all"]["input_snr_db"] for r in rows[0][1]]


def test_oracles_perfect_estimate_and_no_denoising():
    g = torch.Generator().manual_seed(0)
    x0, z = torch.randn(2, 1, 256, generator=g), torch.randn(2, 1, 256, generator=g)
    sigma = torch.full((2,), 0.3)
    x = x0 + 0.3 * z
    mask = torch.ones_like(x0, dtype=torch.bool)
    perfect = le.errors(x0, x0, x, sigma, None, mask)
    assert perfect["snr_db"] == float("inf") and perfect["removed"] == 1.0
    assert perfect["eps_l1"] == perfect["eps_l2"] == 0.0
    nothing = le.errors(x0, x, x, sigma, None, mask)  # x0_hat := x_t / sqrt(abar), the noisy input
    assert nothing["removed"] == pytest.approx(0.0, abs=1e-12)
    assert nothing["snr_db"] == pytest.approx(nothing["input_snr_db"])
    assert nothing["eps_l1"] == pytest.approx(float(z.abs().mean()))  # the eps error is the noise itself
    half = le.errors(x0, x0 + 0.15 * z, x, sigma, None, mask)
    assert half["removed"] == pytest.approx(0.5) and half["snr_db"] == pytest.approx(nothing["snr_db"] + 20 * 0.30103)
    # a subset counts only its samples: an error outside the mask leaves it perfect
    inside = mask.clone()
    inside[..., 128:] = False
    spoiled = x0.clone()
    spoiled[..., 200] += 1
    assert le.errors(x0, spoiled, x, sigma, None, inside)["removed"] == 1.0


def test_eps_error_is_the_training_loss_with_and_without_the_prior(runs, spec_run):
    """At every level the L1 eps error over all samples equals DDPM.training_terms' loss (loss_type l1) on the
    same crops and noise: with PriorGrad's prior the noise is std-scaled and the error divided by the std, with
    SpecGrad's the noise is filtered by the mel's envelope and the error whitened by its inverse."""
    plain, prior, corpus, _ = runs
    for run in (plain, prior, spec_run):
        cfg, net, formulation, _ = load_for_generation(run)
        crops = le.crop_set(cfg, corpus, 3, 1024, 0)
        masks, _ = le.frame_masks(crops["energy"], crops["hop"])
        for row in le.level_rows(net, formulation, crops, masks, [0, 30], 16):
            t = torch.full((3,), row["t"])
            with torch.no_grad():
                loss = formulation.training_terms(net, crops["x0"], crops["cond"], t=t, noise=crops["z"])["denoise"]
            # rel 1e-3: training noises in float32, where 1 - abar_0 = beta_0 = 1e-4 is off by ~6e-4 relative
            assert row["all"]["eps_l1"] == pytest.approx(float(loss.mean()), rel=1e-3)
    # the same crops and standard noise for both runs; the prior's std scales only the second run's noise
    a, b = (le.crop_set(load_for_generation(r)[0], corpus, 3, 1024, 0) for r in (plain, prior))
    assert torch.equal(a["x0"], b["x0"]) and torch.equal(a["z"], b["z"])


def test_the_loud_and_silent_frames_are_the_top_half_and_the_bottom_quartile():
    energy = torch.arange(16.0).reshape(2, 8)  # 16 frames, energies 0..15
    masks, split = le.frame_masks(energy, hop=4)
    assert masks["all"].shape == (2, 1, 32) and masks["all"].all()
    loud = masks["loud"][..., ::4][:, 0]  # one sample per frame (centred frames: sample 4k is frame k's)
    silent = masks["silent"][..., ::4][:, 0]
    assert energy[loud].tolist() == list(range(8, 16)) and energy[silent].tolist() == [0, 1, 2, 3]
    assert split["loud_fraction"] == pytest.approx(0.5) and split["silent_fraction"] == pytest.approx(0.25 - 1 / 32)


def test_errors_name_the_missing_run_checkpoint_step_or_data(tmp_path, runs, capsys):
    plain, _, corpus, _ = runs
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"level_errors: no checkpoints in .*empty/checkpoints"):
        le.main([str(tmp_path / "empty"), "--data", str(corpus)])
    with pytest.raises(SystemExit, match=r"no checkpoint of step 3 \(steps: 2, 4\)"):
        le.main([str(plain), "--data", str(corpus), "--steps", "3"])
    with pytest.raises(SystemExit, match=r"--levels \[50\]: .* has levels 0-49"):
        le.main([str(plain), "--data", str(corpus), "--steps", "last", "--levels", "50", "--crops", "1"])
    for argv, said in [
        ([tmp_path / "none", "--data", corpus], "run directory not found"),
        ([plain, "--data", tmp_path / "nodata"], "--data: not found"),
        ([plain, "--data", corpus, "--steps", "first"], "--steps 'first': want numbers"),
    ]:
        with pytest.raises(SystemExit):
            args(*argv)
        assert said in capsys.readouterr().err
    assert args(plain, "--data", corpus, "--steps", "2,last").step_list == [2, "last"]
    assert (
        le.chosen_checkpoints(plain, [4, "last", 2])[0][0] == 4 and len(le.chosen_checkpoints(plain, [4, "last"])) == 1
    )


def test_an_edm_run_is_measured_at_the_ddpm_runs_sigmas_on_the_same_noisy_inputs(tmp_path, runs):
    """EDM has no steps: by default its levels are DiffWave's 50 DDPM sigmas, so row t of an EDM column and of a
    DDPM column see the same crops with the same noise at the same sigma (was: refused, 'the levels are DDPM
    steps'); the eps error is EDM's training loss divided by its weight lambda(sigma) sigma^2."""
    from audiodiff.diffusion import DDPM, EDM

    plain, _, corpus, edm = runs
    common = ["--data", corpus, "--crops", "3", "--crop-length", "1024", "--steps", "last"]
    both = le.main([*map(str, [plain, edm, *common, "--levels", "0,25,49"]), "--out", str(tmp_path / "a")])
    ddpm_rows, edm_rows = (c["rows"] for c in both["checkpoints"])
    assert [c["diffusion"] for c in both["checkpoints"]] == ["ddpm", "edm"]
    assert [c["sigmas"] for c in both["checkpoints"]] == [None, "diffwave"]
    sigmas = DDPM.from_preset("diffwave").sigmas
    assert [r["sigma"] for r in edm_rows] == [r["sigma"] for r in ddpm_rows] == [float(sigmas[t]) for t in (0, 25, 49)]
    for a, b in zip(ddpm_rows, edm_rows):
        assert a["all"]["input_snr_db"] == pytest.approx(b["all"]["input_snr_db"], abs=1e-3)
        assert a["all"]["snr_db"] != b["all"]["snr_db"]  # the same inputs, other weights
    cfg, net, formulation, _ = load_for_generation(edm)
    assert isinstance(formulation, EDM)
    crops = le.crop_set(cfg, corpus, 3, 1024, 0)
    masks, _ = le.frame_masks(crops["energy"], crops["hop"])
    chosen = le.level_sigmas(formulation, "0.3,0.002")  # explicit values, sorted: level 0 the least noise
    assert chosen.tolist() == [0.002, 0.3]
    for row in le.level_rows(net, formulation, crops, masks, [0, 1], 16, chosen):
        sigma = torch.full((3,), row["sigma"])
        with torch.no_grad():
            terms = formulation.training_terms(net, crops["x0"], crops["cond"], sigma=sigma, noise=crops["z"])
        weight = float(formulation.loss_weight(sigma)[0]) * row["sigma"] ** 2
        assert row["all"]["eps_l2"] * weight == pytest.approx(float(terms["denoise"].mean()), rel=1e-4)


def test_sigmas_are_for_edm_runs_and_non_vocoder_runs_are_refused_in_one_line(tmp_path, runs, capsys):
    from types import SimpleNamespace

    from audiodiff.diffusion import DDPM, EDM

    plain, _, corpus, edm = runs
    with pytest.raises(ValueError, match=r"^--sigmas diffwave: a DDPM run's levels are its own steps"):
        le.level_sigmas(DDPM.from_preset("diffwave"), "diffwave")
    for bad in ("0.1,-1", "0.1,x", "linear", ""):
        with pytest.raises(ValueError, match=r"want a DDPM schedule preset \['diffwave', .*\] or positive numbers"):
            le.level_sigmas(EDM(), bad or ",")
    assert len(le.level_sigmas(EDM(), None)) == 50 and len(le.level_sigmas(EDM(), "ddpm")) == 1000
    with pytest.raises(SystemExit, match=r"^level_errors: --sigmas 0.1: a DDPM run's levels are its own steps"):
        le.main([str(plain), "--data", str(corpus), "--crops", "1", "--sigmas", "0.1"])
    with pytest.raises(SystemExit, match=r"--levels \[2\]: .*edm/checkpoints/ckpt-00000002.pt has levels 0-1$"):
        le.main([str(edm), "--data", str(corpus), "--crops", "1", "--sigmas", "0.1,1", "--levels", "2"])
    waveform = SimpleNamespace(task="waveform", diffusion=SimpleNamespace(kind="ddpm"))
    with pytest.raises(ValueError, match=r"^ck.pt: task=waveform; the loud/silent split needs"):
        le.check_model(waveform, Path("ck.pt"), [0], 50)
    le.check_model(SimpleNamespace(task="vocoder", diffusion=SimpleNamespace(kind="edm")), Path("ck.pt"), [49], 50)


def test_runs_whose_levels_are_at_other_sigmas_are_refused_not_mislabelled(tmp_path, runs):
    """The tables pair rows by position under the first column's sigma: a DDPM run on the 1000-step schedule beside
    DiffWave's 50-step one would have its t = 25 (sigma 0.0955) filed under sigma 0.632 (was: written silently; with
    more levels than the first column, an IndexError)."""
    plain, _, corpus, _ = runs
    config = tmp_path / "conf.yaml"
    config.write_text("diffusion:\n  schedule: ddpm\n")
    other = train_cli(config, corpus, tmp_path / "exp", "ddpm1000", "train.steps=1", *VOCODER)
    common = ["--data", corpus, "--crops", "1", "--crop-length", "1024", "--levels", "0,25", "--out", tmp_path / "o"]
    said = r"ddpm1000/checkpoints/ckpt-00000001.pt: its levels are at sigma \[0.01, 0.0955\], the first column's at "
    with pytest.raises(SystemExit, match=said + r"\[0.01, 0.632\]; compare runs at the same sigmas"):
        le.main([*map(str, [plain, other, "--steps", "last", *common])])
    assert not (tmp_path / "o" / "levels.md").exists()
    le.main([*map(str, [plain, "--steps", "2,4", *common])])  # columns of one run share their levels


def test_a_run_that_draws_other_crops_is_refused(tmp_path, runs):
    """Columns differ only by their weights: a run at another sample rate (8 kHz here) crops and resamples other
    samples, so it is refused (was: measured on its own crops, the loud/silent split and 'split' the first run's)."""
    plain, _, corpus, _ = runs
    voc8k = ["model.diffwave.n_mels=32", "model.diffwave.hop=256", "task=vocoder", "data.sample_rate=8000",
             "data.mel_preset=speech8k"]  # fmt: skip
    (tmp_path / "c.yaml").write_text("diffusion:\n  schedule: diffwave\n")
    other = train_cli(tmp_path / "c.yaml", corpus, tmp_path / "exp", "sr8k", "train.steps=1", *voc8k)
    common = ["--data", corpus, "--crops", "2", "--crop-length", "1024", "--levels", "0", "--steps", "last"]
    with pytest.raises(SystemExit, match=r"sr8k: its crops of .* are not .*plain's \(another data.sample_rate\?\)"):
        le.main([*map(str, [plain, other, *common]), "--out", str(tmp_path / "o")])
