"""Run directories (audiodiff/runfiles.py): a failed start leaves nothing that blocks the next, a run
with a checkpoint is never replaced without --force, --auto-resume continues or starts, changed
settings on resume need --allow-changes and are recorded; one writer per run; read-only output
folders are one-line errors."""

import errno
import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from audiodiff.checkpoint import load_checkpoint
from audiodiff.runfiles import LOCK_NAME, clear_failed_start, prepare_run_dir
from tests.conftest import AMP, ENV, base_args, fail_cli, on_a_full_disk, run_cli, train_cli


def test_a_missing_data_dir_creates_nothing(tmp_path, config):
    exp = tmp_path / "exp"
    out = fail_cli("train", config, "--no-progress", *base_args(tmp_path / "nodata", exp, "r"))
    assert "data source not found" in out and "nodata" in out
    assert not exp.exists()


def test_a_start_stopped_before_its_first_checkpoint_does_not_block(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    run = exp / "r"
    (run / "tensorboard").mkdir(parents=True)  # what a Ctrl-C before the first checkpoint leaves
    (run / "checkpoints").mkdir()
    (run / "config.yaml").write_text("name: r\n")
    (run / "log.txt").write_text("step 1 loss=1\n")
    (run / "notes.md").write_text("mine")
    train_cli(config, corpus, exp, "r", "train.steps=2")
    assert load_checkpoint(run)["step"] == 2 and (run / "notes.md").read_text() == "mine"
    log = (run / "log.txt").read_text()
    assert log.startswith("step 1 loss=1\nno checkpoint: removed config.yaml, tensorboard, checkpoints")


def test_a_run_with_a_checkpoint_is_refused_or_auto_resumed(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    run = train_cli(config, corpus, exp, "r", "train.steps=2")
    out = fail_cli("train", config, "--no-progress", *base_args(corpus, exp, "r", "train.steps=2"))
    assert "holds a run (checkpoint ckpt-00000002.pt); pass --resume" in out
    train_cli(config, corpus, exp, "r", "train.steps=4", flags=["--auto-resume"])
    assert load_checkpoint(run)["step"] == 4 and (run / "checkpoints" / "ckpt-00000002.pt").is_file()
    assert "step 2: resumed from ckpt-00000002.pt; changed train.steps: 2 -> 4" in (run / "log.txt").read_text()
    fresh = train_cli(config, corpus, exp, "new", "train.steps=2", flags=["--auto-resume"])  # nothing yet: starts
    assert load_checkpoint(fresh)["step"] == 2
    out = fail_cli("train", config, "--resume", "--force", *base_args(corpus, exp, "r"))
    assert "exclude each other" in out


def test_changed_settings_on_resume_need_allow_changes_and_are_recorded(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    run = train_cli(config, corpus, exp, "r", "train.steps=2", *AMP)
    args = base_args(corpus, exp, "r", "train.steps=4", *AMP, "regularizer.lam=0")
    out = fail_cli("train", config, "--resume", "--no-progress", *args)
    assert "the config changes regularizer.lam: 0.001 -> 0.0 of" in out and "--allow-changes" in out
    assert load_checkpoint(run)["step"] == 2 and "lam: 0.001" in (run / "config.yaml").read_text()
    res = run_cli("train", config, "--resume", "--allow-changes", "--no-progress", *args)
    assert res.exit_code == 0, res.output
    log = (run / "log.txt").read_text()
    assert "step 2: resumed from ckpt-00000002.pt; changed regularizer.lam: 0.001 -> 0.0; train.steps: 2 -> 4" in log
    old = yaml.safe_load((run / "config_history" / "config.before-step-00000002.yaml").read_text())
    assert old["regularizer"]["lam"] == 0.001 and old["train"]["steps"] == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["regularizer"]["lam"] == 0
    assert load_checkpoint(run)["step"] == 4


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


def _failed_start(run, *extra):
    """What a start stopped before its first checkpoint leaves in `run`, plus `extra` files of the user's."""
    for name in ("tensorboard/events.out.tfevents.1.host.7.0", "samples/step_00000010/0.wav", "checkpoints/latest"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("train's")
    (run / "checkpoints" / ".ckpt-00000020.pt.tmp-7").write_text("train's")
    (run / "config.yaml").write_text("name: r\n")
    (run / "log.txt").write_text("step 1 loss=1\n")
    for name in extra:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("mine")


def test_a_failed_start_removes_only_what_train_writes(tmp_path):
    run = tmp_path / "r"
    _failed_start(run, "notes.md")
    assert clear_failed_start(run) == ["config.yaml", "tensorboard", "samples", "checkpoints"]
    assert sorted(p.name for p in run.iterdir()) == ["log.txt", "notes.md"]


@pytest.mark.parametrize("mine", ["checkpoints/weights.pt", "samples/mine.wav", "tensorboard/notes.txt"])
def test_a_failed_start_beside_user_files_is_refused_unless_force(tmp_path, mine):
    run = tmp_path / "r"
    _failed_start(run, mine)
    with pytest.raises(
        FileExistsError, match=f"has no checkpoint but holds {mine}, which train does not write.*--force"
    ):
        prepare_run_dir(run, resume=False, force=False, rank=0)
    assert (run / mine).read_text() == "mine" and (run / "config.yaml").is_file()  # nothing removed
    lock, _ = prepare_run_dir(run, resume=False, force=True, rank=0)  # the refusal released the lock
    lock.release()
    assert not (run / mine).exists() and sorted(p.name for p in run.iterdir()) == ["checkpoints", "log.txt", LOCK_NAME]


def test_init_from_weights_in_the_run_dir_are_not_deleted_by_a_start(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    weights = exp / "ft" / "checkpoints" / "weights.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"lmnt weights")
    (exp / "ft" / "config.yaml").write_text("name: ft\n")  # an earlier start that failed
    out = fail_cli("train", config, "--no-progress", *base_args(corpus, exp, "ft", f"train.init_from={weights}"))
    assert "holds checkpoints/weights.pt, which train does not write" in out
    assert weights.read_bytes() == b"lmnt weights"


# ---- generated sets: when one is finished, and its listing survives a failed write
def test_set_complete_only_for_a_whole_listing_that_says_complete(tmp_path):
    from audiodiff.set_listing import set_complete

    listing = tmp_path / "settings.json"
    assert not set_complete(tmp_path)  # no settings.json
    listing.write_text(json.dumps({"complete": False, "files": ["0.wav"], "pending": ["1"]}))
    assert not set_complete(tmp_path)  # what generate writes first, and a Ctrl-C leaves
    listing.write_text('{"complete": true, "files": ["0.w')
    assert not set_complete(tmp_path)  # truncated
    listing.write_text(json.dumps({"complete": True}))
    assert not set_complete(tmp_path)  # no file list
    listing.write_text(json.dumps({"complete": True, "files": ["0.wav"]}))
    assert set_complete(tmp_path)


def test_a_full_disk_leaves_the_previous_set_listing_whole(tmp_path):
    old = {"complete": True, "files": ["0.wav"], "seeds": [0]}
    (tmp_path / "settings.json").write_text(json.dumps(old))
    (tmp_path / "0.wav").write_bytes(b"")
    stems = [f"clip_{k:05d}" for k in range(400)]  # a marker of ~6 kB, over the 4 kB limit
    code = (
        "from pathlib import Path\nfrom audiodiff.set_listing import claim_output\n"
        f"claim_output(Path({str(tmp_path)!r}), {stems!r})"
    )
    out = on_a_full_disk(code)
    assert json.loads((tmp_path / "settings.json").read_text()) == old
    assert "OSError" in out and "settings.json" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.wav", "settings.json"]  # no temp file left
