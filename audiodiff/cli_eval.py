"""`audiodiff evaluate` and `audiodiff report`: score a generated set, and compare evaluated runs on one page.

Plain click commands, added to the `audiodiff` group by `audiodiff.cli` (which imports this
module, never the reverse, so `python -m audiodiff.cli` sees them too).
"""

from __future__ import annotations

import sys

import click

from audiodiff.eval.registry import metric_names
from audiodiff.eval.sets import KINDS as SET_KINDS


def fail(err: Exception) -> None:
    """A one-line ClickException from a library error (OSError: the reason, then the file)."""
    message = str(err)
    if isinstance(err, OSError) and err.strerror:  # not "[Errno 28] ...": the reason, then the file
        message = err.strerror + (f": {err.filename}" if err.filename else "")
    raise click.ClickException(message) from err


def check_device(device: str | None) -> str:
    """The device to run on (default: cuda when torch sees a GPU); a one-line ValueError for one it cannot use."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device}: not a device name; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {device}: torch sees no CUDA GPU on this machine; use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"--device {device}: torch sees {count} CUDA GPU(s), cuda:0 .. cuda:{count - 1}")
    return device


def _metric_help() -> str:
    """--metrics' help, from the metric registry: each set kind's metrics and defaults."""
    kinds = [
        f"{kind}: {', '.join(metric_names(kind))} (default {','.join(k.defaults)})" for kind, k in SET_KINDS.items()
    ]
    return f"Comma-separated, for the sets' kind. {'; '.join(kinds)}. --classifier adds 'classifier'."


@click.command()
@click.option("--ref", required=True, type=click.Path(), help="Reference set: data dir or folder (audio), images.")
@click.option("--gen", required=True, type=click.Path(), help="Generated set: data dir or folder (audio), images.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Where metrics.json/.md and plots go.")
@click.option(
    "--kind",
    type=click.Choice(list(SET_KINDS)),
    default=None,
    help="What the sets hold [default: images when --ref has images.npy, else audio].",
)
@click.option("--metrics", default=None, help=_metric_help())
@click.option(
    "--embedder",
    default="ge2e",
    show_default=True,
    help="ge2e (offline, resemblyzer weights), melstats (no weights), vggish, pann, encodec, clap.",
)
@click.option(
    "--embedder-weights",
    type=click.Path(),
    default=None,
    help="The embedder's weights file (CLAP: a model dir) instead of the cache ($AUDIODIFF_WEIGHTS).",
)
@click.option(
    "--cache", type=click.Path(), default=None, help="Embedding cache (default ~/.cache/audiodiff/embeddings)."
)
@click.option(
    "--classifier",
    type=click.Path(),
    default=None,
    help="A classifier dir (audiodiff train-classifier): adds classifier-FID, IS, mIS, AM.",
)
@click.option("--device", default="cpu")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append one row (gen, ref, embedder, sizes, metrics) to this results table, shared by runs.",
)
@click.option(
    "--per-file", is_flag=True, help="Audio: also write per_file.csv, each clip's distance to the references."
)
@click.option(
    "--floor",
    type=click.Path(),
    default=None,
    help="The output folder of a real-vs-real evaluation: its values are shown as each metric's floor.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars [default: when stderr is a terminal].")
@click.option(
    "--on-bad-audio",
    type=click.Choice(["error", "skip"]),
    default="error",
    show_default=True,
    help="Unusable files (missing, unreadable, NaN/inf, too short): stop listing them all, or skip them.",
)
def evaluate(ref, gen, out, kind, metrics, embedder, embedder_weights, cache, classifier, device, csv_path, per_file,
             floor, progress, on_bad_audio) -> None:  # fmt: skip
    """Compare a generated set with a reference set (audio: FAD, FAD-inf, KAD, NDB, mean spectrum).

    \b
    Example:
      audiodiff evaluate --ref data/digits/data/test --gen exp/amp/generated --out exp/amp/eval \\
          --csv exp/results.csv --floor exp/real/eval
    """
    from audiodiff.eval.evaluate import evaluate as run_evaluate

    try:
        device = check_device(device)
        report = run_evaluate(
            ref,
            gen,
            out,
            None if metrics is None else [m.strip() for m in metrics.split(",")],
            embedder,
            cache,
            device,
            classifier=classifier,
            embedder_weights=embedder_weights,
            on_bad_audio=on_bad_audio,
            kind=kind,
            csv=csv_path,
            per_file=per_file,
            floor=floor,
            progress=sys.stderr.isatty() if progress is None else progress,
        )
    except (OSError, ValueError, ImportError) as err:
        fail(err)
    if "embedder" in report:
        click.echo(f"embedder {report['embedder']['name']}: {report['embedder']['about']}")
    for name, value in report["metrics"].items():
        click.echo(f"{name:>26s}  {value:.4f}")
    click.echo(f"wrote {out}/metrics.json" + (f"; appended a row to {csv_path}" if csv_path else ""))


@click.command()
@click.argument("evals", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML page to write.")
@click.option("--floor", type=click.Path(), default=None, help="A real-vs-real evaluation folder: the metrics' floor.")
@click.option("--clips", type=click.IntRange(1), default=8, show_default=True, help="Clips per run.")
def report(evals, out, floor, clips) -> None:
    """One page comparing evaluated runs: EVALS are `audiodiff evaluate` output folders.

    What each run was (checkpoint, step, task, regularizer and lambda, sampler), every metric per
    run with its direction and floor, the spectra, and the clips aligned by name (seeds, or
    utterances for vocoders) beside the reference.

    \b
    Example:
      audiodiff report exp/baseline/eval exp/amp/eval --out exp/compare.html --floor exp/real/eval
    """
    from audiodiff.eval.report import write_comparison

    try:
        write_comparison(out, list(evals), floor, clips)
    except (OSError, ValueError) as err:
        fail(err)
    click.echo(f"wrote {out} ({len(evals)} runs)")
