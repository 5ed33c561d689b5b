"""Training you can trust: one writer per run, checkpoints on skipped steps, exact resume with
dropout, and one-line errors (no tracebacks) for bad runs, full disks and read-only folders."""

import torch

from audiodiff.checkpoint import latest_checkpoint, load_checkpoint
from tests.conftest import base_args, fail_cli, train_cli, weights


def test_skipped_steps_on_checkpoint_boundaries_and_at_the_end_still_save(tmp_path, corpus, config, monkeypatch):
    real, calls = torch.nn.utils.clip_grad_norm_, []

    def clip(params, max_norm):  # steps 2 and 4 (the last) get a non-finite gradient norm
        calls.append(1)
        norm = real(params, max_norm)
        return torch.full_like(norm, float("nan")) if len(calls) in (2, 4) else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    run = train_cli(config, corpus, tmp_path / "exp", "skip", "train.steps=4", "train.keep_ckpts=0")
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("ckpt-*.pt")) == ["ckpt-00000002.pt", "ckpt-00000004.pt"]
    assert latest_checkpoint(ckpts).name == "ckpt-00000004.pt" and load_checkpoint(run)["step"] == 4
    lines = (run / "log.txt").read_text().splitlines()
    assert [ln for ln in lines if ln.startswith("step ")][-1].endswith("skipped=2")  # the last step's loss line


UNET_DROPOUT = [
    "model.kind=unet",
    "model.unet.channels=8",
    "model.unet.channel_mult=[1,2]",
    "model.unet.attn_levels=[]",
    "model.unet.num_res_blocks=1",
    "model.unet.dropout=0.3",
    "model.unet.embedding=fourier",
    "diffusion.kind=edm",
]


def test_resume_with_dropout_is_exact(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    full = train_cli(config, corpus, exp, "full", "train.steps=4", *UNET_DROPOUT)
    part = train_cli(config, corpus, exp, "part", "train.steps=2", *UNET_DROPOUT)
    train_cli(config, corpus, exp, "part", "train.steps=4", *UNET_DROPOUT, flags=["--resume"])
    a, b = weights(full), weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_errors_are_one_line(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    out = fail_cli("train", config, "--resume", "--no-progress", *base_args(corpus, exp, "none"))
    assert "--resume: no run directory" in out and not (exp / "none").exists()
    (exp / "empty").mkdir(parents=True)
    (exp / "empty" / "notes.txt").write_text("x")
    out = fail_cli("train", config, "--resume", "--no-progress", *base_args(corpus, exp, "empty"))
    assert "no checkpoint in" in out and "--force" in out
    run = train_cli(config, corpus, exp, "k", "train.steps=2")
    out = fail_cli("train", config, "--resume", "--no-progress", *base_args(corpus, exp, "k", *UNET_DROPOUT))
    assert "holds a model.kind=diffwave model but the config says model.kind=unet" in out
    out = fail_cli(
        "train", config, "--resume", "--no-progress", *base_args(corpus, exp, "k", "model.diffwave.channels=6")
    )
    assert "ckpt-00000002.pt: weights do not fit the configured DiffWave" in out and "size mismatch" in out
    # a stored config that does not parse, or breaks the schema's value ranges
    state = torch.load(run / "checkpoints" / "ckpt-00000002.pt", weights_only=True)
    zero_steps = state["config"].replace("\n  steps: 2\n", "\n  steps: 0\n")
    assert zero_steps != state["config"]
    for text, reason in (("model: [unclosed", "cannot parse YAML"), (zero_steps, "train.steps=0 must be >= 1")):
        broken = tmp_path / "broken.pt"
        torch.save(state | {"config": text}, broken)
        out = fail_cli("generate", "--ckpt", broken, "--seeds", "0", "--out", tmp_path / "gen", "--device", "cpu")
        assert f"broken.pt: stored config: {reason}" in out


def test_stale_temp_files_are_removed_and_short_crops_refused(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    run = train_cli(config, corpus, exp, "tmp", "train.steps=2")
    stale = [run / "checkpoints" / ".ckpt-00000003.pt.tmp-99999", run / "checkpoints" / ".latest.tmp-99999"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    train_cli(config, corpus, exp, "tmp", "train.steps=3", flags=["--resume"])
    assert not any(p.exists() for p in stale)
    mrstft = ["regularizer.lam=1e-4", "regularizer.losses=[{name: mrstft}]", "data.segment=256"]
    out = fail_cli("train", config, "--no-progress", *base_args(corpus, exp, "short", *mrstft))
    assert "data.segment=256 is too short for the regularizer 'mrstft'" in out


def test_a_crop_shorter_than_the_receptive_field_is_logged_not_refused(tmp_path, corpus, config):
    # 12 layers, cycle 10: receptive field 1 + 2 * (1023 + 1 + 2) = 2053 samples > the 1024-sample crop
    wide = ["model.diffwave.layers=12", "model.diffwave.cycle=10", "train.steps=1"]
    run = train_cli(config, corpus, tmp_path / "exp", "wide", *wide)
    assert (
        "data.segment=1024 is shorter than the network's receptive field (2053 samples)"
        in (run / "log.txt").read_text()
    )
    run = train_cli(config, corpus, tmp_path / "exp", "narrow", "train.steps=1")  # receptive field 7
    assert "receptive field" not in (run / "log.txt").read_text()
