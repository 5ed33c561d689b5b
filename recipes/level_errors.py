#!/usr/bin/env python
"""Per-level denoising errors of a vocoder run (DDPM or EDM): how good the denoiser is at each noise level.

    python ../../recipes/level_errors.py exp/baseline_curve --data data/asterisk_en/data/test \\
        --steps 1000,2000,5000,last --crops 16 --crop-length 4096 --seed 0

For each chosen checkpoint of each RUN (EMA weights, as sampling uses; `--steps` picks checkpoint
steps, "last" the run's last; default all) and each training level t (`--levels`, default all of the
schedule's, DiffWave's 50), the model denoises one FIXED set of held-out crops: `--crops` crops of
`--crop-length` samples from the data dir, each drawn (utterance, crop start, noise) from its own seed
derived from `--seed` as training draws its examples (audiodiff.data.datasets: AudioClips,
DiffusionExamples, item_seed). The same crops and the same standard noise z serve every level,
checkpoint and run, so columns differ only by the weights. The noising is training's own
(`DDPM.training_terms` with t and z given): with a data-dependent prior (diffusion.prior) the noise is z
coloured by it (PriorGrad: std(mel) * z) and the eps error is whitened by it (PriorGrad: divided by that
std), exactly as the training loss.

An EDM run (continuous sigma) has no steps: its levels are `--sigmas`, by default those of DiffWave's
50-step DDPM schedule ("diffwave"; any DDPM schedule preset, or values like '0.002,0.01,0.1'), level t
the t-th smallest, noised with `EDM.training_terms` (x = x0 + sigma z). Same crops, same z, same sigma:
the noisy input x is the DDPM run's at the same t, so an EDM column and a DDPM column compare row by row.
Every column must have the first column's sigmas (the tables pair rows by position); others are refused.
Every run must draw the same crops (the same data.sample_rate); the first run's mels split them for all.

Per level, with x = x_t / sqrt(abar_t) = x0 + sigma_t eps the noisy input in the sigma view and
x0_hat the model's clean estimate (sums over the samples of a subset, pooled over crops):

    eps_l1, eps_l2   mean |e|, mean e^2 of the eps error e = L^-1 (eps_hat - eps), whitened by the prior (PriorGrad:
                     divided by its std; N(0, I): as is), the DDPM training loss's L1 and L2; eps_hat - eps =
                     (x0 - x0_hat) / sigma_t for any prediction type, and EDM; whitened over whole crops, then split
    snr_db           10 log10(||x0||^2 / ||x0_hat - x0||^2)
    input_snr_db     10 log10(||x0||^2 / ||x - x0||^2): the SNR of x itself, what "no denoising" scores
    removed          1 - ||x0_hat - x0|| / ||x - x0||: 1 = all noise removed, 0 = x0_hat no better than x

Subsets: "all" samples; "loud" the samples of frames whose mel frame energy (PriorGrad's, rms:
sqrt of the summed mel power) is at or above the median over all frames of the crop set (the top
half); "silent" those at or below its 25th percentile (the bottom quartile). Frame k covers the
samples [k*hop - hop/2, k*hop + hop/2) (our STFT frames are centred).

Writes `<out>/levels.json`, `<out>/levels.md` (one table per measure: levels as rows, checkpoints
as columns, each cell all / loud / silent) and `<out>/levels.png` (SNR and noise removed against
the level, one line per checkpoint); `--out` defaults to <first run>/levels. JSON writes an
infinite SNR (a perfect estimate) as null.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).parent))
from ablate import _cpu_name  # noqa: E402  (the machine name the grids report)
from learning_curve import checkpoints  # noqa: E402

from audiodiff.builders import build_task, load_for_generation  # noqa: E402
from audiodiff.checkpoint import write_json  # noqa: E402
from audiodiff.config import with_overrides  # noqa: E402
from audiodiff.data.datasets import item_seed  # noqa: E402
from audiodiff.diffusion import DDPM  # noqa: E402
from audiodiff.diffusion.ddpm import SCHEDULE_PRESETS  # noqa: E402
from audiodiff.diffusion.prior import frame_energy, spread_frames  # noqa: E402
from audiodiff.diffusion.utils import append_dims  # noqa: E402

SUBSETS = ("all", "loud", "silent")
MEASURES = ("snr_db", "removed", "eps_l1", "eps_l2", "input_snr_db")
LOUD_QUANTILE, SILENT_QUANTILE = 0.5, 0.25


def crop_set(cfg, data: Path, crops: int, length: int, seed: int) -> dict[str, Tensor]:
    """The fixed crops of `data` for a vocoder config: {"x0" (N, 1, L), "cond", "z" (N, 1, L), "energy" (N, frames)}.

    Crop k is training's example (utterance perm[k mod n], item_seed(seed, k)) with perm a `seed`-permutation
    of the n utterances: its crop start and standard noise z come from that seed.
    """
    from torch.utils.data import default_collate

    cfg = with_overrides(cfg, [f"data.train={data}", f"data.segment={length}"], f"--data {data} --crop-length")
    task = build_task(cfg)
    examples = task.examples()
    perm = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed))
    batch = default_collate([examples[int(perm[k % len(perm)]), item_seed(seed, k)] for k in range(crops)])
    x0, cond = task.to_model(batch)
    energy = frame_energy(task.features(x0).double(), task.mel)
    return {"x0": x0, "cond": cond, "z": batch["noise"], "energy": energy, "hop": task.mel.hop}


def frame_masks(energy: Tensor, hop: int) -> tuple[dict[str, Tensor], dict]:
    """Per-sample masks (N, 1, frames * hop) of the subsets (module doc) and the split's thresholds."""
    loud_min = float(torch.quantile(energy.flatten(), LOUD_QUANTILE))
    silent_max = float(torch.quantile(energy.flatten(), SILENT_QUANTILE))
    frames = {
        "all": torch.ones_like(energy, dtype=torch.bool),
        "loud": energy >= loud_min,
        "silent": energy <= silent_max,
    }
    masks = {k: spread_frames(f, hop, "centre")[:, None] for k, f in frames.items()}
    rule = (
        f"loud: frames with mel frame energy >= its median over the crop set ({loud_min:.4g}); silent: <= its "
        f"25th percentile ({silent_max:.4g}); energy = sqrt(sum of the frame's mel power)"
    )
    split = {"rule": rule, "loud_min_energy": loud_min, "silent_max_energy": silent_max}
    return masks, split | {f"{k}_fraction": float(m.double().mean()) for k, m in masks.items()}


def errors(x0: Tensor, x0_hat: Tensor, x: Tensor, sigma: Tensor, prior, mask: Tensor) -> dict[str, float]:
    """The measures of the module doc on the samples `mask` selects.

    Args:
        x0, x0_hat, x: clean, estimated and noisy (sigma view) signals (B, 1, T).
        sigma: the level's sigma (B,). prior: the batch's data-dependent prior (`formulation.prior_noise`, a
            `NoiseOperator`: the eps error is whitened by it, as training's loss), None for N(0, I).
        mask: bool (B, 1, T).
    """
    x0, x0_hat, x = x0.double(), x0_hat.double(), x.double()
    eps_err = (x0 - x0_hat) / append_dims(sigma.double(), x0.ndim)
    if prior is not None:
        eps_err = prior.whiten(eps_err)
    mask = mask.expand_as(x0)
    eps_err = eps_err[mask]
    signal, left, given = (v.square()[mask].sum() for v in (x0, x0_hat - x0, x - x0))
    return {
        "snr_db": float(10 * torch.log10(signal / left)) if left > 0 else math.inf,
        "removed": float(1 - (left / given).sqrt()),
        "eps_l1": float(eps_err.abs().mean()),
        "eps_l2": float(eps_err.square().mean()),
        "input_snr_db": float(10 * torch.log10(signal / given)),
    }


def level_sigmas(formulation, sigmas: str | None) -> Tensor:
    """The sigma of each level (T,), increasing: a DDPM run's own steps; for EDM, `sigmas` (module doc).

    Raises:
        ValueError: `sigmas` for a DDPM run, or values that are not positive numbers.
    """
    if formulation.discrete:
        if sigmas is not None:
            raise ValueError(f"--sigmas {sigmas}: a DDPM run's levels are its own steps (--sigmas is for EDM runs)")
        return formulation.sigmas
    sigmas = sigmas or "diffwave"
    if sigmas in SCHEDULE_PRESETS:
        return DDPM.from_preset(sigmas).sigmas
    try:
        values = sorted(float(v) for v in sigmas.split(","))
    except ValueError:
        values = []
    if not values or not all(0 < v < math.inf for v in values):
        raise ValueError(
            f"--sigmas {sigmas!r}: want a DDPM schedule preset {list(SCHEDULE_PRESETS)} or positive numbers"
        )
    return torch.tensor(values, dtype=torch.float64)


@torch.no_grad()
def level_rows(net, formulation, crops: dict, masks: dict[str, Tensor], levels: list[int], batch: int,
               sigmas: Tensor | None = None) -> list[dict]:  # fmt: skip
    """One row per level t: {"t", "sigma", subset: errors(...)}, the crops noised with training's own
    `training_terms` (the prior's colouring included) at t (DDPM) or at sigmas[t] (EDM: `level_sigmas`) with the
    crops' fixed noise z."""
    x0, cond, z = crops["x0"], crops["cond"], crops["z"]
    prior = formulation.prior_noise(cond)
    sigmas = formulation.sigmas if sigmas is None else sigmas
    rows = []
    for t in levels:
        level = t if formulation.discrete else float(sigmas[t])
        parts = [
            formulation.training_terms(net, x0[i : i + batch], cond[i : i + batch], noise=z[i : i + batch],
                                       **{formulation.level_name: torch.full((len(x0[i : i + batch]),), level)})
            for i in range(0, len(x0), batch)
        ]  # fmt: skip
        x0_hat, x = (torch.cat([p[key] for p in parts]) for key in ("x0_hat", "x"))
        sigma = sigmas[t].expand(len(x0))
        row = {"t": t, "sigma": float(sigmas[t])}
        rows.append(row | {name: errors(x0, x0_hat, x, sigma, prior, m) for name, m in masks.items()})
    return rows


def chosen_checkpoints(run: Path, steps: list[int | str]) -> list[tuple[int, Path]]:
    """(step, file) of the checkpoints `steps` names ("last": the run's last; empty: all), in that order."""
    found = checkpoints(run)
    by_step = dict(found)
    chosen = []
    for want in steps or [s for s, _ in found]:
        step = found[-1][0] if want == "last" else want
        if step not in by_step:
            have = ", ".join(str(s) for s, _ in found)
            raise FileNotFoundError(f"{run / 'checkpoints'}: no checkpoint of step {step} (steps: {have})")
        if (step, by_step[step]) not in chosen:
            chosen.append((step, by_step[step]))
    return chosen


def check_model(cfg, ckpt: Path, levels: list[int], n_levels: int) -> None:
    """Refuse what the diagnostic cannot measure (one-line ValueError naming the checkpoint)."""
    if cfg.task != "vocoder":
        raise ValueError(f"{ckpt}: task={cfg.task}; the loud/silent split needs the mels of a task=vocoder run")
    bad = [t for t in levels if not 0 <= t < n_levels]
    if bad:
        raise ValueError(f"--levels {bad}: {ckpt} has levels 0-{n_levels - 1}")


def check_same_levels(ckpt: Path, rows: list[dict], columns: list[dict]) -> None:
    """Refuse a column whose levels' sigmas are not the first column's: the tables pair rows by position and
    label them with the first column's sigma (one-line ValueError naming the checkpoint)."""
    have, want = ([r["sigma"] for r in c] for c in (rows, columns[0]["rows"] if columns else rows))
    if len(have) != len(want) or not all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(have, want)):
        raise ValueError(
            f"{ckpt}: its levels are at sigma {[float(f'{v:.3g}') for v in have]}, the first column's at "
            f"{[float(f'{v:.3g}') for v in want]}; compare runs at the same sigmas (the same DDPM schedule; "
            "an EDM run takes --sigmas, default diffwave)"
        )


def measure(runs: list[Path], args: argparse.Namespace) -> dict:
    """Every chosen checkpoint of `runs` on the fixed crops: the result dict (module doc) without outputs."""
    result = {"runs": [str(r) for r in runs], "data": str(args.data), "crops": args.crops, "seed": args.seed,
              "crop_length": args.crop_length, "weights": "EMA", "checkpoints": []}  # fmt: skip
    for run in runs:
        chosen, crops = chosen_checkpoints(run, args.step_list), None
        for step, ckpt in chosen:
            start = time.perf_counter()
            cfg, net, formulation, _ = load_for_generation(ckpt, "cpu", use_ema=True)
            sigmas = level_sigmas(formulation, args.sigmas)
            levels = args.level_list or list(range(len(sigmas)))
            check_model(cfg, ckpt, levels, len(sigmas))
            if crops is None:  # a run's checkpoints share its data settings
                crops = crop_set(cfg, args.data, args.crops, args.crop_length, args.seed)
                if "split" not in result:  # the first run's mels pick every column's loud and silent samples
                    first, (masks, result["split"]) = crops, frame_masks(crops["energy"], crops["hop"])
                elif not all(torch.equal(crops[k], first[k]) for k in ("x0", "z")):
                    raise ValueError(f"{run}: its crops of {args.data} are not {runs[0]}'s (another "
                                     "data.sample_rate?); the columns must denoise the same samples")  # fmt: skip
            rows = level_rows(net, formulation, crops, masks, levels, args.batch_size, sigmas)
            check_same_levels(ckpt, rows, result["checkpoints"])
            seconds = round(time.perf_counter() - start, 1)
            result["checkpoints"].append(
                {"label": f"{args.labels.get(run, run.name)}@{step}", "run": str(run), "step": step,
                 "file": str(ckpt), "diffusion": cfg.diffusion.kind, "prior": cfg.diffusion.prior.kind,
                 "sigmas": None if formulation.discrete else args.sigmas or "diffwave", "seconds": seconds,
                 "rows": rows}
            )  # fmt: skip
            print(f"{run}@{step}: {len(levels)} levels in {seconds} s", flush=True)
    return result


def _cell(measure: str, value: float) -> str:
    if not math.isfinite(value):
        return "inf"
    return f"{value:.1f}" if measure.endswith("_db") else f"{value:.2f}" if measure == "removed" else f"{value:.3g}"


TITLES = {
    "snr_db": "x0 SNR (dB): 10 log10 ||x0||^2 / ||x0_hat - x0||^2",
    "removed": "fraction of the noise removed: 1 - ||x0_hat - x0|| / ||x - x0||",
    "eps_l1": "eps error, L1 (the DDPM training loss with loss_type l1)",
    "eps_l2": "eps error, L2 (mean square)",
    "input_snr_db": "SNR of the noisy input x itself (dB): what no denoising scores",
}


def markdown(result: dict, levels: list[int] | None = None, measures: tuple[str, ...] = MEASURES) -> str:
    """The tables: one per measure, levels as rows (`levels`: only those), checkpoints as columns,
    each cell "all / loud / silent"."""
    ckpts = result["checkpoints"]
    lines = [
        f"runs {', '.join(result['runs'])}; commit {result['commit']}, {result['machine']}; {result['weights']} "
        f"weights; {result['crops']} crops of {result['crop_length']} samples from {result['data']}, seed "
        f"{result['seed']} (the same crops and noise for every column). Each cell: all / loud / silent samples; "
        f"{result['split']['rule']}.",
    ]
    for measure in measures:
        lines += ["", f"{TITLES[measure]}", "", "| t | sigma | " + " | ".join(c["label"] for c in ckpts) + " |"]
        lines.append("|---:|---:|" + "---|" * len(ckpts))
        for i, row in enumerate(ckpts[0]["rows"]):
            if levels and row["t"] not in levels:
                continue
            cells = [" / ".join(_cell(measure, c["rows"][i][s][measure]) for s in SUBSETS) for c in ckpts]
            lines.append(f"| {row['t']} | {row['sigma']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """levels.png: x0 SNR (top, with each run's input SNR in black) and the noise removed (bottom) against the level,
    one line per checkpoint, a column per subset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(SUBSETS), figsize=(4 * len(SUBSETS), 6), sharex=True, squeeze=False)
    for col, subset in enumerate(SUBSETS):
        for c in result["checkpoints"]:
            t = [r["t"] for r in c["rows"]]
            line = axes[0][col].plot(t, [r[subset]["snr_db"] for r in c["rows"]], "-", label=c["label"])[0]
            axes[1][col].plot(t, [r[subset]["removed"] for r in c["rows"]], "-", color=line.get_color())
        runs = {}
        for c in result["checkpoints"]:  # the input's SNR, once per run: its prior sets it
            runs.setdefault(c["run"], c["rows"])
        for k, (run, rows) in enumerate(runs.items()):
            axes[0][col].plot([r["t"] for r in rows], [r[subset]["input_snr_db"] for r in rows], ("k--", "k:")[k % 2],
                              lw=0.8, label=f"noisy input ({Path(run).name})")  # fmt: skip
        axes[0][col].set_title(f"x0 SNR (dB), {subset} samples", fontsize=9)
        axes[1][col].set_title(f"fraction of noise removed, {subset} samples", fontsize=9)
        axes[1][col].set_xlabel("level t (0: least noise)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def finite(obj):
    """`obj` with non-finite floats as None (strict JSON)."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def level_errors(runs: list[Path], out: Path, args: argparse.Namespace) -> dict:
    """Measure, then write levels.json/.md/.png under `out`; the result dict (infinite values kept)."""
    result = measure(runs, args)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    )
    result |= {
        "commit": commit.stdout.strip() or "unknown",
        "machine": f"{_cpu_name()}, {torch.get_num_threads()} thread(s)",
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "levels.json", finite(result))
    (out / "levels.md").write_text(markdown(result))
    plot(result, out / "levels.png")
    return result


def _numbers(ap: argparse.ArgumentParser, option: str, text: str, words: tuple[str, ...] = ()) -> list:
    """'1000,2000,last' / '0-9,20' -> ints (and the allowed `words`), or an argparse error naming the option."""
    from audiodiff.generate import parse_seeds

    items = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            items += [part] if part in words else parse_seeds(part)
        except ValueError:
            allowed = " or ".join(("numbers like '1000,2000'", "ranges '0-9'", *(repr(w) for w in words)))
            ap.error(f"{option} {text!r}: want {allowed}")
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+", help="Run directories with checkpoints/ckpt-<step>.pt.")
    ap.add_argument("--data", type=Path, required=True, help="Held-out data dir (wav.scp) or folder of audio.")
    ap.add_argument("--steps", default="", help="Checkpoint steps, e.g. '1000,2000,last' (default: all).")
    ap.add_argument("--levels", default="", help="Training levels t, e.g. '0-9,20,49' (default: all).")
    ap.add_argument("--sigmas", default=None, help="EDM runs: the levels' sigmas, a DDPM schedule preset or "
                    "values like '0.002,0.01' (default: diffwave, the DDPM baseline's 50).")  # fmt: skip
    ap.add_argument("--crops", type=int, default=16, help="Number of held-out crops.")
    ap.add_argument("--crop-length", type=int, default=4096, help="Samples per crop (a multiple of the hop).")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the crops and their noise.")
    ap.add_argument("--batch-size", type=int, default=16, help="Crops per forward pass.")
    ap.add_argument("--label", action="append", default=[], help="RUN=NAME: a run's column name (default: folder).")
    ap.add_argument("--out", type=Path, default=None, help="Output folder (default <first run>/levels).")
    args = ap.parse_args(argv)
    for run in args.runs:
        if not run.is_dir():
            ap.error(f"run directory not found: {run}")
    if not args.data.exists():
        ap.error(f"--data: not found: {args.data} (want a data dir with wav.scp or a folder of audio)")
    if args.crops < 1 or args.batch_size < 1 or args.crop_length < 1:
        ap.error("--crops, --crop-length and --batch-size must be >= 1")
    args.step_list = _numbers(ap, "--steps", args.steps, ("last",))
    args.level_list = _numbers(ap, "--levels", args.levels)
    labels = dict(item.partition("=")[::2] for item in args.label)
    args.labels = {Path(run): name for run, name in labels.items() if name}
    if len(args.labels) != len(args.label):
        ap.error(f"--label {args.label}: want RUN=NAME")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    out = args.out or args.runs[0] / "levels"
    try:
        result = level_errors(args.runs, out, args)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"level_errors: {err}") from None
    print((out / "levels.md").read_text())
    return result


if __name__ == "__main__":
    main()
