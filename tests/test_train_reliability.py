"""Training you can trust: one writer per run, checkpoints on skipped steps, exact resume with
dropout, and one-line errors (no tracebacks) for bad runs, full disks and read-only folders."""

import errno
import os
import socket
import subprocess
import sys

import pytest
import torch

from audiodiff.checkpoint import latest_checkpoint, load_checkpoint
from tests.test_train import ENV, base_args, run_cli, train_cli, weights


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "conf.yaml"
    path.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    return path


def fail_cli(*args):
    """Run the CLI expecting a one-line error (an exception would escape CliRunner here)."""
    res = run_cli(*args)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
    return res.output


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
    assert (run / "log.txt").read_text().splitlines()[-1].endswith("skipped=2")


def test_second_writer_is_refused_and_force_does_not_delete_a_live_run(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    run = train_cli(config, corpus, exp, "live", "train.steps=2")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, time; from audiodiff.runfiles import RunLock; RunLock({str(run)!r}); "
            "print('locked', flush=True); time.sleep(120)",
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        for flags in (["--resume"], ["--force"]):
            out = fail_cli("train", config, *flags, "--no-progress", *base_args(corpus, exp, "live", "train.steps=4"))
            assert f"in use by another training process (pid {holder.pid} on host {socket.gethostname()})" in out
        assert (run / "checkpoints" / "ckpt-00000002.pt").is_file() and (run / "log.txt").is_file()
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock file stays behind but does not block
    assert (run / "train.lock").is_file()
    train_cli(config, corpus, exp, "live", "train.steps=4", flags=["--resume"])
    assert load_checkpoint(run)["step"] == 4
    train_cli(config, corpus, exp, "live", "train.steps=2", flags=["--force"])
    assert load_checkpoint(run)["step"] == 2 and not (run / "checkpoints" / "ckpt-00000004.pt").exists()


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


def test_disk_full_while_checkpointing_keeps_the_previous_one(tmp_path, corpus, config, monkeypatch):
    real = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step") == 4:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    exp = tmp_path / "exp"
    out = fail_cli("train", config, "--no-progress", *base_args(corpus, exp, "full", "train.steps=4"))
    ckpts = exp / "full" / "checkpoints"
    assert f"checkpoint {ckpts / 'ckpt-00000004.pt'} not saved (No space left on device)" in out
    assert "the previous checkpoint ckpt-00000002.pt is intact" in out
    assert sorted(p.name for p in ckpts.iterdir()) == ["ckpt-00000002.pt", "latest"]
    assert load_checkpoint(exp / "full")["step"] == 2


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


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder nobody may write in; as root (where chmod does not stop writes) os.mkdir/os.open
    refuse it with EACCES as the kernel would."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    probe = ro / "probe"
    try:
        probe.mkdir()
    except PermissionError:
        yield ro
        ro.chmod(0o755)
        return
    probe.rmdir()
    mkdir, open_ = os.mkdir, os.open

    def inside(path):
        return str(os.path.abspath(path)).startswith(str(ro) + os.sep)

    def refuse(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: refuse(p) if inside(p) else mkdir(p, *a, **k))
    monkeypatch.setattr(
        os,
        "open",
        lambda p, flags, *a, **k: refuse(p) if inside(p) and flags & os.O_CREAT else open_(p, flags, *a, **k),
    )
    yield ro


def test_read_only_output_folders_are_one_line_errors(tmp_path, corpus, config, read_only):
    out = fail_cli("train", config, "--no-progress", *base_args(corpus, read_only, "r", "train.steps=1"))
    assert f"run directory {read_only / 'r'} is not writable: Permission denied" in out
    run = train_cli(config, corpus, tmp_path / "exp", "r", "train.steps=1", "train.ckpt_every=1")
    out = fail_cli("generate", "--ckpt", run, "--seeds", "0", "--out", read_only / "gen", "--device", "cpu")
    assert f"generate: output folder {read_only / 'gen'} is not writable: Permission denied" in out
    ref = corpus.parent.parent / "wav"
    args = ["evaluate", "--ref", ref, "--gen", ref, "--metrics", "fad", "--embedder", "melstats"]
    out = fail_cli(*args, "--out", read_only / "ev", "--cache", tmp_path / "cache")
    assert f"evaluate: output folder {read_only / 'ev'} is not writable" in out
    out = fail_cli(*args, "--out", tmp_path / "ev", "--cache", read_only / "cache")
    assert f"embedding cache (--cache) {read_only / 'cache'}" in out and "is not writable" in out


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
