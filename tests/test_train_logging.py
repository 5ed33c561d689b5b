"""What training reports about the balance of its two loss terms (log.txt, TensorBoard, tqdm bar)."""

import re

import pytest

from audiodiff.config import load_config
from audiodiff.train import train
from tests.conftest import TINY

SCALE_FREE_AMP = ["regularizer.lam=0.5", "regularizer.normalize=scale_free", "regularizer.losses=[{name: amp}]"]


def _config(tmp_path, corpus, *extra):
    return load_config(None, ["name=log", f"exp_dir={tmp_path / 'exp'}", f"data.train={corpus}", *TINY, *extra])


def test_log_reports_the_spectral_to_denoising_ratio(tmp_path, corpus, capsys):
    run = train(_config(tmp_path, corpus, "train.steps=2", *SCALE_FREE_AMP), progress=True)
    lines = [line for line in (run / "log.txt").read_text().splitlines() if line.startswith("step ")]
    assert len(lines) == 2
    for line in lines:
        values = {k: float(v) for k, v in re.findall(r"(\S+)=(\S+)", line)}
        assert values["spectral"] > 0 and values["denoise"] > 0
        assert values["spectral_ratio"] == pytest.approx(values["spectral"] / values["denoise"], rel=1e-4)
        assert values["loss"] == pytest.approx(values["denoise"] + values["spectral"], rel=1e-4)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"loss/spectral_ratio", "loss/denoise", "loss/spectral"} <= set(events.Tags()["scalars"])
    bar = capsys.readouterr().err
    assert "denoise=" in bar and "spectral=" in bar


def test_scale_free_is_recorded_and_contradictions_are_one_line_errors(tmp_path, corpus):
    cfg = _config(tmp_path, corpus, *SCALE_FREE_AMP)
    assert cfg.regularizer.normalize == "scale_free"
    with pytest.raises(ValueError, match=r"regularizer.normalize='unit' is not allowed; choose one of \['paper'"):
        _config(tmp_path, corpus, "regularizer.normalize=unit")
    bad = _config(tmp_path, corpus, *SCALE_FREE_AMP, "regularizer.losses=[{name: amp, kwargs: {norm: backward}}]")
    with pytest.raises(ValueError, match=r"'amp': normalize='scale_free' sets norm='ortho'.*norm='backward'") as info:
        train(bad, progress=False)
    assert "\n" not in str(info.value)
