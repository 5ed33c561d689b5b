"""`audiodiff export` and `audiodiff pretrained`: release a trained model, list the shipped ones.

Plain click commands, added to the `audiodiff` group by `audiodiff.cli` (audiodiff/release.py
does the work).
"""

from __future__ import annotations

import click

from audiodiff.cli_eval import fail


@click.command()
@click.argument("source", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="DIR/NAME: writes NAME.safetensors etc.")
@click.option("--half", is_flag=True, help="Store the weights in float16 (half the size; loaded as float32).")
@click.option(
    "--metrics",
    type=click.Path(dir_okay=False),
    default=None,
    help="An evaluate metrics.json or a learning_curve curve.json: its numbers go on the card.",
)
@click.option(
    "--prepare",
    default=None,
    help="The corpus and its prepare options, e.g. 'checkerboard size=16 sides=2,4,8' "
    "(default: the corpus the data dir's summary names, with its defaults).",
)
@click.option(
    "--guidance",
    type=float,
    default=None,
    help="The release's default classifier-free guidance w (sample.guidance) of a class-conditional model.",
)
@click.option(
    "--sample",
    "sample",
    multiple=True,
    metavar="sample.KEY=VALUE",
    help="Sample the release with this setting instead of the run's, e.g. sample.sampler=ddim (repeatable; "
    "sampling settings only: the weights and the training recipe stay the run's).",
)
def export(source, out, half, metrics, prepare, guidance, sample) -> None:
    """Release SOURCE (a run directory or checkpoint file): EMA weights and the resolved config in
    OUT.safetensors, the model card OUT.md, the config OUT.yaml and the loss curve OUT.loss.json.

    To ship it with the package, export into audiodiff/pretrained/; `generate --ckpt NAME` then
    finds it by name.

    \b
    Example:
      audiodiff export exp/cb16 --out audiodiff/pretrained/checkerboard16 --half \\
          --metrics exp/cb16/curve/curve.json --prepare 'checkerboard size=16 sides=2,4,8'
    """
    from audiodiff.release import export as run_export

    try:
        paths = run_export(source, out, half, metrics, prepare, guidance, sample)
    except (OSError, ValueError) as err:
        fail(err)
    click.echo(f"wrote {', '.join(str(p) for p in paths)} ({paths[0].stat().st_size / 1e6:.2f} MB of weights)")


@click.command()
def pretrained() -> None:
    """List the models shipped with audiodiff: generate from one with `audiodiff generate --ckpt NAME`.

    \b
    Example:
      audiodiff pretrained
    """
    from audiodiff.release import PRETRAINED, load_release, shipped_models

    shipped = shipped_models()
    if not shipped:
        click.echo(f"no models shipped yet ({PRETRAINED} holds none)")
    for name, path in shipped.items():
        try:
            cfg, net, step = load_release(path)
        except (OSError, ValueError) as err:
            fail(err)
        params = sum(p.numel() for p in net.parameters())
        card = path.with_suffix(".md")
        click.echo(
            f"{name}: task {cfg.task}, {cfg.model.kind} ({params:,} parameters), {step} steps, "
            f"{path.stat().st_size / 1e6:.2f} MB; card {card if card.is_file() else '(none)'}"
        )


def describe_release(ckpt: str) -> str | None:
    """`audiodiff inspect`'s text for a release (metadata and config), None when `ckpt` names no release."""
    from audiodiff.config import to_yaml
    from audiodiff.release import names_release, read_release, release_config, resolve_release

    if not names_release(ckpt):
        return None
    try:
        path = resolve_release(ckpt)
        meta, _ = read_release(path, tensors=False)
        cfg = release_config(meta, path)
    except (OSError, ValueError) as err:
        fail(err)
    keys = ("step", "parameters", "dtype", "architecture", "commit", "torch")
    return f"release: {path}\n" + "".join(f"{k}: {meta.get(k, '?')}\n" for k in keys) + "config:\n" + to_yaml(cfg)
