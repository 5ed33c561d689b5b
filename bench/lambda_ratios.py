"""How big is each spectral loss next to the denoising loss? The numbers behind picking lambda.

For a training config (its data, clip length or image size, formulation and network), draws training
batches as training does (random crops or random images, uniform DDPM steps or EDM's log-normal sigmas), runs the
network once per batch, and reports for every loss in LOSS_CASES and both normalisations

    ratio = mean(L_spec(x0_hat, x0)) / mean(L_denoise)          (lambda = 1, "unweighted")

so lambda * ratio is the spectral term's share of the denoising loss. `lambda for 10 %` is
0.1 / ratio. With `--weighting weighted` (EDM only) the spectral term is lambda times the EDM loss
weight, as `regularizer.weighting=weighted` trains it: ratio = mean(w(sigma) L_spec) / mean(L_denoise).
The network is freshly initialised from the config (DiffWave's zero output layer makes eps_hat = 0,
x0_hat = x_t / sqrt(abar)), or loaded from `--ckpt` (EMA weights), e.g. a briefly trained model.
The config's own regularizer, at its lambda, is reported last.

Usage:
    python bench/lambda_ratios.py CONFIG [key=value ...] [--ckpt RUN] [--batches 8] [--name NAME]
        [--weighting weighted]
Writes bench/results/<name>.json and .md (default name: lambda_ratios) and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audiodiff.builders import TASKS, build_formulation, build_network, build_task  # noqa: E402
from audiodiff.checkpoint import load_checkpoint  # noqa: E402
from audiodiff.config import load_config  # noqa: E402
from audiodiff.data.datasets import AudioClips  # noqa: E402
from audiodiff.diffusion import SpectralObjective, training_sample  # noqa: E402
from audiodiff.diffusion.regularize import WEIGHTINGS  # noqa: E402
from audiodiff.losses import NORMALIZATIONS, build_spectral_loss  # noqa: E402
from bench.common import machine, write  # noqa: E402

# (label, registry name, kwargs): the paper's regularizers and the STFT family
LOSS_CASES = [
    ("amp", "amp", {}),
    ("amp_phase", "amp_phase", {}),
    ("amp_phase_global", "amp_phase", {"coupling": "global"}),
    ("haar", "wavelet", {"wavelet": "haar"}),
    ("bior13", "wavelet", {"wavelet": "bior1.3"}),
    ("stft", "stft", {}),
    ("mrstft", "mrstft", {"resolutions": "auraloss"}),
    ("mel", "mel", {}),
]


def batches(cfg, n: int, seed: int):
    """`n` training batches (x0, condition or None) of the config's data, in model space: waveform
    tasks (x0 (B, 1, T) random crops, mel condition or None) and images (x0 (B, C, H, W), label or None)."""
    g = torch.Generator().manual_seed(seed)
    task = build_task(cfg)
    if not TASKS[cfg.task].waveform:
        images = task.examples()  # image datasets are keyed by (index, seed); the seed only draws noise
        for _ in range(n):
            idx = torch.randint(0, len(images), (cfg.train.batch_size,), generator=g)
            yield task.to_model(default_collate([images[int(i), seed] for i in idx]))
        return
    clips = AudioClips(cfg.data.train, cfg.data.sample_rate, cfg.data.segment)
    torch.manual_seed(seed)  # the random crops
    for _ in range(n):
        idx = torch.randint(0, len(clips), (cfg.train.batch_size,), generator=g)
        yield task.to_model({"x": torch.stack([clips[int(i)][0] for i in idx])})


def _entry(cfg, label: str, name: str, kwargs: dict) -> dict:
    return {"name": name, "label": label, "kwargs": {"sample_rate": cfg.data.sample_rate} if name == "mel" else kwargs}


def applicable_cases(cfg) -> tuple[list[tuple], dict[str, str]]:
    """The LOSS_CASES that run on the config's crops, and why each other one does not (e.g. an STFT
    longer than a 512-sample crop); pass such a loss with shorter settings as the config's own regularizer."""
    keep, skipped = [], {}
    x = torch.zeros(1, *build_task(cfg).shape())  # (1, 1, T) for waveforms, (1, C, H, W) for images
    for label, name, kwargs in LOSS_CASES:
        try:
            build_spectral_loss([_entry(cfg, label, name, kwargs)], NORMALIZATIONS[0])(x, x)
        except (ValueError, RuntimeError) as err:
            skipped[label] = str(err).splitlines()[0]
            continue
        keep.append((label, name, kwargs))
    return keep, skipped


def measure(cfg, net, n_batches: int, seed: int, cases: list[tuple], weighting: str = "unweighted") -> dict:
    """Mean denoising loss and mean value of every loss case at lambda 1, per normalisation: the loss
    itself ("unweighted") or times the EDM loss weight of each example's sigma ("weighted")."""
    formulation = build_formulation(cfg)
    sums: dict[str, float] = {}
    for normalize in NORMALIZATIONS:
        entries = [_entry(cfg, label, name, kwargs) for label, name, kwargs in cases]
        objective = SpectralObjective(formulation, build_spectral_loss(entries, normalize), 1.0, weighting)
        g = torch.Generator().manual_seed(seed + 1)
        for x0, cond in batches(cfg, n_batches, seed):
            sample = _training_levels(formulation, x0, g)
            with torch.no_grad():
                out = objective(net, x0, cond, **sample)
            if normalize == NORMALIZATIONS[0]:  # the same batches, levels and noise in every pass
                sums["denoise"] = sums.get("denoise", 0.0) + out["denoise"].mean().item() / n_batches
            for label, _, _ in cases:
                key = f"{label}|{normalize}"
                term = out[f"spec/{label}"] * out["lambda_eff"]  # lambda_eff: 1, or the EDM weight
                sums[key] = sums.get(key, 0.0) + term.mean().item() / n_batches
    return sums


def _training_levels(formulation, x0: torch.Tensor, g: torch.Generator) -> dict:
    """The DDPM step t (or EDM sigma) and noise a training step would draw, from generator g."""
    draws = {"u": torch.rand(x0.shape[0], generator=g), "z": torch.randn(x0.shape[0], generator=g)}
    return training_sample(formulation, draws, torch.randn(x0.shape, generator=g))


def own_regularizer(cfg, net, n_batches: int, seed: int) -> dict | None:
    """lambda_eff * L_spec / L_denoise of the config's own regularizer (None if it has none)."""
    rc = cfg.regularizer
    if not rc.losses or rc.lam == 0:
        return None
    entries = [
        {"name": e.name, "weight": e.weight, "label": e.label or None, "kwargs": dict(e.kwargs)} for e in rc.losses
    ]
    formulation = build_formulation(cfg)
    objective = SpectralObjective(
        formulation, build_spectral_loss(entries, rc.normalize), rc.lam, rc.weighting, rc.sigma_range, rc.t_range
    )
    spectral = denoise = 0.0
    g = torch.Generator().manual_seed(seed + 1)
    for x0, cond in batches(cfg, n_batches, seed):
        with torch.no_grad():
            out = objective(net, x0, cond, **_training_levels(formulation, x0, g))
        spectral, denoise = spectral + out["spectral"].mean().item(), denoise + out["denoise"].mean().item()
    return {
        "lam": rc.lam,
        "normalize": rc.normalize,
        "losses": [e.name for e in rc.losses],
        "ratio": spectral / denoise,
    }


def _data(cfg) -> str:
    if TASKS[cfg.task].waveform:
        return f"clip {cfg.data.segment} samples at {cfg.data.sample_rate} Hz"
    return f"images {' x '.join(map(str, cfg.data.image_shape))}"


def _objective(cfg) -> str:
    d = cfg.diffusion
    if d.kind == "edm":
        return f"EDM (sigma_data {d.sigma_data}), weighted L2 denoising loss"
    return f"DDPM {d.prediction}-prediction, {d.loss_type} denoising loss"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--ckpt", default="", help="a run dir or checkpoint: use its EMA weights")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--weighting", choices=WEIGHTINGS, default="unweighted", help="the spectral term times EDM's loss weight?"
    )
    parser.add_argument("--name", default="lambda_ratios")
    args = parser.parse_args()
    cfg = load_config(args.config, ["name=lambda_ratios", *args.overrides])
    if args.weighting == "weighted" and cfg.diffusion.kind != "edm":
        parser.error(f"--weighting weighted multiplies by EDM's loss weight; {args.config} is {cfg.diffusion.kind}")
    torch.manual_seed(args.seed)
    net = build_network(cfg)
    if args.ckpt:
        net.load_state_dict(load_checkpoint(args.ckpt)["ema"])
    net.eval()
    cases, skipped = applicable_cases(cfg)
    sums = measure(cfg, net, args.batches, args.seed, cases, args.weighting)
    own = own_regularizer(cfg, net, args.batches, args.seed)
    rows = {label: {n: sums[f"{label}|{n}"] / sums["denoise"] for n in NORMALIZATIONS} for label, _, _ in cases}
    what = f"checkpoint {args.ckpt} (EMA)" if args.ckpt else "freshly initialised network"
    table = [
        f"{what}; config {args.config} {' '.join(args.overrides)}; {_data(cfg)}; "
        f"{args.batches} batches of {cfg.train.batch_size}; "
        f"{_objective(cfg)}; spectral term {args.weighting}; "
        f"mean denoising loss {sums['denoise']:.4g}",
        "",
        "| loss | L_spec / L_denoise, paper | lambda for 10 %, paper | L_spec / L_denoise, scale_free "
        "| lambda for 10 %, scale_free |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, r in rows.items():
        cells = [f"{r[n]:.3g} | {0.1 / r[n]:.2g}" for n in NORMALIZATIONS]
        table.append(f"| {label} | {' | '.join(cells)} |")
    for label, why in skipped.items():
        table.append(f"| {label} | n/a: {why} | | | |")
    if own is not None:
        table += ["", f"The config's regularizer: lambda_eff * L_spec / L_denoise = {own['ratio']:.3g} ({own})."]
    payload = {
        "machine": machine("cpu"),
        "network": what,
        "weighting": args.weighting,
        "denoise": sums["denoise"],
        "ratios": rows,
        "skipped": skipped,
        "own": own,
    }
    md = write(args.name, payload, table)
    print("\n".join(table))
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
