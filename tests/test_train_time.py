"""A run's training time (train_seconds in its checkpoints): summed over resumed pieces, without the idle
time between them; read by learning curves, ablation grids and export cards."""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
import torch

import audiodiff.train
from audiodiff.checkpoint import load_checkpoint, training_time
from audiodiff.runfiles import run_start
from tests.conftest import train_cli

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("learning_curve", ROOT / "recipes" / "learning_curve.py")
lc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lc)
DAY = 86400.0


def _ablate():
    spec = importlib.util.spec_from_file_location("ablate", ROOT / "recipes" / "ablate.py")
    ablate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablate)
    return ablate


@pytest.fixture
def ticking(monkeypatch):
    """train's clock, 10 s later at each look; `now[0] += DAY` is a day's pause between two processes."""
    now = [0.0]

    def clock():
        now[0] += 10.0
        return now[0]

    monkeypatch.setattr(audiodiff.train, "clock", clock)
    return now


def _pieces(config, corpus, exp, now, old_first: bool = False) -> Path:
    """2 steps, a day's pause, resumed to 4 (ckpt_every 2). The clock: start, one look per step: 20 s a piece.
    old_first: the step-2 checkpoint loses its train_seconds, as one written before they were recorded."""
    run = train_cli(config, corpus, exp, "run", "train.steps=2", "train.ckpt_every=2")
    first = run / "checkpoints" / "ckpt-00000002.pt"
    if old_first:
        state = torch.load(first, weights_only=True)
        del state["train_seconds"], state["train_pieces"]
        torch.save(state, first)
    os.utime(first, (run_start(run) + 500, run_start(run) + 500))  # 500 s after the start by its mtime
    now[0] += DAY
    train_cli(config, corpus, exp, "run", "train.steps=4", "train.ckpt_every=2", flags=["--auto-resume"])
    second = run / "checkpoints" / "ckpt-00000004.pt"
    os.utime(second, (run_start(run) + DAY + 600, run_start(run) + DAY + 600))  # the day's pause in its mtime
    return run


def test_train_seconds_sum_the_pieces_without_the_pause(tmp_path, corpus, config, ticking):
    run = _pieces(config, corpus, tmp_path / "exp", ticking)
    first, second = (training_time(run / "checkpoints" / f"ckpt-0000000{k}.pt") for k in (2, 4))
    assert first == {"train_seconds": 20.0, "train_pieces": 1}
    assert second == {"train_seconds": 40.0, "train_pieces": 2}  # 20 + 20: the day between not counted
    assert load_checkpoint(run)["train_seconds"] == 40.0  # the full loader reads the same
    assert "checkpoint ckpt-00000004.pt saved at step 4, train_seconds=40\n" in (run / "log.txt").read_text()
    # the learning curve's wall axis: the recorded training time, not the files' mtimes (500 s, a day + 600 s)
    points, note = lc.run_checkpoints(run)
    assert [(step, wall) for step, _, wall in points] == [(2, 20.0), (4, 40.0)]
    assert note.startswith("wall s: training time summed over 2 resumed pieces")
    # an export card says the same
    from audiodiff.release import export

    card = export(run, tmp_path / "card" / "tiny")[3].read_text()
    assert "| wall time | 0.7 min (training time from the first step, summed over 2 resumed pieces" in card


def test_a_checkpoint_without_train_seconds_resumes_from_its_mtime(tmp_path, corpus, config, ticking):
    run = _pieces(config, corpus, tmp_path / "exp", ticking, old_first=True)
    assert (
        "train_seconds of ckpt-00000002.pt unknown, taken as mtime - start = 500 s\n" in (run / "log.txt").read_text()
    )
    second = training_time(run / "checkpoints" / "ckpt-00000004.pt")
    assert second["train_seconds"] == 520.0 and second["train_pieces"] == 2  # 500 + this piece's 20
    assert second["train_seconds_note"].startswith("steps up to 2: mtime - start = 500 s")
    points, note = lc.run_checkpoints(run)
    assert [(step, wall) for step, _, wall in points] == [(2, 500.0), (4, 520.0)]
    assert "steps 2 predate train_seconds: the checkpoint file's mtime minus" in note


def test_an_ablation_cell_resumed_after_an_interrupted_grid_counts_its_earlier_piece(tmp_path, corpus, config, ticking):
    ablate = _ablate()
    run = tmp_path / "exp" / "cell"
    assert ablate.trained_before(run) == 0.0  # a new cell
    train_cli(config, corpus, tmp_path / "exp", "cell", "train.steps=2")
    assert ablate.trained_before(run) == 20.0  # its train_seconds: train_s adds the resumed command's time


def test_the_card_says_which_time_was_estimated_and_that_a_fine_tune_counts_its_own(tmp_path, corpus, config, ticking):
    from audiodiff.release import export

    run = _pieces(config, corpus, tmp_path / "exp", ticking, old_first=True)
    card = export(run, tmp_path / "card" / "resumed")[3].read_text()
    # 520 s = the step-2 checkpoint's 500 s by its mtime (idle time included) + 20 s: the card must not claim none
    assert "summed over 2 resumed pieces, idle time between them not counted" in card
    assert "; steps up to 2: mtime - start = 500 s, idle time between resumes included" in card
    # a fine-tune of it starts its own clock: 20 s for its 2 steps, not the source's 520 s + 20 s
    tuned = train_cli(config, corpus, tmp_path / "exp", "tuned", "train.steps=2", f"train.init_from={run}")
    assert training_time(tuned / "checkpoints" / "ckpt-00000002.pt") == {"train_seconds": 20.0, "train_pieces": 1}
    card = export(tuned, tmp_path / "card" / "tuned")[3].read_text()
    assert f"one piece, on the training machine); the fine-tuning only (train.init_from={run}: its" in card


def test_training_time_reads_a_legacy_format_file_and_names_an_unreadable_one(tmp_path):
    legacy = tmp_path / "ckpt-00000010.pt"  # torch's pre-zip format, which torch.load(mmap=True) refuses
    torch.save({"step": 10, "train_seconds": 3.5, "w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    assert training_time(legacy) == {"train_seconds": 3.5}
    bad = tmp_path / "ckpt-00000020.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"ckpt-00000020.pt is not a readable audiodiff checkpoint"):
        training_time(bad)


def test_an_ablation_cell_with_an_unreadable_checkpoint_fails_alone(tmp_path):
    ablate = _ablate()
    run = tmp_path / "cell"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt-00000002.pt").write_bytes(b"cut off")
    # main lists a RuntimeError as the cell's failure and runs the other cells; a ValueError stopped the grid
    with pytest.raises(RuntimeError, match=r"cell: .*ckpt-00000002.pt is not a readable audiodiff checkpoint"):
        ablate.trained_before(run)


@pytest.mark.parametrize(
    ("config_age", "taken", "seconds"),
    [
        # config.yaml 300 s older than the checkpoint: the last start (every start rewrites config.yaml)
        (300, "mtime - config.yaml's mtime (no TensorBoard events: the last start, earlier pieces not counted)", 300),
        # config.yaml newer than the checkpoint (a later start that failed before its first one): not < 0
        (-100, "0 (no TensorBoard events or config.yaml to start from, or a config.yaml newer than it)", 0),
    ],
)
def test_an_old_checkpoint_of_a_run_without_tensorboard_events(
    tmp_path, corpus, config, ticking, config_age, taken, seconds
):
    run = train_cli(config, corpus, tmp_path / "exp", "run", "train.steps=2", "train.ckpt_every=2")
    first = run / "checkpoints" / "ckpt-00000002.pt"
    state = torch.load(first, weights_only=True)
    del state["train_seconds"], state["train_pieces"]
    torch.save(state, first)
    shutil.rmtree(run / "tensorboard")  # run_start falls back to config.yaml's mtime
    mtime = first.stat().st_mtime
    os.utime(run / "config.yaml", (mtime - config_age, mtime - config_age))
    assert _ablate().trained_before(run) == seconds  # an ablation cell resumed from it: the same reading
    train_cli(config, corpus, tmp_path / "exp", "run", "train.steps=4", "train.ckpt_every=2", flags=["--auto-resume"])
    assert (
        f"train_seconds of ckpt-00000002.pt unknown, taken as {taken} = {seconds} s\n" in (run / "log.txt").read_text()
    )
    second = training_time(run / "checkpoints" / "ckpt-00000004.pt")
    assert second["train_seconds"] == seconds + 20.0  # -80 with the config.yaml newer than the checkpoint
    assert second["train_seconds_note"] == f"steps up to 2: {taken} = {seconds} s"
