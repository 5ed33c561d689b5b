"""The command line as a new user meets it: `python -m audiodiff`, help texts whose examples run as
written, `prepare --help` naming every corpus, and shared config blocks found by name after install;
and end to end on a tiny corpus: train, generate, inspect, --dry-run, one-line errors."""

import inspect
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import tomllib
from click.testing import CliRunner

from audiodiff.cli import main
from audiodiff.config import ConfigError, load_config
from audiodiff.data.corpora import CORPORA, corpus_function
from tests.conftest import AMP, base_args, run_cli, train_cli

ROOT = Path(__file__).parents[1]
PACKAGED_CONFIGS = ROOT / "audiodiff" / "configs"


def test_python_dash_m_audiodiff_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "audiodiff", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: python -m audiodiff") and "generate" in done.stdout


def test_prepare_help_lists_every_corpus_and_its_options():
    out = CliRunner().invoke(main, ["prepare", "--help"], terminal_width=200).output
    corpora = out.split("Corpora (option=default):")[1]
    for name in CORPORA:
        line = re.search(rf"^  {name} +(.*)$", corpora, re.M)
        assert line, (name, corpora)
        params = [p for p in inspect.signature(corpus_function(name)).parameters if p not in ("out", "split")]
        assert all(f"{p}=" in line.group(1) for p in params), (name, line.group(1))


def help_examples() -> list[tuple[str, str]]:
    """(command, example line) for every `Example(s):` block of every command's --help."""
    found = []
    for name in main.commands:
        text = CliRunner().invoke(main, [name, "--help"], terminal_width=200).output
        block = re.search(r"Examples?:\n((?:    .*\n?)+)", text)
        assert block, f"`audiodiff {name} --help` has no Example"
        lines = block.group(1).replace("\\\n", " ").splitlines()
        found += [(name, line.split("#")[0].strip()) for line in lines if line.strip()]
    return found


@pytest.mark.parametrize("name,example", help_examples(), ids=lambda v: v if "/" not in v else None)
def test_every_help_example_parses_and_names_files_that_exist(name, example):
    words = shlex.split(example)
    start = words.index("audiodiff") if "audiodiff" in words else words.index("audiodiff.cli")
    assert words[start + 1] == name, example
    args = words[start + 2 :]
    command = main.commands[name]
    with command.make_context(name, list(args)) as ctx:  # parses as click would, without running
        params = ctx.params
    for word in args:
        if word.endswith(".yaml"):
            assert (ROOT / word).is_file(), f"{example}: {word} does not exist"
    if name == "train":  # the config and its overrides resolve
        load_config(ROOT / params["config"], list(params["overrides"]))


def readme_own_config() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"```yaml\n# my_exp\.yaml\n(.*?)```", text, re.S).group(1)


def test_the_readmes_own_config_works_outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the blocks come from the package
    (tmp_path / "my_exp.yaml").write_text(readme_own_config())
    cfg = load_config(tmp_path / "my_exp.yaml", ["regularizer.lam=1e-5"])
    assert cfg.name == "digits_amp" and cfg.regularizer.losses[0].name == "amp" and cfg.model.diffwave.layers > 0
    (tmp_path / "old.yaml").write_text("defaults: [configs/loss/amp.yaml]\nname: x\ndata: {train: d}\n")
    assert load_config(tmp_path / "old.yaml").regularizer.losses[0].name == "amp"  # the repository's spelling
    (tmp_path / "typo.yaml").write_text("defaults: [loss/ampp.yaml]\nname: x\n")
    with pytest.raises(ConfigError, match=r"defaults entry 'loss/ampp.yaml' is neither a file next to it"):
        load_config(tmp_path / "typo.yaml")


def test_every_shared_block_is_package_data():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["audiodiff"]
    packaged = {p for g in globs if g.startswith("configs/") for p in (PACKAGED_CONFIGS.parent).glob(g)}
    blocks = set(PACKAGED_CONFIGS.rglob("*.yaml"))
    assert blocks and blocks == packaged
    assert (ROOT / "configs").resolve() == PACKAGED_CONFIGS.resolve()  # the repository's configs/ is the same


def test_click_is_the_only_parser():  # every command is a click command (the examples test relies on it)
    assert all(isinstance(c, click.Command) for c in main.commands.values())


def test_prepare_shows_progress_for_downloads_extraction_and_audio_checks(tmp_path, monkeypatch):
    import tarfile

    from audiodiff.data.corpora import common
    from tests.conftest import write_corpus

    bars = []

    class Bar:  # counts what a tqdm bar would show
        def __init__(self, total, desc, unit="it", iterable=None, **kwargs):
            self.total, self.desc, self.n, self.iterable = total, desc, 0, iterable
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def __iter__(self):
            for item in self.iterable:
                self.n += 1
                yield item

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(common, "progress", Bar)
    data = write_corpus(tmp_path / "c", n=3)
    archive = tmp_path / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "c" / "wav", arcname="wav")
    got = common.fetch(archive.as_uri(), tmp_path / "dl" / "c.tar.gz", "")
    common.extract(got, tmp_path / "x")
    common.audit(
        [{"utt": f"u{i}", "path": str(p)} for i, p in enumerate(sorted((tmp_path / "x" / "wav").iterdir()))],
        tmp_path / "bad.tsv",
    )
    done = {bar.desc: (bar.total, bar.n) for bar in bars}
    size = archive.stat().st_size
    assert done["download c.tar.gz"] == (size, size)
    assert done["extract c.tar.gz"] == (4, 4)  # the folder and its 3 files
    assert done["check audio"] == (None, 3) and (data / "wav.scp").is_file()


def test_cli_train_generate_inspect_end_to_end(tmp_path, corpus, config):
    exp = tmp_path / "exp"
    run = train_cli(config, corpus, exp, "e2e", "train.steps=4", "train.sample_every=4", "train.num_samples=2", *AMP)
    steps = [line for line in (run / "log.txt").read_text().splitlines() if line.startswith("step ")]
    assert (run / "config.yaml").is_file() and len(steps) == 4  # not the "checkpoint ... saved at step" line
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
