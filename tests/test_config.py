from pathlib import Path

import pytest

from audiodiff.config import ConfigError, from_yaml, load_config, to_yaml


def test_defaults_compose_and_overrides_win(tmp_path):
    (tmp_path / "model.yaml").write_text("model:\n  diffwave:\n    layers: 12\n    channels: 32\n")
    (tmp_path / "train.yaml").write_text("train:\n  lr: 0.001\n  steps: 50\n")
    (tmp_path / "exp.yaml").write_text(
        "defaults: [model.yaml, train.yaml]\nname: demo\ndata:\n  train: /data\ntrain:\n  steps: 100\n"
    )
    cfg = load_config(tmp_path / "exp.yaml", ["train.lr=0.0005", "regularizer.lam=1e-4"])
    assert cfg.model.diffwave.layers == 12 and cfg.model.diffwave.channels == 32
    assert cfg.train.steps == 100 and cfg.train.lr == 0.0005 and cfg.regularizer.lam == 1e-4
    assert from_yaml(to_yaml(cfg)) == cfg


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["train.stepz=5"], r"unknown key 'train.stepz' in 'train'; valid keys: \['steps', 'batch_size'"),
        (["bogus=1"], r"unknown key 'bogus'; valid keys: \['name', 'exp_dir', 'task', 'model'"),
        (["model.diffwave.layerz=3"], r"unknown key 'model.diffwave.layerz'.*\['layers', 'channels'"),
        (["train.steps=many"], "bad value for 'train.steps'"),
        (["sample.sampler=dpm"], r"sample.sampler='dpm' is not allowed; choose one of \['fast'"),
        (["train.steps"], "must look like key.path=value"),
        (["train.steps=0"], r"train.steps=0 must be >= 1"),
        (["train.batch_size=-4"], r"train.batch_size=-4 must be >= 1"),
        (["train.ckpt_every=0"], r"train.ckpt_every=0 must be >= 1"),
        (["train.grad_accum=0"], r"train.grad_accum=0 must be >= 1"),
        (["train.log_every=0"], r"train.log_every=0 must be >= 1"),
        (["data.segment=0"], r"data.segment=0 must be >= 1"),
        (["regularizer.lam=-1e-4"], r"regularizer.lam=-0.0001 must be >= 0"),
        (["sample.guidance=2"], r"sample.guidance=2.0 needs a class-conditional UNet .*model.kind=diffwave"),
        (
            ["model.kind=unet", "task=mel", "model.unet.num_classes=10", "sample.guidance=1.5"],
            r"sample.guidance=1.5 needs .*\(model.unet.num_classes > 0 and model.unet.label_dropout > 0\); "
            r"this model has num_classes=10, label_dropout=0.0",
        ),
        (
            [
                "model.kind=unet",
                "task=mel",
                "model.unet.num_classes=10",
                "model.unet.label_dropout=0.1",
                "sample.guidance=-1",
            ],
            r"sample.guidance=-1.0 must be >= 0",
        ),  # fmt: skip
        (["sample.guidance=nan"], r"sample.guidance=nan must be >= 0"),
        (
            ["model.kind=unet", "task=mel", "model.unet.label_dropout=1.5"],
            r"model.unet.label_dropout=1.5 must be in \[0, 1\)",
        ),
        (
            ["model.kind=unet", "task=mel", "model.unet.label_dropout=0.3"],
            r"model.unet.label_dropout=0.3 needs model.unet.num_classes > 0",
        ),
        (
            ["regularizer.losses=[{name: amp}, {name: mel}]", "data.sample_rate=16000"],
            r"regularizer.losses\[1\] \(mel\) has sample_rate=22050 but data.sample_rate=16000",
        ),
    ],
)
def test_bad_configs_give_one_line_errors(overrides, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(None, ["name=x", "data.train=/d", *overrides])
    assert "\n" not in str(info.value)


def test_missing_required_value_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="missing required value 'data.train'"):
        load_config(None, ["name=x"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("defaults: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("defaults: [a.yaml]\n")
    with pytest.raises(ConfigError, match="'defaults' cycle"):
        load_config(tmp_path / "a.yaml")


CONFIGS = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("block", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shared_block_validates(block):
    cfg = load_config(block, ["name=x", "data.train=/d"])
    assert cfg.name == "x"


def test_an_experiment_composes_shared_blocks(tmp_path):
    root = Path(__file__).parents[1] / "configs"
    exp = tmp_path / "exp.yaml"
    blocks = [
        "model/diffwave_base.yaml",
        "diffusion/ddpm_diffwave.yaml",
        "loss/amp.yaml",
        "data/ljspeech_vocoder.yaml",
        "train/paper.yaml",
    ]
    exp.write_text("defaults: [" + ", ".join(str(root / b) for b in blocks) + "]\nname: lj_amp\ndata:\n  train: /d\n")
    cfg = load_config(exp, ["regularizer.lam=1e-5"])
    assert cfg.model.diffwave.layers == 30 and cfg.data.segment == 15872 and cfg.regularizer.losses[0].name == "amp"
    assert cfg.regularizer.lam == 1e-5 and cfg.sample.sampler == "fast" and cfg.train.batch_size == 16


def test_embed_interp_auto_is_resolved_by_the_formulation_and_stored_resolved():
    base = ["name=x", "data.train=/d"]
    ddpm, edm = load_config(None, base), load_config(None, [*base, "diffusion.kind=edm"])
    assert ddpm.model.diffwave.embed_interp == "lerp" and edm.model.diffwave.embed_interp == "exact"
    assert "embed_interp: lerp" in to_yaml(ddpm)  # what run dirs and checkpoints store
    # an old checkpoint's stored "exact" stays "exact"; a hand-written "auto" is resolved on load
    old = to_yaml(load_config(None, [*base, "model.diffwave.embed_interp=exact"]))
    assert from_yaml(old).model.diffwave.embed_interp == "exact"
    assert from_yaml(old.replace("embed_interp: exact", "embed_interp: auto")).model.diffwave.embed_interp == "lerp"
    with pytest.raises(ConfigError, match="model.diffwave.embed_interp='lerp' interpolates between integer DDPM"):
        load_config(None, [*base, "diffusion.kind=edm", "model.diffwave.embed_interp=lerp"])
    with pytest.raises(ConfigError, match=r"embed_interp='cubic' is not allowed; choose one of \['auto', 'exact'"):
        load_config(None, [*base, "model.diffwave.embed_interp=cubic"])


def test_embed_freqs_defaults_to_diffwave_is_checked_and_refuses_lerp():
    base = ["name=x", "data.train=/d"]
    old = to_yaml(load_config(None, base))
    assert "embed_freqs: diffwave" in old  # stored with the run
    lines = [line for line in old.splitlines() if "embed_freqs" not in line]  # a config stored before the key
    assert from_yaml("\n".join(lines)).model.diffwave.embed_freqs == "diffwave"
    edm = load_config(None, [*base, "diffusion.kind=edm", "model.diffwave.embed_freqs=edm"])
    assert (edm.model.diffwave.embed_freqs, edm.model.diffwave.embed_interp) == ("edm", "exact")
    # DDPM steps on EDM's frequencies (at most 1 rad per step) are smooth between integers: auto is exact
    assert load_config(None, [*base, "model.diffwave.embed_freqs=edm"]).model.diffwave.embed_interp == "exact"
    with pytest.raises(ConfigError, match="model.diffwave.embed_freqs='edm' does not go with embed_interp='lerp'"):
        load_config(None, [*base, "model.diffwave.embed_freqs=edm", "model.diffwave.embed_interp=lerp"])
    with pytest.raises(ConfigError, match=r"embed_freqs='fourier' is not allowed; choose one of \['diffwave', 'edm'\]"):
        load_config(None, [*base, "model.diffwave.embed_freqs=fourier"])


@pytest.mark.parametrize(
    "text,match",
    [
        ("model: [unclosed", "stored config: cannot parse YAML"),
        ("- a\n- b\n", "stored config: not a YAML mapping"),
        ("", "stored config: not a YAML mapping"),
        ("name: x\ndata: {train: /d}\ntrain: {grad_accum: 0}\n", "train.grad_accum=0 must be >= 1"),
        ("name: x\ndata: {train: /d}\nmodel: {kind: wavenet}\n", "model.kind='wavenet' is not allowed"),
    ],
)
def test_stored_configs_are_validated_like_loaded_ones(text, match):
    with pytest.raises(ConfigError, match=match) as info:
        from_yaml(text)
    assert "\n" not in str(info.value)


def test_guidance_is_accepted_with_a_null_label():
    cfg = load_config(None, ["name=x", "data.train=/d", "model.kind=unet", "task=mel", "model.unet.num_classes=10",
                             "model.unet.label_dropout=0.1", "sample.guidance=2"])  # fmt: skip
    assert cfg.sample.guidance == 2.0 and cfg.model.unet.label_dropout == 0.1


def test_mel_loss_at_the_data_rate_is_accepted():
    cfg = load_config(
        None, ["name=x", "data.train=/d", "regularizer.losses=[{name: mel, kwargs: {sample_rate: 16000}}]"]
    )
    assert cfg.regularizer.losses[0].kwargs["sample_rate"] == 16000


def test_config_stored_before_the_task_key_loads_as_its_task():
    old = (
        Path(__file__).parent / "fixtures" / "config_before_task_key.yaml"
    ).read_text()  # written by a checkpoint of commit c122426
    assert "kind: audio" in old and "features: false" in old and "task:" not in old
    cfg = from_yaml(old)
    assert cfg.task == "mel" and cfg.model.kind == "unet" and "kind" not in cfg.data
    for flags, task in [
        ("data: {kind: images}\nmodel: {kind: unet}", "image"),
        ("data: {condition: mel}\nmodel: {diffwave: {hop: 128}}", "vocoder"),
        ("data: {features: true}\nmodel: {kind: unet}", "mel_features"),
        ("model: {kind: unet}", "mel"),
        ("data: {condition: none}", "waveform"),
    ]:
        assert from_yaml(flags).task == task, flags
    assert load_config(None, ["name=x", "data.train=d", "data.kind=images", "model.kind=unet"]).task == "image"
    with pytest.raises(ConfigError, match=r"task=waveform contradicts the old flags data.kind=images \(task=image\)"):
        load_config(None, ["name=x", "data.train=d", "task=waveform", "data.kind=images"])
    with pytest.raises(ConfigError, match=r"data.condition='mfcc' is not allowed; choose one of \['none', 'mel'\]"):
        from_yaml("data: {condition: mfcc}")
    with pytest.raises(ConfigError, match=r"task='video' is not allowed; choose one of \['waveform', 'vocoder'"):
        from_yaml("task: video")
