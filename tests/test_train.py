"""Training engine end to end on a tiny corpus: resume exactness, the non-finite guard, DDP, option checks."""

import subprocess
import sys

import pytest
import torch

from audiodiff.checkpoint import latest_checkpoint, load_checkpoint
from tests.conftest import AMP, ENV, base_args, fail_cli, run_cli, train_cli, weights


def test_resume_is_exact(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    full = train_cli(config, corpus, exp, "full", "train.steps=6", "train.ckpt_every=3", *AMP)
    part = train_cli(config, corpus, exp, "part", "train.steps=3", "train.ckpt_every=3", *AMP)
    train_cli(config, corpus, exp, "part", "train.steps=6", "train.ckpt_every=3", *AMP, flags=["--resume"])
    a, b = weights(full), weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(part)["step"] == 6
    # the `latest` pointer file and a checkpoint file load the same; a damaged file gets one line
    assert load_checkpoint(part / "checkpoints" / "latest")["path"].endswith("ckpt-00000006.pt")
    bad = part / "checkpoints" / "ckpt-00000009.pt"
    bad.write_bytes((part / "checkpoints" / "ckpt-00000006.pt").read_bytes()[:300])
    with pytest.raises(ValueError, match=r"ckpt-00000009.pt is not a readable audiodiff checkpoint: \S"):
        load_checkpoint(bad)


def test_non_finite_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    run = train_cli(config, corpus, exp, "nan", "train.steps=2")
    before = (run / "checkpoints" / "ckpt-00000002.pt").read_bytes()
    bad = ["regularizer.lam=1e38", "regularizer.losses=[{name: amp}]", "train.max_bad_steps=3", "train.steps=8"]
    res = run_cli("train", config, "--resume", "--allow-changes", "--no-progress", *base_args(corpus, exp, "nan", *bad))
    assert res.exit_code != 0 and "3 consecutive steps with a non-finite loss" in res.output
    assert (run / "checkpoints" / "ckpt-00000002.pt").read_bytes() == before
    # steps 3-4 were skipped, so the step-4 checkpoint (on its boundary) holds the step-2 weights
    assert latest_checkpoint(run / "checkpoints").name == "ckpt-00000004.pt"
    good, kept = load_checkpoint(run / "checkpoints" / "ckpt-00000002.pt"), load_checkpoint(run)
    assert all(torch.equal(good["model"][k], kept["model"][k]) for k in good["model"])


def test_ddp_two_processes_equal_one_process(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    args = base_args(corpus, exp, "ddp", "train.steps=3", "train.ckpt_every=3", *AMP)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "audiodiff.cli",
        "train",
        str(config),
        "--no-progress",
        *args,
    ]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    single = train_cli(config, corpus, exp, "single", "train.steps=3", "train.ckpt_every=3", *AMP)
    a, b = weights(exp / "ddp"), weights(single)
    # all-reduce averages two half-batch gradients where one process sums the whole batch: another float order,
    # ~1e-7 relative on a gradient, which Adam's normalisation can lift to ~2e-6 on a weight whose gradient is
    # near zero (seen on one Intel Xeon: 1 element of 4096 off by 1.9e-6). A wrong shard or unsynced gradients
    # move weights by up to lr (2e-4) a step: far outside this tolerance.
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert load_checkpoint(exp / "ddp")["world_size"] == 2
    # resume the 2-process run on one process, global batch unchanged
    train_cli(config, corpus, exp, "ddp", "train.steps=4", "train.ckpt_every=3", *AMP, flags=["--resume"])
    assert load_checkpoint(exp / "ddp")["step"] == 4


def test_cuda_graphs_needs_compile(tmp_path, corpus, config):
    res = run_cli("train", config, "--no-progress", *base_args(corpus, tmp_path / "exp", "g", "train.cuda_graphs=true"))
    assert res.exit_code != 0 and "train.cuda_graphs needs train.compile=true and a single process" in res.output


def test_max_minutes_stops_with_a_checkpoint_and_the_slices_equal_one_run(tmp_path, corpus, config, monkeypatch):
    import itertools

    import audiodiff.train

    minutes = itertools.count()  # each look at the clock is one minute later
    monkeypatch.setattr(audiodiff.train, "clock", lambda: 60.0 * next(minutes))
    exp = tmp_path / "exp"
    part = train_cli(config, corpus, exp, "slices", "train.steps=6", "train.max_minutes=2.5", *AMP)
    assert load_checkpoint(part)["step"] == 3  # 3 minutes after the start; step 3 is off the ckpt_every=2 grid
    assert "train.max_minutes=2.5 reached at step 3: checkpoint saved" in (part / "log.txt").read_text()
    train_cli(config, corpus, exp, "slices", "train.steps=6", *AMP, flags=["--auto-resume"])  # max_minutes may change
    full = train_cli(config, corpus, exp, "full", "train.steps=6", *AMP)
    a, b = weights(full), weights(part)
    assert load_checkpoint(part)["step"] == 6 and all(torch.equal(a[k], b[k]) for k in a)
    out = fail_cli("train", config, "--no-progress", *base_args(corpus, exp, "neg", "train.max_minutes=-1"))
    assert "train.max_minutes=-1.0 must be >= 0" in out
