"""`audiodiff generate` and `audiodiff griffin-lim`: sample a checkpoint to files, and vocode real mels by Griffin-Lim.

Plain click commands, added to the `audiodiff` group by `audiodiff.cli` (which imports this
module, never the reverse, so `python -m audiodiff.cli` sees them too).
"""

from __future__ import annotations

import click

from audiodiff.builders import SAMPLER_PLANS
from audiodiff.cli_eval import check_device as _device
from audiodiff.cli_eval import fail as _fail


@click.command()
@click.option(
    "--ckpt",
    required=True,
    type=click.Path(),
    help="Checkpoint file, run directory, released .safetensors file or shipped model name (audiodiff pretrained).",
)
@click.option("--seeds", default="0-15", show_default=True, help="Seeds: '0-63', '1,5,9'. One file per seed.")
@click.option(
    "--sampler",
    type=click.Choice(list(SAMPLER_PLANS)),
    default=None,
    help="Default: the config's sample.sampler.",
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampling steps (all but 'fast', which has 6).")
@click.option("--eta", type=click.FloatRange(min=0), default=None, help="ddim: noise scale (0: deterministic).")
@click.option("--churn", type=click.FloatRange(min=0), default=None, help="heun: EDM's S_churn (0: deterministic).")
@click.option(
    "--rho", type=click.FloatRange(min=0, min_open=True), default=None, help="euler, heun (ddim on EDM): grid rho."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output directory: new, empty, or holding a previous generated set (replaced).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--mels-from", type=click.Path(), default=None, help="Vocoders: data dir or folder of audio to vocode.")
@click.option(
    "--init", type=click.Choice(["griffin-lim"]), default=None, help="DDPM vocoders: shallow diffusion from it."
)
@click.option(
    "--init-level",
    type=click.IntRange(min=0),
    default=None,
    help="With --init: the sampler's steps to skip; it starts at that level from the noised init (0: from noise).",
)
@click.option(
    "--vocoder",
    type=click.Path(),
    default=None,
    help="Mel models: a mel-conditioned DiffWave checkpoint (default: Griffin-Lim).",
)
@click.option(
    "--seconds",
    type=float,
    default=None,
    help="Clip length of unconditional waveform models (default: the training crop).",
)
@click.option(
    "--clip-denoised/--no-clip-denoised",
    default=None,
    help="Clamp x0_hat to [-1, 1] at every step (default: the config's sample.clip_denoised).",
)
@click.option(
    "--guidance",
    type=float,
    default=None,
    help="Classifier-free guidance w of a class-conditional model trained with label dropout "
    "(1: plain conditional, 0: unconditional; default: the config's sample.guidance).",
)
@click.option("--raw", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available).")
def generate(
    ckpt,
    seeds,
    sampler,
    steps,
    eta,
    churn,
    rho,
    out,
    batch_size,
    mels_from,
    init,
    init_level,
    vocoder,
    seconds,
    clip_denoised,
    guidance,
    raw,
    device,
) -> None:
    """Generate audio files (or images) from a checkpoint, as its task says.

    Files are named by seed, zero-padded (00.wav .. 63.wav), or by utterance when vocoding;
    OUT/settings.json lists exactly the set's files and how they were sampled. A sampler
    setting the sampler does not read (--steps with fast, --eta with heun) is an error.

    \b
    Examples:
      audiodiff generate --ckpt exp/amp1 --seeds 0-63 --sampler fast --out exp/amp1/gen
      audiodiff generate --ckpt exp/edm1 --seeds 0-63 --sampler heun --steps 18 --churn 40 --out exp/edm1/gen
      audiodiff generate --ckpt checkerboard16 --out gen/cb16   # a shipped model (audiodiff pretrained)
      audiodiff generate --ckpt exp/voc --mels-from data/test --sampler fast --init griffin-lim --init-level 3 \\
          --out exp/voc/gl3   # shallow diffusion: the last 3 of 6 steps, from Griffin-Lim noised to level 3
    """
    from audiodiff.generate import generate as run_generate
    from audiodiff.generate import parse_seeds

    try:
        device = _device(device)
        paths = run_generate(
            ckpt,
            out,
            parse_seeds(seeds),
            sampler,
            steps,
            batch_size,
            mels_from,
            device,
            not raw,
            vocoder=vocoder,
            seconds=seconds,
            clip_denoised=clip_denoised,
            eta=eta,
            churn=churn,
            rho=rho,
            log=lambda line: click.echo(line, err=True),
            guidance=guidance,
            init=init,
            init_level=init_level,
        )
    except (OSError, ValueError) as err:
        _fail(err)
    click.echo(f"wrote {len(paths)} files to {out}")


@click.command("griffin-lim")
@click.option("--mels-from", required=True, type=click.Path(), help="Data dir or folder of audio to vocode.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output directory: new, empty, or holding a previous generated set (replaced).",
)
@click.option(
    "--mel-preset", default="speech16k", show_default=True, help="Log-mel settings (a vocoder's data.mel_preset)."
)
@click.option("--iters", type=click.IntRange(min=1), default=64, show_default=True, help="Phase-retrieval iterations.")
@click.option(
    "--momentum",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.99,
    show_default=True,
    help="Fast Griffin-Lim momentum (0: classic).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Initial phase.")
def griffin_lim(mels_from, out, mel_preset, iters, momentum, seed) -> None:
    """Vocode the log-mels of real audio with Griffin-Lim: the no-training row of a vocoder table.

    Writes OUT/<utt>.wav per clip of --mels-from, a spectrogram grid and settings.json, a set that
    `evaluate --gen` scores (mrstft, lsd, pesq pair by name) and `report` shows beside a vocoder's.

    \b
    Example:
      audiodiff griffin-lim --mels-from data/asterisk_en/data/test --out exp/griffin_lim/generated
    """
    from audiodiff.generate import griffin_lim_set

    try:
        paths = griffin_lim_set(
            mels_from, out, mel_preset, iters, momentum, seed, log=lambda x: click.echo(x, err=True)
        )
    except (OSError, ValueError) as err:
        _fail(err)
    click.echo(f"wrote {len(paths)} files to {out}")
