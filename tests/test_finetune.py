"""train.init_from: fine-tuning from an lmnt-com/diffwave checkpoint or one of ours, end to end on tiny data."""

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from audiodiff.checkpoint import latest_checkpoint, load_checkpoint
from audiodiff.models.lmnt import lmnt_to_ours, safe_torch_load
from tests.conftest import base_args, run_cli, train_cli
from tests.models.lmnt_files import ShellCommand, lmnt_style_state, save_lmnt_checkpoint

# lmnt's mel front-end and upsampler (hop 256 = 16 x 16), at toy sizes; lr 0 keeps the initial weights.
VOCODER = [
    "model.diffwave.n_mels=80",
    "model.diffwave.hop=256",
    "model.diffwave.embed_dim=512",
    "model.diffwave.embed_interp=lerp",
    "data.condition=mel",
    "data.mel_preset=diffwave",
    "data.sample_rate=22050",
    "train.steps=2",
    "train.lr=0",
]
PARAMS = {"residual_layers": 2, "residual_channels": 8, "dilation_cycle_length": 2, "n_mels": 80, "hop_samples": 256}


@pytest.fixture
def lmnt_file(tmp_path):
    path = tmp_path / "diffwave-ljspeech-22kHz-1000578.pt"
    return save_lmnt_checkpoint(path, lmnt_style_state(layers=2, channels=8), PARAMS, step=1000578)


def test_fine_tunes_from_an_lmnt_checkpoint(tmp_path, corpus, config, lmnt_file):
    exp = tmp_path / "exp"
    digest = hashlib.sha256(lmnt_file.read_bytes()).hexdigest()
    run = train_cli(config, corpus, exp, "ft", *VOCODER, f"train.init_from={lmnt_file}")
    log = (run / "log.txt").read_text()
    assert f"init_from {lmnt_file} sha256={digest} lmnt-com/diffwave step=1000578\n" in log
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["init_sha256"] == digest
    state = load_checkpoint(run)
    assert state["step"] == 2  # the step restarts at 0: two steps, not 1000580
    theirs = lmnt_to_ours(safe_torch_load(lmnt_file)["model"])
    for name, value in theirs.items():  # lr 0: the weights (and their EMA) are lmnt's
        torch.testing.assert_close(state["model"][name], value, msg=name)
        torch.testing.assert_close(state["ema"][name], value, msg=name)
    assert yaml.safe_load(state["config"])["train"]["init_sha256"] == digest


@pytest.mark.parametrize(
    "extra,message",
    [
        (["model.diffwave.layers=3"], "has a different model; set model.diffwave.layers=2 (config: 3)"),
        (["model.diffwave.embed_interp=exact"], "set model.diffwave.embed_interp='lerp' (config: 'exact')"),
        (["train.init_sha256=00ff"], "but train.init_sha256=00ff"),
        (["data.cond_waveform=griffin_lim"], "takes 0 waveform channels beside mels (lmnt-com/diffwave's take none)"),
        # a UNet cannot be a vocoder: the config check refuses it before init_from is read
        (["model.kind=unet"], "task=vocoder needs model.kind=diffwave with model.diffwave.hop=256"),
    ],
)
def test_init_from_mismatch_is_one_line(tmp_path, corpus, config, lmnt_file, extra, message):
    args = base_args(corpus, tmp_path / "exp", "bad", *VOCODER, f"train.init_from={lmnt_file}", *extra)
    res = run_cli("train", config, "--no-progress", *args)
    assert res.exit_code != 0 and message in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_init_from_missing_or_malicious_file(tmp_path, corpus, config):
    missing = tmp_path / "weights.pt"
    res = run_cli("train", config, *base_args(corpus, tmp_path / "exp", "a", *VOCODER, f"train.init_from={missing}"))
    assert res.exit_code != 0 and f"train.init_from={missing}: no such checkpoint file" in res.output
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pt"
    torch.save({"model": lmnt_style_state(layers=2), "params": ShellCommand(f"touch {marker}")}, evil)
    res = run_cli("train", config, *base_args(corpus, tmp_path / "exp", "b", *VOCODER, f"train.init_from={evil}"))
    assert res.exit_code != 0 and "refusing to load posix.system" in res.output and not marker.exists()


def test_fine_tunes_from_one_of_our_runs(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    first = train_cli(config, corpus, exp, "first", "train.steps=2")
    source = load_checkpoint(first)
    run = train_cli(config, corpus, exp, "second", "train.steps=2", "train.lr=0", f"train.init_from={first}")
    state = load_checkpoint(run)
    for name, value in source["ema"].items():  # ours start from the source's EMA weights
        torch.testing.assert_close(state["model"][name], value, msg=name)
    assert f"init_from {source['path']} sha256=" in (run / "log.txt").read_text()
    res = run_cli(
        "train", config, *base_args(corpus, exp, "c", "model.diffwave.channels=4", f"train.init_from={first}")
    )
    assert res.exit_code != 0 and "set model.diffwave.channels=8 (config: 4)" in res.output


def test_ljspeech_fine_tuning_config_fits_lmnt_released_model():
    from pathlib import Path

    from audiodiff.config import load_config
    from audiodiff.finetune import _check_architecture
    from audiodiff.models.lmnt import config_from_lmnt_state

    conf = Path(__file__).parents[1] / "egs/ljspeech/conf/lmnt_amp.yaml"
    cfg = load_config(conf, ["name=x", "data.train=/d"])
    # their released model: diffwave.params 0.1.7 (30 x 64, cycle 10, 80 mels, hop 256)
    params = {"residual_layers": 30, "residual_channels": 64, "dilation_cycle_length": 10, "n_mels": 80}
    source = config_from_lmnt_state(lmnt_style_state(layers=30, channels=64), params | {"hop_samples": 256})
    _check_architecture(Path(cfg.train.init_from), "diffwave", vars(source), cfg)
    assert cfg.train.init_from.endswith("diffwave-ljspeech-22kHz-1000578.pt") and len(cfg.train.init_sha256) == 64
    assert cfg.regularizer.lam == 1e-4 and cfg.data.mel_preset == "diffwave"


def test_a_fine_tuned_run_resumes_without_its_source_file(tmp_path, corpus, config, lmnt_file):
    """init_from seeds a new run only: a resume reads its own checkpoint, not the (maybe moved) source."""
    exp = tmp_path / "exp"
    run = train_cli(config, corpus, exp, "ft", *VOCODER, f"train.init_from={lmnt_file}")
    lmnt_file.unlink()
    run = train_cli(
        config, corpus, exp, "ft", *VOCODER, f"train.init_from={lmnt_file}", "train.steps=3", flags=["--resume"]
    )
    assert load_checkpoint(run)["step"] == 3
    assert (run / "log.txt").read_text().count("init_from ") == 1


PRIOR_VOCODER = [
    "model.diffwave.n_mels=80",
    "model.diffwave.hop=128",
    "task=vocoder",
    "diffusion.prior.kind=mel_energy",
]


def test_a_fine_tuned_prior_model_keeps_the_prior_its_weights_were_trained_with(tmp_path, corpus, config):
    """PriorGrad's weights learned to remove noise of the source's per-sample std: a fine-tuned run takes the
    source's diffusion.prior (range, std_min, align), also on a resume without the source; the range was
    recomputed from the new data.train. A source without a prior leaves the range to the data, as before."""
    exp = tmp_path / "exp"
    source = ["diffusion.prior.energy_min=0.001", "diffusion.prior.energy_max=5.0", "diffusion.prior.std_min=0.2",
              "diffusion.prior.align=centre"]  # fmt: skip
    first = train_cli(config, corpus, exp, "src", "train.steps=2", *PRIOR_VOCODER, *source)
    run = train_cli(config, corpus, exp, "ft", "train.steps=2", *PRIOR_VOCODER, f"train.init_from={first}")
    want = {"kind": "mel_energy", "std_min": 0.2, "energy": "rms", "max_quantile": 1.0, "align": "centre",
            "lifter_order": 24, "floor": 0.01, "energy_min": 0.001, "energy_max": 5.0}  # fmt: skip
    assert yaml.safe_load(load_checkpoint(run)["config"])["diffusion"]["prior"] == want
    assert yaml.safe_load((run / "config.yaml").read_text())["diffusion"]["prior"] == want
    note = "the prior its weights were trained with: std_min 0.2, energy rms 0.001 .. 5, align centre\n"
    assert note in (run / "log.txt").read_text()
    shutil.rmtree(first)
    args = ["train.steps=3", *PRIOR_VOCODER, f"train.init_from={first}"]
    train_cli(config, corpus, exp, "ft", *args, flags=["--resume"])  # no change to allow: its own checkpoint's
    state = load_checkpoint(run)
    assert state["step"] == 3 and yaml.safe_load(state["config"])["diffusion"]["prior"] == want
    plain = train_cli(config, corpus, exp, "plain", "train.steps=2", *PRIOR_VOCODER[:3])
    run = train_cli(config, corpus, exp, "ft2", "train.steps=2", *PRIOR_VOCODER, f"train.init_from={plain}")
    prior = yaml.safe_load(load_checkpoint(run)["config"])["diffusion"]["prior"]
    assert prior["energy_min"] not in (None, 0.001) and prior["align"] == "centre"
    assert "trained with" not in (run / "log.txt").read_text()


def test_a_resumed_fine_tune_reads_its_checkpoint_at_most_once_for_the_prior(tmp_path, corpus, config, monkeypatch):
    """Resuming a fine-tune with diffusion.prior reads the latest checkpoint at most once for the prior it may
    inherit and the align it may keep, then once for the resume. A run fine-tuned without a prior and resumed
    with one (--allow-changes) read it three times: inherit_prior and keep_prior_align each loaded it."""
    exp = tmp_path / "exp"
    plain = train_cli(config, corpus, exp, "src", "train.steps=1", *PRIOR_VOCODER[:3])
    run = train_cli(config, corpus, exp, "ft", "train.steps=1", *PRIOR_VOCODER[:3], f"train.init_from={plain}")
    latest = latest_checkpoint(run / "checkpoints")
    loads, load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(f) or load(f, *a, **k))
    args = ["train.steps=2", *PRIOR_VOCODER, f"train.init_from={plain}"]
    train_cli(config, corpus, exp, "ft", *args, flags=["--resume", "--allow-changes"])
    assert [Path(f) for f in loads if isinstance(f, str | Path)].count(latest) == 2
    prior = yaml.safe_load(load_checkpoint(run)["config"])["diffusion"]["prior"]
    assert load_checkpoint(run)["step"] == 2 and prior["kind"] == "mel_energy" and prior["energy_min"] is not None


def test_a_resumed_prior_is_read_once_and_only_when_asked(tmp_path, monkeypatch):
    """inherit_prior and keep_prior_align share one ResumedPrior: the checkpoint is loaded on the first use of
    its prior, once for both, and not at all when neither needs it."""
    from audiodiff.checkpoint import ResumedPrior
    from audiodiff.config import load_config, to_yaml
    from audiodiff.finetune import inherit_prior
    from audiodiff.runfiles import keep_prior_align

    voc = ["name=x", "data.train=/d", *PRIOR_VOCODER, "diffusion.prior.std_min=0.2"]
    stored = [*voc, "diffusion.prior.energy_min=0.001", "diffusion.prior.energy_max=5.0", "diffusion.prior.align=hold"]
    ckpt = tmp_path / "ckpt-00000002.pt"
    torch.save({"config": to_yaml(load_config(None, stored)), "model": {}, "step": 2}, ckpt)
    loads, load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(f) or load(f, *a, **k))
    resumed = ResumedPrior(ckpt)
    cfg = load_config(None, [*voc, "diffusion.prior.align=centre"])  # no init_from, align set: nothing to read
    assert inherit_prior(cfg, resumed) is None and keep_prior_align(cfg, resumed) is None and loads == []
    cfg = load_config(None, voc)  # align unset: the checkpoint's; a fine-tune: its whole prior block
    keep_prior_align(cfg, resumed)
    assert cfg.diffusion.prior.align == "hold" and cfg.diffusion.prior.energy_min is None
    cfg = load_config(None, [*voc, "train.init_from=/gone.pt"])  # a resume needs no init_from file
    note = inherit_prior(cfg, resumed)
    assert note.startswith(f"diffusion.prior from {ckpt}, ") and "energy rms 0.001 .. 5, align hold" in note
    assert cfg.diffusion.prior.energy_min == 0.001 and [Path(f) for f in loads] == [ckpt]
