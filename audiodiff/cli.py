"""`audiodiff` command line: thin wrappers over the library functions."""

from __future__ import annotations

import sys

import click

from audiodiff import __version__
from audiodiff.cli_eval import evaluate, report
from audiodiff.cli_eval import fail as _fail
from audiodiff.cli_generate import generate, griffin_lim
from audiodiff.cli_release import export, pretrained
from audiodiff.data.validate import ON_BAD_AUDIO


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
def main() -> None:
    """audiodiff: audio diffusion with spectral regularization (arXiv 2603.02447)."""


main.add_command(evaluate)  # both defined in audiodiff.cli_eval
main.add_command(report)
main.add_command(export)  # both defined in audiodiff.cli_release
main.add_command(pretrained)
main.add_command(generate)  # both defined in audiodiff.cli_generate
main.add_command(griffin_lim)


class _PrepareCommand(click.Command):
    """`prepare`, whose help ends with every corpus and its options (read from the corpus functions)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from audiodiff.data.corpora import CORPORA, describe

        rows = []
        for name in CORPORA:
            try:
                rows.append((name, describe(name)))
            except ImportError as err:  # a corpus whose extra is missing still gets a line
                rows.append((name, f"(unavailable: {err})"))
        with formatter.section("Corpora (option=default)"):
            formatter.write_dl(rows)


@main.command(cls=_PrepareCommand)
@click.argument("corpus")
@click.argument("options", nargs=-1)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
def prepare(corpus: str, options: tuple[str, ...], out: str) -> None:
    """Download and/or prepare a CORPUS into Kaldi-style data dirs (audio) or image splits.

    OPTIONS are the corpus's own settings as key=value (listed below). Downloads, extraction
    and audio checks show progress bars on a terminal.

    \b
    Examples:
      audiodiff prepare digits --out data/digits speakers=60 reps=2   # offline, espeak-ng
      audiodiff prepare sc09 --out data/sc09                          # downloads 2.3 GB
      audiodiff prepare ljspeech --out data/lj archive=LJSpeech-1.1.tar.bz2   # a local copy
      audiodiff prepare asterisk_en --out data/ast   # apt-get download, or archive=.deb/folder
    """
    from audiodiff.data.corpora import prepare as run_prepare

    pairs = {}
    for item in options:
        if "=" not in item:
            _fail(ValueError(f"option {item!r} must look like key=value"))
        key, value = item.split("=", 1)
        pairs[key] = value
    try:
        summary = run_prepare(corpus, out, pairs)
    except (ImportError, ValueError, RuntimeError, FileNotFoundError) as err:
        _fail(err)
    click.echo(f"{corpus}: {summary['utterances']} utterances in {out}/data")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--resume", is_flag=True, help="Continue the run from its latest checkpoint.")
@click.option(
    "--auto-resume", is_flag=True, help="Continue the run if it has a checkpoint, else start it (the recipes)."
)
@click.option(
    "--allow-changes",
    is_flag=True,
    help="Resume with settings other than the checkpoint's (e.g. regularizer.lam); recorded in log.txt.",
)
@click.option("--force", is_flag=True, help="Replace a run that has a checkpoint (deletes it).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs still go to log.txt).")
def train(
    config: str,
    overrides: tuple[str, ...],
    resume: bool,
    auto_resume: bool,
    allow_changes: bool,
    force: bool,
    dry_run: bool,
    no_progress: bool,
) -> None:
    """Train a model from a YAML CONFIG with key.path=value OVERRIDES.

    A run directory with a checkpoint is never replaced without --force; one without (a start
    that failed or was stopped early) is started anew. On --resume, settings other than the
    checkpoint's are refused unless --allow-changes (train.steps and the logging intervals may change).

    \b
    Examples:
      audiodiff train egs/digits/conf/amp.yaml name=amp1 data.train=data/digits/data/train train.steps=2000
      audiodiff train egs/digits/conf/amp.yaml name=amp1 data.train=data/digits/data/train --resume train.steps=4000
      torchrun --nproc_per_node 4 -m audiodiff.cli train egs/sc09/conf/baseline.yaml name=big \\
          data.train=data/sc09/data/train   # 4 GPUs, the same global batch
    """
    from audiodiff.config import ConfigError, load_config, to_yaml

    if sum((resume, auto_resume, force)) > 1:
        _fail(ValueError("--resume, --auto-resume and --force exclude each other; pass one"))
    try:
        cfg = load_config(config, overrides)
    except ConfigError as err:
        _fail(err)
    if dry_run:
        click.echo(to_yaml(cfg), nl=False)
        return
    from audiodiff.runfiles import RunInUseError
    from audiodiff.train import NonFiniteLossError
    from audiodiff.train import train as run_train

    try:
        run = run_train(cfg, resume, force, not no_progress, auto_resume=auto_resume, allow_changes=allow_changes)
    except (OSError, ValueError, NonFiniteLossError, RunInUseError) as err:  # OSError: read-only, disk full
        _fail(err)
    click.echo(f"run directory: {run}")


@main.command("train-classifier")
@click.option("--train", "train_dir", required=True, type=click.Path(), help="Labelled split (data dir or images.npy).")
@click.option("--valid", required=True, type=click.Path(), help="Split for model selection (best accuracy).")
@click.option("--test", type=click.Path(), default=None, help="Split whose accuracy is reported.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for the classifier.")
@click.option("--epochs", default=20, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--sample-rate", type=int, default=16000, show_default=True, help="Audio: the classifier's rate.")
@click.option("--seconds", type=float, default=1.0, show_default=True, help="Audio: input length (crop/pad).")
def train_classifier(train_dir, valid, test, out, epochs, batch_size, lr, seed, sample_rate, seconds) -> None:
    """Train the evaluation classifier (log-mel CNN for audio, CNN for images) on a labelled split.

    Labels come from utt2label (or text) of a Kaldi data dir, or labels.npy beside images.npy.
    The weights with the best validation accuracy are kept; `evaluate --classifier DIR` then
    reports classifier-FID, IS, modified IS and AM score.

    \b
    Example:
      audiodiff train-classifier --train data/digits/data/train --valid data/digits/data/valid \\
          --test data/digits/data/test --out data/digits/classifier
    """
    from audiodiff.classifier_training import train_classifier as run_train
    from audiodiff.eval.classifier import ClassifierConfig

    if epochs < 1 or seconds <= 0:
        _fail(ValueError(f"--epochs must be >= 1 and --seconds > 0 (got {epochs}, {seconds})"))
    config = ClassifierConfig(sample_rate=sample_rate, samples=int(round(seconds * sample_rate)))
    try:
        info = run_train(train_dir, valid, out, test, epochs, batch_size, lr, seed, config, log=click.echo)
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
    acc = f", test accuracy {info['test_accuracy']:.4f}" if "test_accuracy" in info else ""
    click.echo(f"wrote {out}: valid accuracy {info['valid_accuracy']:.4f}{acc}")


@main.command("dump-features")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--preset", default="speech16k", show_default=True, help="Mel preset (speech16k, speech8k, hifigan, diffwave)."
)
@click.option("--sample-rate", type=int, default=16000, show_default=True)
@click.option(
    "--on-bad-audio",
    type=click.Choice(ON_BAD_AUDIO),
    default="error",
    show_default=True,
    help="Unusable files (unreadable, NaN/inf, silent, too short): stop listing them all, or skip them.",
)
def dump_features(directory: str, preset: str, sample_rate: int, on_bad_audio: str) -> None:
    """Dump the log-mels of a data DIRECTORY (feats/*.npy, feats.scp) for task=mel_features.

    \b
    Example:
      audiodiff dump-features data/digits/data/train --preset speech16k --sample-rate 16000
    """
    from audiodiff.data.features import dump_features as run_dump

    try:
        n = run_dump(directory, preset, sample_rate, on_bad_audio)
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
    click.echo(f"{directory}: {n} feature files")


@main.command("validate-data-dir")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--no-audio", is_flag=True, help="Check the tables only, do not open the audio files.")
@click.option(
    "--min-seconds",
    type=float,
    default=1024 / 16000,
    show_default=True,
    help="Warn about clips shorter than this (default: one 1024-point STFT frame at 16 kHz; "
    "pass the model's crop to see which clips training will zero-pad).",
)
def validate_data_dir(directory: str, no_audio: bool, min_seconds: float) -> None:
    """Check a Kaldi-style data DIRECTORY: unsafe, duplicate or unsorted ids, missing or unusable audio.

    Relative wav.scp paths are resolved against DIRECTORY, as everywhere else. Short clips are
    warnings; everything else is a problem (exit status 1).

    \b
    Example:
      audiodiff validate-data-dir data/digits/data/train
    """
    from audiodiff.data.validate import validate_data_dir as run_validate

    problems, warnings = run_validate(directory, check_audio_files=not no_audio, min_seconds=min_seconds)
    for line in warnings:
        click.echo(f"warning: {line}")
    for line in problems:
        click.echo(line)
    if problems:
        raise click.ClickException(f"{directory}: {len(problems)} problem(s)")
    click.echo(f"{directory}: valid")


@main.command()
@click.argument("ckpt", type=click.Path())
def inspect(ckpt: str) -> None:
    """Print a checkpoint's (or a release's) step, parameter count and config.

    \b
    Example:
      audiodiff inspect exp/amp1
    """
    from audiodiff.checkpoint import load_checkpoint
    from audiodiff.cli_release import describe_release

    if (text := describe_release(ckpt)) is not None:
        return click.echo(text, nl=False)
    try:
        state = load_checkpoint(ckpt)
    except (FileNotFoundError, ValueError) as err:
        _fail(err)
    params = sum(v.numel() for v in state["model"].values())
    click.echo(
        f"checkpoint: {state['path']}\nstep: {state['step']}\nparameters: {params:,}\n"
        f"processes: {state.get('world_size', 1)}\ntorch: {state.get('torch', '?')}\nconfig:"
    )
    click.echo(state["config"], nl=False)


if __name__ == "__main__":
    sys.exit(main())
