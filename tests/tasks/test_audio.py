"""The audio tasks end to end through the CLI: vocoder (mel-conditioned DiffWave), mel-spectrogram diffusion
with Griffin-Lim or a vocoder, and mel models trained from dumped features."""

import json

import pytest
import yaml

from audiodiff.checkpoint import load_checkpoint
from tests.conftest import base_args, fail_cli, run_cli, train_cli, write_short_clip


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
    short = write_short_clip(tmp_path / "short")  # 2 hops: no STFT frame fits (a traceback from the padding before)
    out = fail_cli("generate", "--ckpt", run, "--mels-from", short.parent, "--out", tmp_path / "s", "--device", "cpu")
    assert f"{short}: 256 samples in whole hops of 128, shorter than one STFT frame (512" in out


def test_edm_vocoder_calls_the_network_on_c_in_x_and_c_noise_at_the_heun_grid(tmp_path, corpus, monkeypatch):
    """egs/asterisk_en/conf/edm.yaml's path: a mel-conditioned DiffWave trained with EDM vocodes with Heun; each
    network call gets c_in x (unit-scale at sigma_max) and c_noise = ln(sigma) / 4 at the grid's levels, with the
    mel condition: 4 steps (the config samples 18; 4 keeps this short) = 7 calls per clip (one clip at a time)."""
    import math

    import torch

    from audiodiff.diffusion.samplers import karras_sigmas
    from audiodiff.models.diffwave_infer import DiffWaveInference

    config = tmp_path / "edm.yaml"
    config.write_text("diffusion: {kind: edm, sigma_data: 0.15, sigma_max: 10.0}\nsample: {sampler: heun, steps: 4}\n")
    voc = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "task=vocoder", "data.mel_preset=speech16k"]
    run = train_cli(config, corpus, tmp_path / "exp", "edm_voc", "train.steps=2", *voc)
    calls, call = [], DiffWaveInference.__call__

    def spy(self, x, t, cond=None):
        calls.append((t.tolist(), float(x[0].std()), cond is not None))
        return call(self, x, t, cond)

    monkeypatch.setattr(DiffWaveInference, "__call__", spy)
    out = tmp_path / "vocoded"
    res = run_cli("generate", "--ckpt", run, "--mels-from", corpus, "--out", out, "--device", "cpu", "--seeds", "0")
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["sampler"], settings["steps"], len(settings["files"])) == ("heun", 4, 6)
    s = karras_sigmas(4, 0.002, 10.0).tolist()  # 10, 1.54, 0.119, 0.002, then 0
    levels = [s[0], s[1], s[1], s[2], s[2], s[3], s[3]]  # Heun: 2 calls a step, 1 for the last (to 0)
    assert len(calls) == 6 * 7 and all(c[2] for c in calls)
    for (t, _, _), sigma in zip(calls, levels * 6):
        assert t == pytest.approx([math.log(sigma) / 4], rel=1e-5)
    first = torch.tensor([c[1] for c in calls[::7]])  # c_in x with x ~ N(0, 10^2): std 10 / sqrt(10^2 + 0.15^2)
    assert first.sub(10 / math.hypot(10, 0.15)).abs().max() < 0.1


def test_priorgrad_vocoder_stores_its_energy_range_resumes_and_vocodes(tmp_path, corpus, config):
    """3 steps with diffusion.prior=mel_energy: the training data's frame-energy range (and align "centre", a new
    run's) goes into config.yaml and the checkpoint, a resume recomputes the same range, and generate builds the
    prior from the checkpoint."""
    from audiodiff.audio.features import LogMel, mel_config
    from audiodiff.audio.io import load_audio
    from audiodiff.builders import load_for_generation
    from audiodiff.diffusion.prior import energy_range

    exp = tmp_path / "exp"
    voc = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "task=vocoder", "diffusion.prior.kind=mel_energy"]
    run = train_cli(config, corpus, exp, "pg", "train.steps=3", *voc)
    mel = mel_config("speech16k")
    clips = [load_audio(p, 16000).double()[None] for p in sorted((corpus.parent.parent / "wav").glob("*.wav"))]
    want = energy_range((LogMel(mel)(c)[..., : c.shape[-1] // mel.hop] for c in clips), mel)
    stored = yaml.safe_load(load_checkpoint(run)["config"])["diffusion"]["prior"]
    assert stored == {"kind": "mel_energy", "std_min": 0.1, "energy": "rms", "max_quantile": 1.0, "align": "centre",
                      "lifter_order": 24, "floor": 0.01, "energy_min": want[0], "energy_max": want[1]}  # fmt: skip
    assert yaml.safe_load((run / "config.yaml").read_text())["diffusion"]["prior"] == stored
    train_cli(config, corpus, exp, "pg", "train.steps=4", *voc, flags=["--resume"])  # no config change to allow
    assert yaml.safe_load(load_checkpoint(run)["config"])["diffusion"]["prior"] == stored
    _, _, formulation, step = load_for_generation(run)
    assert step == 4 and (formulation.prior.energy_min, formulation.prior.energy_max) == want
    out = tmp_path / "pg_out"
    res = run_cli("generate", "--ckpt", run, "--mels-from", corpus, "--out", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert sorted(p.stem for p in out.glob("*.wav")) == [f"utt{i}" for i in range(6)]


def test_a_priorgrad_run_from_before_align_resumes_with_its_own_config_as_hold(tmp_path, corpus, config):
    """A run trained before diffusion.prior.align existed (its checkpoint stores a range and no align: "hold")
    resumes with the config it started from (no range, no align) with no change to allow, and stays "hold".
    It was refused (align 'hold' -> 'centre': the recomputed range recorded a new run's "centre")."""
    import torch

    from audiodiff.config import from_yaml

    exp = tmp_path / "exp"
    voc = ["model.diffwave.n_mels=80", "model.diffwave.hop=128", "task=vocoder", "diffusion.prior.kind=mel_energy"]
    run = train_cli(config, corpus, exp, "old", "train.steps=2", *voc)
    for path in (run / "checkpoints").glob("ckpt-*.pt"):  # as the first version stored it: no energy/quantile/align
        state = torch.load(path, weights_only=True)
        lines = state["config"].splitlines()
        state["config"] = "\n".join(
            x for x in lines if x.strip().split(":")[0] not in ("energy", "max_quantile", "align")
        )
        torch.save(state, path)
    assert from_yaml(load_checkpoint(run)["config"]).diffusion.prior.align == "hold"
    train_cli(config, corpus, exp, "old", "train.steps=3", *voc, flags=["--resume"])
    state = load_checkpoint(run)
    assert state["step"] == 3 and yaml.safe_load(state["config"])["diffusion"]["prior"]["align"] == "hold"
    assert "align" not in (run / "log.txt").read_text()  # nothing changed


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
    lines = [line for line in (run / "log.txt").read_text().splitlines() if line.startswith("step ")]
    losses = [float(line.split(" loss=")[1].split()[0]) for line in lines]
    assert len(losses) == 2 and all(0 < loss < 1e3 for loss in losses)
    # training reads the dumped features and checks their mel settings against the config's
    meta = corpus / "feats.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()) | {"hop": 256}))
    out = fail_cli("train", config, "--no-progress", *base_args(corpus, tmp_path / "exp", "stale", *unet))
    assert f"{meta}: features were dumped with other mel settings (['hop']); dump them again" in out


def test_vocoder_condition_is_mapped_by_mel_range_when_asked(monkeypatch):
    import pytest
    import torch

    import audiodiff.sampling
    from audiodiff.builders import build_task
    from audiodiff.config import ConfigError, load_config
    from audiodiff.tasks.audio import mel_to_unit

    voc = ["name=x", "data.train=/d", "task=vocoder", "model.diffwave.n_mels=80", "model.diffwave.hop=128"]
    raw = build_task(load_config(None, [*voc, "data.segment=1024"]), "cpu")
    scaled = build_task(load_config(None, [*voc, "data.cond_scale=mel_range", "data.mel_range=[-12,3]"]), "cpu")
    audio = torch.randn(2, 1, 1024) * 0.1
    feats = raw.logmel(audio)[..., :8]
    assert torch.equal(raw.condition(audio), feats)  # the default stays lmnt's raw convention
    torch.testing.assert_close(scaled.condition(audio), (feats + 12) * (2 / 15) - 1)
    # a mel model decoded by that vocoder hands it the condition on the vocoder's own scale
    mel = build_task(load_config(None, ["name=m", "data.train=/d", "task=mel", "model.kind=unet"]), "cpu")
    mel.vocoder, seen = (scaled.cfg, None, None, 0), []
    monkeypatch.setattr(audiodiff.sampling, "sample", lambda *a: seen.append(a[5]) or torch.zeros(1, 1, 1))
    x = torch.rand(1, 1, 80, mel.frames) * 2 - 1
    mel.decode(x, [0])
    want = mel_to_unit((x[:, 0] + 1) * 7 - 11.5, [-12, 3])[..., : mel.frames - 1]  # [-1, 1] -> [-11.5, 2.5] -> unit
    torch.testing.assert_close(seen[0], want)
    with pytest.raises(ConfigError, match=r"data.cond_scale=mel_range needs data.mel_range=\[lo, hi\] with lo < hi"):
        load_config(None, [*voc, "data.cond_scale=mel_range", "data.mel_range=[3,-12]"])


def test_class_conditional_mel_features_carry_utt2label_and_generate_guided(tmp_path, corpus, config):
    from torch.utils.data import default_collate

    from audiodiff.builders import build_task
    from audiodiff.config import load_config

    # utt2label in another order than feats.scp: labels must follow the features' ids, not the file's lines
    lines = [f"utt{i} {'abab'[i] if i < 4 else 'c'}\n" for i in range(6)]
    (corpus / "utt2label").write_text("".join(reversed(lines)))
    assert run_cli("dump-features", corpus, "--preset", "speech16k", "--sample-rate", "16000").exit_code == 0
    unet = ["model.kind=unet", "model.unet.channels=8", "model.unet.channel_mult=[1,2]", "model.unet.attn_levels=[]",
            "model.unet.num_res_blocks=1", "diffusion.kind=edm", "task=mel_features", "sample.sampler=heun",
            "sample.steps=2", "model.unet.num_classes=3", "model.unet.label_dropout=0.5"]  # fmt: skip
    run = train_cli(config, corpus, tmp_path / "exp", "cond", "train.steps=2", *unet)
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["labels"] == ["a", "b", "c"]
    # the training batches carry each utterance's label (feats.scp order), to_model hands them to the network
    task = build_task(load_config(config, base_args(corpus, tmp_path / "exp", "x", *unet)))
    examples = task.examples()
    batch = default_collate([examples[(i, 7)] for i in range(6)])
    assert examples.ids == [f"utt{i}" for i in range(6)] and batch["label"].tolist() == [0, 1, 0, 1, 2, 2]
    assert task.to_model(batch)[1].tolist() == [0, 1, 0, 1, 2, 2]
    out = tmp_path / "gen"
    res = run_cli("generate", "--ckpt", run, "--seeds", "0-3", "--out", out, "--guidance", "2", "--device", "cpu")
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "settings.json").read_text())
    assert settings["labels"] == ["a", "b", "c", "a"] and settings["guidance"] == 2.0
    assert settings["files"] == ["0.wav", "1.wav", "2.wav", "3.wav"]
    # w = 0 samples the null label only: the files ask for no class (evaluate reports no conditional accuracy)
    res = run_cli(
        "generate", "--ckpt", run, "--seeds", "0-1", "--out", out / "w0", "--guidance", "0", "--device", "cpu"
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "w0" / "settings.json").read_text())["labels"] is None
    # export --guidance is sample.guidance: the card names the run's w beside the release's
    assert run_cli("export", run, "--out", tmp_path / "rel" / "c", "--guidance", "2").exit_code == 0
    card = (tmp_path / "rel" / "c.md").read_text()
    assert "guidance w = 2 (set at export; the run's config: sample.guidance=1.0) |" in card
    assert (
        "| diffusion | edm (Karras preconditioning, weighted L2 on x0), sigma_data 0.5, ln sigma ~ N(-1.2, 1.2^2)"
        in card
    )
    # a model without the null label cannot be guided; the labels must fit num_classes
    plain = train_cli(config, corpus, tmp_path / "exp", "plain", "train.steps=2", *unet[:-2])
    err = fail_cli("generate", "--ckpt", plain, "--seeds", "0", "--out", tmp_path / "g2", "--guidance", "2")
    assert "sample.guidance=2.0 needs a class-conditional UNet trained with a null label" in err
    err = fail_cli("train", config, "--no-progress", *base_args(corpus, tmp_path / "exp", "n2", *unet,
                                                                "model.unet.num_classes=2"))  # fmt: skip
    assert f"model.unet.num_classes=2 but {corpus / 'utt2label'} gives 3 classes ['a', 'b', 'c']" in err
    (corpus / "utt2label").unlink()
    err = fail_cli("train", config, "--no-progress", *base_args(corpus, tmp_path / "exp", "n3", *unet))
    assert f"{corpus}: no utt2label or text file to take class labels from" in err
