"""The task layer: a new task is one registry entry and a config; old configs load as their task."""

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from audiodiff import builders
from audiodiff.builders import TASKS, build_formulation, build_network
from audiodiff.config import ConfigError, ExperimentConfig, from_yaml, load_config
from audiodiff.data.examples import make_example
from audiodiff.diffusion import DDPM, EDM, Formulation
from audiodiff.generate import generate
from audiodiff.tasks import Task
from audiodiff.train import train

FIXTURES = Path(__file__).parent / "fixtures"


class ToySines(torch.utils.data.Dataset):
    """Sines of random frequency and phase, (1, 64), keyed by (index, seed)."""

    def __len__(self):
        return 8

    def __getitem__(self, key):
        g = torch.Generator().manual_seed(key[1])
        f, phase = torch.rand(2, generator=g)
        x = 0.5 * torch.sin(2 * np.pi * (1 + 4 * f) * torch.arange(64) / 64 + 6 * phase)[None]
        return make_example(x, g, key[0], (1, 64))


class ToyTask(Task):
    """A 1-D toy signal task: all it takes is these methods and a TASKS entry."""

    networks = ("diffwave",)

    def examples(self):
        return ToySines()

    def to_model(self, batch):
        return batch["x"].to(self.device), None

    def shape(self, cond=None):
        return (1, 64)

    def decode(self, x, seeds):
        return x[:, 0]

    def write(self, out, names, outputs):
        paths = [out / f"{name}.npy" for name in names]
        for path, signal in zip(paths, outputs):
            np.save(path, signal.numpy())
        return paths

    def summarize(self, out, paths, outputs, source):
        return {"toy": len(outputs)}

    def log_samples(self, writer, out, seeds, outputs, step):
        out.mkdir(parents=True, exist_ok=True)
        self.write(out, [str(s) for s in seeds], outputs)


def test_a_toy_task_trains_and_generates_through_the_normal_path(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, "toy", ToyTask)
    conf = tmp_path / "toy.yaml"
    conf.write_text(
        "task: toy\nmodel: {diffwave: {layers: 2, channels: 8, cycle: 2, n_mels: 0, embed_dim: 32}}\n"
        "train: {steps: 4, batch_size: 4, ckpt_every: 4, sample_every: 4, num_samples: 2, log_every: 2}\n"
    )
    cfg = load_config(conf, ["name=toy", f"exp_dir={tmp_path}", "data.train=unused"])
    run = train(cfg, progress=False)
    assert sorted(p.name for p in (run / "samples" / "step_00000004").iterdir()) == ["0.npy", "1.npy"]
    assert (run / "log.txt").read_text().count("step ") == 2
    paths = generate(run, tmp_path / "gen", [0, 1, 5], batch_size=2, progress=False)
    assert [p.name for p in paths] == ["0.npy", "1.npy", "5.npy"]
    assert np.load(paths[0]).shape == (64,) and np.isfinite(np.load(paths[2])).all()
    again = generate(run, tmp_path / "again", [5], progress=False)  # seed 5 alone: the same signal
    assert np.array_equal(np.load(again[0]), np.load(paths[2]))
    with pytest.raises(ConfigError, match=r"task=toy needs model.kind in \['diffwave'\], got model.kind=unet"):
        load_config(conf, ["name=toy", "data.train=unused", "model.kind=unet"])


def test_config_stored_before_the_task_key_loads_as_its_task():
    old = (FIXTURES / "config_before_task_key.yaml").read_text()  # written by a checkpoint of commit c122426
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


def test_build_network_with_an_unknown_kind_is_a_one_line_error():
    cfg = OmegaConf.structured(ExperimentConfig(name="t"))
    cfg.model.kind = "unet"
    assert type(build_network(cfg)).__name__ == "UNet"
    plain = ExperimentConfig(name="t")  # not validated: the builder itself must refuse
    plain.model.kind = "wavenet"
    with pytest.raises(
        ValueError, match=r"^model.kind='wavenet' is not allowed; choose one of \['diffwave', 'unet'\]$"
    ):
        build_network(plain)
    plain.diffusion.kind = "flow"
    with pytest.raises(ValueError, match=r"diffusion.kind='flow' is not allowed; choose one of \['ddpm', 'edm'\]"):
        build_formulation(plain)


def test_formulations_declare_what_callers_used_to_ask_isinstance_for():
    ddpm, edm = DDPM.from_preset("diffwave"), EDM()
    assert isinstance(ddpm, Formulation) and isinstance(edm, Formulation)
    u, z = torch.tensor([0.0, 0.5, 0.999]), torch.tensor([-1.0, 0.0, 1.0])
    assert ddpm.levels_from(u).tolist() == [0, 25, 49] and ddpm.level_name == "t" and ddpm.level_draw == "u"
    torch.testing.assert_close(edm.levels_from(z), (-1.2 + 1.2 * z).exp())
    assert edm.level_name == "sigma" and edm.level_draw == "z" and edm.step_sigmas(6) is None
    assert len(ddpm.step_sigmas(6)) == 7 and ddpm.fractional_steps(ddpm.step_sigmas(6)) == []
    cfg = ExperimentConfig(name="t")
    with pytest.raises(ValueError, match="sampler 'fast' needs a DDPM model"):
        builders.SAMPLER_PLANS["fast"](cfg.sample, edm, 6)
