"""Never lose a run: a failed start leaves nothing that blocks the next, a run with a checkpoint is
never replaced without --force, --auto-resume continues or starts, changed settings on resume
need --allow-changes and are recorded."""

import pytest
import yaml

from audiodiff.checkpoint import load_checkpoint
from tests.test_train import AMP, base_args, run_cli, train_cli
from tests.test_train_reliability import fail_cli


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "conf.yaml"
    path.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    return path


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
