"""Checkpoints are written atomically: a kill or a full disk mid-write keeps the previous one, and
training resumes from it."""

import errno
import os
import signal
import subprocess
import sys
import time

import torch

from audiodiff.checkpoint import latest_checkpoint, load_checkpoint
from tests.conftest import ENV, base_args, fail_cli, train_cli, weights


def test_kill_during_checkpoint_write_keeps_last_good_and_resumes(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    full = train_cli(config, corpus, exp, "full", "train.steps=4")
    cmd = [
        sys.executable,
        "-m",
        "audiodiff.cli",
        "train",
        str(config),
        "--no-progress",
        *base_args(corpus, exp, "crash", "train.steps=4"),
    ]
    proc = subprocess.Popen(
        cmd, env={**ENV, "AUDIODIFF_CKPT_PAUSE": "4:60"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpts = exp / "crash" / "checkpoints"
    deadline = time.time() + 120
    while not list(ckpts.glob(".ckpt-00000004.pt.tmp-*")):
        assert time.time() < deadline and proc.poll() is None, "training never reached the step-4 checkpoint"
        time.sleep(0.2)
    time.sleep(0.5)  # the temp file is complete and fsync'd; the rename has not happened
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest_checkpoint(ckpts).name == "ckpt-00000002.pt"
    assert load_checkpoint(exp / "crash")["step"] == 2
    train_cli(config, corpus, exp, "crash", "train.steps=4", flags=["--resume"])
    a, b = weights(full), weights(exp / "crash")
    assert all(torch.equal(a[k], b[k]) for k in a)


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
