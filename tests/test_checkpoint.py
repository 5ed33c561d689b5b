"""Checkpoints are written atomically: a kill or a full disk mid-write keeps the previous one, and
training resumes from it."""

import errno
import os
import signal
import subprocess
import sys
import time

import torch

from audiodiff.checkpoint import latest_checkpoint, load_checkpoint, stored_prior
from audiodiff.config import load_config, to_yaml
from tests.conftest import ENV, base_args, fail_cli, train_cli, weights
from tests.models.lmnt_files import lmnt_style_state, save_lmnt_checkpoint


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


def test_stored_prior_reads_a_priorgrad_checkpoints_prior_and_none_otherwise(tmp_path):
    """stored_prior: the diffusion.prior block of one of our checkpoints (a run directory resolves to its
    latest), None for a run without a prior and for an lmnt-com/diffwave file (their pickled params too)."""
    voc = ["name=x", "data.train=/d", "task=vocoder", "model.diffwave.n_mels=80", "model.diffwave.hop=128"]
    prior = ["diffusion.prior.kind=mel_energy", "diffusion.prior.std_min=0.2", "diffusion.prior.energy_min=0.001",
             "diffusion.prior.energy_max=5.0", "diffusion.prior.align=hold"]  # fmt: skip
    for name, extra in (("grad", prior), ("plain", [])):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        state = {"config": to_yaml(load_config(None, [*voc, *extra])), "model": {}, "step": 2}
        torch.save(state, tmp_path / name / "checkpoints" / "ckpt-00000002.pt")
    held = stored_prior(tmp_path / "grad" / "checkpoints" / "ckpt-00000002.pt")
    assert (held.kind, held.std_min, held.energy_min, held.energy_max, held.align) == (
        "mel_energy", 0.2, 0.001, 5.0, "hold"
    )  # fmt: skip
    assert stored_prior(tmp_path / "grad") == held
    assert stored_prior(tmp_path / "plain") is None
    lmnt = save_lmnt_checkpoint(tmp_path / "lmnt.pt", lmnt_style_state(layers=2, channels=8), {"n_mels": 80})
    assert stored_prior(lmnt) is None
