"""bench/lambda_ratios.py on an image config: the training images in model space, the losses that apply
to (C, H, W) pictures, and finite ratios (it used to refuse every non-waveform task)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from audiodiff.builders import build_network
from audiodiff.config import load_config
from audiodiff.data.corpora import prepare
from bench.lambda_ratios import applicable_cases, batches, measure

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("lr")
    prepare("checkerboard", str(root / "cb"), {"n": "20", "size": "8", "sides": "2,4"})
    overrides = ["name=lr", f"data.train={root / 'cb' / 'data' / 'train'}", "data.image_shape=[1,8,8]",
                 "model.unet.channels=8", "model.unet.groups=8", "model.unet.attn_levels=[]",
                 "train.batch_size=5"]  # fmt: skip
    return load_config(ROOT / "egs" / "mnist" / "conf" / "edm_cpu.yaml", overrides), root / "cb" / "data" / "train"


def test_image_batches_are_training_images_in_model_space(image_cfg):
    cfg, train = image_cfg
    data = torch.from_numpy(np.load(train / "images.npy")).float() / 127.5 - 1
    got = list(batches(cfg, 2, seed=3))
    assert len(got) == 2
    for x0, cond in got:
        assert x0.shape == (5, 1, 8, 8) and cond is None  # unconditional model
        for image in x0:  # each one is a training image, mapped to [-1, 1]
            assert torch.isclose(image[None], data, atol=1e-6).flatten(1).all(1).any()
    again = [x0 for x0, _ in batches(cfg, 2, seed=3)]
    assert all(torch.equal(a, b[0]) for a, b in zip(again, got))  # the seed fixes the draw


def test_image_losses_apply_audio_ones_are_skipped_with_the_reason(image_cfg):
    cfg, _ = image_cfg
    cases, skipped = applicable_cases(cfg)
    assert {label for label, _, _ in cases} == {"amp", "amp_phase", "amp_phase_global", "haar", "bior13"}
    assert set(skipped) == {"stft", "mrstft", "mel"} and "audio input" in skipped["stft"]
    torch.manual_seed(0)
    sums = measure(cfg, build_network(cfg).eval(), 2, 0, cases[:1])
    assert sums["denoise"] > 0 and all(np.isfinite(v) and v > 0 for v in sums.values())


def test_a_mel_features_config_is_measured_on_its_mel_pictures(tmp_path):
    """egs/digits/conf/mel_small.yaml: batches are the dumped log-mels normalized by data.mel_range, (B, 1, 32, 32)."""
    from tests.conftest import run_cli, write_corpus

    corpus = write_corpus(tmp_path, n=6, seconds=1.0, sample_rate=8000)
    assert run_cli("dump-features", corpus, "--preset", "speech8k", "--sample-rate", "8000").exit_code == 0
    cfg = load_config(ROOT / "egs/digits/conf/mel_small.yaml", ["name=x", f"data.train={corpus}", "train.batch_size=3"])
    first, second = list(batches(cfg, 2, seed=0))
    assert first[0].shape == (3, 1, 32, 32) and first[1] is None
    assert first[0].abs().max() < 1.01  # normalized by mel_range (the log floor sits just below -1)
    assert torch.equal(next(batches(cfg, 2, seed=0))[0], first[0])  # the same seed, the same batch
    cases, skipped = applicable_cases(cfg)
    assert {"amp", "amp_phase", "haar", "bior13"} <= {label for label, _, _ in cases}
    assert set(skipped) == {"stft", "mrstft", "mel"}


def test_weighted_ratios_carry_the_edm_loss_weight(image_cfg):
    """--weighting weighted: each spectral value is times w(sigma) = 1 / sigma_data^2 + 1 / sigma^2 > 1 / sigma_data^2
    (what regularizer.weighting=weighted trains); the denoising loss is the same, so every ratio grows by more."""
    cfg, _ = image_cfg
    cases, _ = applicable_cases(cfg)
    net = build_network(cfg).eval()
    plain = measure(cfg, net, 2, 0, cases[:2])
    weighted = measure(cfg, net, 2, 0, cases[:2], weighting="weighted")
    assert weighted["denoise"] == pytest.approx(plain["denoise"])
    floor = 1 / cfg.diffusion.sigma_data**2
    for key in plain.keys() - {"denoise"}:
        assert weighted[key] > floor * plain[key] > 0, key
