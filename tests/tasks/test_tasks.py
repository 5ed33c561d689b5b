"""The task layer: a new task is one Task subclass, a TASKS entry and a config."""

import numpy as np
import pytest
import torch

from audiodiff.builders import TASKS
from audiodiff.config import ConfigError, load_config
from audiodiff.data.examples import make_example
from audiodiff.generate import generate
from audiodiff.tasks import Task
from audiodiff.train import train


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
    assert sum(line.startswith("step ") for line in (run / "log.txt").read_text().splitlines()) == 2
    paths = generate(run, tmp_path / "gen", [0, 1, 5], batch_size=2, progress=False)
    assert [p.name for p in paths] == ["0.npy", "1.npy", "5.npy"]
    assert np.load(paths[0]).shape == (64,) and np.isfinite(np.load(paths[2])).all()
    again = generate(run, tmp_path / "again", [5], progress=False)  # seed 5 alone: the same signal
    assert np.array_equal(np.load(again[0]), np.load(paths[2]))
    with pytest.raises(ConfigError, match=r"task=toy needs model.kind in \['diffwave'\], got model.kind=unet"):
        load_config(conf, ["name=toy", "data.train=unused", "model.kind=unet"])


def test_griffin_lim_decoding_depends_on_the_seed_only():
    """A mel sample's audio is a function of its seed: not of the global RNG or of its batch."""
    cfg = load_config("egs/digits/conf/mel_baseline.yaml", ["name=mel", "data.train=unused"])
    task = TASKS["mel"](cfg)
    x = torch.rand((3, *task.shape()), generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.manual_seed(1)
    batch = task.decode(x, [5, 6, 7])
    torch.manual_seed(2)
    alone = task.decode(x[1:2], [6])
    assert torch.equal(batch[1], alone[0])
    assert not torch.allclose(task.decode(x[1:2], [8])[0], alone[0], atol=1e-3)


def test_a_task_missing_part_of_the_interface_cannot_be_built():
    """The interface is abstract: a task without `decode` fails when built, naming it, not mid-generation."""
    no_decode = type("NoDecode", (Task,), {k: v for k, v in vars(ToyTask).items() if k != "decode"})
    cfg = load_config(None, ["name=toy", "data.train=unused"])
    assert isinstance(ToyTask(cfg), Task)
    with pytest.raises(TypeError, match="decode"):
        no_decode(cfg)
