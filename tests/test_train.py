"""Training engine end to end on a tiny corpus: CLI, resume exactness, crash safety, DDP."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from audiodiff.checkpoint import latest_checkpoint, load_checkpoint
from audiodiff.cli import main
from tests.conftest import TINY

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
AMP = ["regularizer.lam=1e-3", "regularizer.losses=[{name: amp, kwargs: {reduction: mean}}]"]


def run_cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def base_args(corpus, exp, name, *extra):
    return [f"name={name}", f"exp_dir={exp}", f"data.train={corpus}", *TINY, *extra]


def train_cli(config, corpus, exp, name, *extra, flags=()):
    res = run_cli("train", config, *flags, "--no-progress", *base_args(corpus, exp, name, *extra))
    assert res.exit_code == 0, res.output
    return exp / name


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "conf.yaml"
    path.write_text("diffusion:\n  schedule: diffwave\n  loss_type: l1\nsample:\n  sampler: fast\n")
    return path


def test_cli_train_generate_inspect_end_to_end(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    run = train_cli(config, corpus, exp, "e2e", "train.steps=4", "train.sample_every=4", "train.num_samples=2", *AMP)
    assert (run / "config.yaml").is_file() and (run / "log.txt").read_text().count("step ") == 4
    assert "spec/amp=" in (run / "log.txt").read_text()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "latest").read_text() == "ckpt-00000004.pt"
    assert sorted(p.name for p in (run / "samples" / "step_00000004").iterdir()) == [
        "0.wav",
        "1.wav",
        "spectrograms.png",
    ]
    out = tmp_path / "gen"
    res = run_cli("generate", "--ckpt", run, "--seeds", "0-2,7", "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.wav")) == ["0.wav", "1.wav", "2.wav", "7.wav"]
    settings = json.loads((out / "settings.json").read_text())
    assert settings["step"] == 4 and settings["weights"] == "ema" and settings["sampler"] == "fast"
    assert (out / "spectrograms.png").stat().st_size > 1000
    # same seed, same audio, whatever the batch
    out2 = tmp_path / "gen2"
    assert run_cli("generate", "--ckpt", run, "--seeds", "7", "--out", out2, "--device", "cpu").exit_code == 0
    import soundfile as sf

    assert (sf.read(out / "7.wav")[0] == sf.read(out2 / "7.wav")[0]).all()
    res = run_cli("inspect", run)
    assert res.exit_code == 0 and "step: 4" in res.output and "parameters:" in res.output and "lam: 0.001" in res.output
    # a fully convolutional model generates clips longer than its training crop (1024 samples)
    out3 = tmp_path / "gen3"
    res = run_cli(
        "generate",
        "--ckpt",
        run,
        "--seeds",
        "1",
        "--seconds",
        "0.2",
        "--clip-denoised",
        "--out",
        out3,
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    assert sf.info(str(out3 / "1.wav")).frames == 3200
    assert json.loads((out3 / "settings.json").read_text())["clip_denoised"] is True
    assert settings["clip_denoised"] is False  # the config default
    res = run_cli("generate", "--ckpt", run, "--seeds", "1", "--seconds", "0", "--out", out3, "--device", "cpu")
    assert res.exit_code != 0 and "seconds must be > 0" in res.output


def test_refuses_non_empty_run_dir_and_dry_run(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    train_cli(config, corpus, exp, "r", "train.steps=2")
    res = run_cli("train", config, "--no-progress", *base_args(corpus, exp, "r", "train.steps=2"))
    assert res.exit_code != 0 and "holds a run (checkpoint ckpt-00000002.pt); pass --resume" in res.output
    res = run_cli("train", config, "--dry-run", *base_args(corpus, exp, "r", "train.lr=0.01"))
    assert res.exit_code == 0 and "lr: 0.01" in res.output
    res = run_cli("train", config, "--dry-run", *base_args(corpus, exp, "r", "train.lrr=0.01"))
    assert res.exit_code != 0 and "unknown key 'train.lrr'" in res.output


def weights(run):
    return load_checkpoint(run)["model"]


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


def test_vocoder_training_and_vocoding(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    voc = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "data.condition=mel", "data.mel_preset=speech16k"]
    run = train_cli(config, corpus, exp, "voc", "train.steps=2", *voc)
    out = tmp_path / "voc_out"
    res = run_cli("generate", "--ckpt", run, "--mels-from", corpus, "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert sorted(p.stem for p in out.glob("*.wav")) == [f"utt{i}" for i in range(6)]
    res = run_cli("generate", "--ckpt", run, "--out", out, "--device", "cpu")
    assert res.exit_code != 0 and "pass --mels-from" in res.output


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
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert load_checkpoint(exp / "ddp")["world_size"] == 2
    # resume the 2-process run on one process, global batch unchanged
    train_cli(config, corpus, exp, "ddp", "train.steps=4", "train.ckpt_every=3", *AMP, flags=["--resume"])
    assert load_checkpoint(exp / "ddp")["step"] == 4


def test_mel_spectrogram_diffusion_with_griffin_lim_and_vocoder(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    unet = [
        "model.kind=unet",
        "model.unet.channels=8",
        "model.unet.channel_mult=[1,2]",
        "model.unet.attn_levels=[1]",
        "model.unet.num_res_blocks=1",
        "model.unet.embedding=fourier",
        "diffusion.kind=edm",
        "sample.sampler=heun",
        "sample.steps=3",
        "train.sample_every=2",
        "train.num_samples=2",
    ]
    run = train_cli(
        config,
        corpus,
        exp,
        "mel",
        "train.steps=2",
        *unet,
        "regularizer.lam=1e-4",
        "regularizer.losses=[{name: amp_phase, kwargs: {reduction: mean}}]",
    )
    assert (run / "samples" / "step_00000002" / "0.wav").is_file()
    out = tmp_path / "gl"
    assert run_cli("generate", "--ckpt", run, "--seeds", "0-1", "--out", out, "--device", "cpu").exit_code == 0
    assert json.loads((out / "settings.json").read_text())["mel_to_audio"] == "griffin-lim"
    voc = train_cli(
        config,
        corpus,
        exp,
        "voc",
        "train.steps=1",
        "model.diffwave.n_mels=80",
        "model.diffwave.hop=128",
        "data.condition=mel",
    )
    out = tmp_path / "vocoded"
    res = run_cli("generate", "--ckpt", run, "--seeds", "0-1", "--vocoder", voc, "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    import soundfile as sf

    audio, sr = sf.read(out / "0.wav")
    assert sr == 16000 and len(audio) == (1024 // 128) * 128


def test_image_path_class_conditional_edm_with_weighted_amp(tmp_path, config):
    from audiodiff.data.corpora import prepare

    prepare("checkerboard", str(tmp_path / "cb"), {"n": "40", "size": "16"})
    exp = tmp_path / "exp"
    args = [
        "train",
        config,
        "--no-progress",
        "name=img",
        f"exp_dir={exp}",
        f"data.train={tmp_path}/cb/data/train",
        "data.kind=images",
        "data.image_shape=[1,16,16]",
        "model.kind=unet",
        "model.unet.channels=8",
        "model.unet.channel_mult=[1,2]",
        "model.unet.attn_levels=[1]",
        "model.unet.num_res_blocks=1",
        "model.unet.num_classes=5",
        "model.unet.embedding=fourier",
        "diffusion.kind=edm",
        "sample.sampler=heun",
        "sample.steps=3",
        "train.steps=2",
        "train.batch_size=4",
        "train.ckpt_every=2",
        "train.sample_every=2",
        "regularizer.lam=0.1",
        "regularizer.weighting=weighted",
        "regularizer.losses=[{name: amp, kwargs: {norm: ortho, reduction: mean}}]",
    ]
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    assert (exp / "img" / "samples" / "step_00000002" / "grid.png").is_file()
    out = tmp_path / "png"
    res = run_cli("generate", "--ckpt", exp / "img", "--seeds", "0-6", "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "settings.json").read_text())
    assert settings["labels"] == [0, 1, 2, 3, 4, 0, 1] and len(list(out.glob("[0-9]*.png"))) == 7
    from PIL import Image

    assert Image.open(out / "3.png").size == (16, 16)
    bad = [a for a in args if not str(a).startswith("data.image_shape")] + ["data.image_shape=[1,32,32]"]
    res = run_cli(*[a if not str(a).startswith("name=") else "name=bad" for a in bad])
    assert res.exit_code != 0 and "data.image_shape=[1, 16, 16]" in res.output


def test_mel_model_trains_from_dumped_features(tmp_path, corpus, config):
    res = run_cli("dump-features", corpus, "--preset", "speech16k", "--sample-rate", "16000")
    assert res.exit_code == 0 and "6 feature files" in res.output
    unet = [
        "model.kind=unet",
        "model.unet.channels=8",
        "model.unet.channel_mult=[1,2]",
        "model.unet.attn_levels=[1]",
        "model.unet.num_res_blocks=1",
        "diffusion.kind=edm",
        "data.features=true",
    ]
    run = train_cli(config, corpus, tmp_path / "exp", "feat", "train.steps=2", *unet)
    assert load_checkpoint(run)["step"] == 2


def test_cuda_graphs_needs_compile(tmp_path, corpus, config):
    res = run_cli("train", config, "--no-progress", *base_args(corpus, tmp_path / "exp", "g", "train.cuda_graphs=true"))
    assert res.exit_code != 0 and "train.cuda_graphs needs train.compile=true and a single process" in res.output
