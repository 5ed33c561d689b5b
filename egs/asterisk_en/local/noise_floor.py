#!/usr/bin/env python
"""How much of a vocoder's wide-band PESQ is its noise floor: PESQ of the test prompts plus white noise,
and the level of each vocoded set in the frames where the prompt is silent.

    python local/noise_floor.py data/curve8 [--gen exp/baseline_curve/curve/step_00009691/generated ...]
        [--stds 0,0.001,0.002,0.004,0.0065,0.01,0.02] [--out noise_floor]

Table 1: mean wide-band PESQ of every prompt against itself plus N(0, std^2) white noise (seeded; the
prompts' peak is about 1). Table 2, per --gen folder (clips named <utt>.wav, as `generate --mels-from`
writes them): its mean PESQ, the RMS of its clip and of the prompt in the prompt's silent frames (512
samples whose RMS is under --silent, 0.003 = -50 dBFS), and the white-noise std whose PESQ (table 1,
interpolated in log std) equals the set's. A vocoded set whose silence holds noise at the level that alone
gives its PESQ is limited by its noise floor, not by its speech. Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from audiodiff.audio.io import load_audio
from audiodiff.data.kaldi import read_scp
from audiodiff.eval.metrics import pesq_wb

FRAME = 512


def noisy_pesq(clips: dict[str, torch.Tensor], stds: list[float], seed: int = 0) -> list[float]:
    """Mean PESQ-wb of each clip against itself plus white noise of each std (one generator for all)."""
    gen = torch.Generator().manual_seed(seed)
    means = []
    for std in stds:
        scores = [pesq_wb(x, x + std * torch.randn(x.shape, generator=gen, dtype=x.dtype)) for x in clips.values()]
        means.append(float(np.mean([s for s in scores if s is not None])))
    return means


def silent_rms(ref: torch.Tensor, gen: torch.Tensor, silent: float) -> tuple[float, float, float]:
    """(share of silent frames, RMS of ref there, RMS of gen there): frames of FRAME samples of ref under silent."""
    n = min(ref.shape[-1], gen.shape[-1]) // FRAME * FRAME
    r, g = ref[:n].reshape(-1, FRAME), gen[:n].reshape(-1, FRAME)
    quiet = r.square().mean(1).sqrt() < silent
    if not quiet.any():
        return 0.0, float("nan"), float("nan")
    rms = lambda frames: float(frames[quiet].square().mean().sqrt())  # noqa: E731
    return float(quiet.float().mean()), rms(r), rms(g)


def matching_std(pesq: float, stds: list[float], curve: list[float]) -> float | None:
    """The white-noise std whose PESQ is `pesq`, interpolated in log std over the positive stds (None outside)."""
    pts = sorted((p, s) for s, p in zip(stds, curve) if s > 0)
    ps, ss = [p for p, _ in pts], [np.log(s) for _, s in pts]
    if not ps or not ps[0] <= pesq <= ps[-1]:
        return None
    return float(np.exp(np.interp(pesq, ps, ss)))


def score_set(folder: Path, clips: dict[str, torch.Tensor], silent: float, stds, curve) -> dict:
    missing = [u for u in clips if not (folder / f"{u}.wav").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: no {missing[0]}.wav for the reference's utterance {missing[0]!r}")
    rows = []
    for utt, ref in clips.items():
        gen = load_audio(folder / f"{utt}.wav", 16000).double()
        share, ref_rms, gen_rms = silent_rms(ref, gen, silent)
        rows.append((pesq_wb(ref, gen), share, ref_rms, gen_rms))
    pesq = float(np.mean([r[0] for r in rows if r[0] is not None]))
    return {
        "gen": str(folder),
        "pesq_wb": pesq,
        "silent_share": float(np.mean([r[1] for r in rows])),
        "ref_rms_silent": float(np.nanmean([r[2] for r in rows])),
        "gen_rms_silent": float(np.nanmean([r[3] for r in rows])),
        "white_noise_std_of_same_pesq": matching_std(pesq, stds, curve),
    }


def markdown(result: dict) -> str:
    lines = [f"Reference: {result['ref']} ({result['n_clips']} clips), white noise seed {result['seed']}.", ""]
    lines += ["| white noise std | dBFS | PESQ-wb |", "|---:|---:|---:|"]
    for s, p in zip(result["stds"], result["pesq_with_noise"]):
        lines.append(f"| {s:g} | {20 * np.log10(s) if s > 0 else float('-inf'):.1f} | {p:.3f} |")
    if result["sets"]:
        lines += ["", f"Silent frames: {FRAME}-sample frames of the prompt under RMS {result['silent']:g}.", ""]
        lines += ["| set | PESQ-wb | silent share | prompt RMS there | set RMS there | noise std of same PESQ |"]
        lines.append("|---|---:|---:|---:|---:|---:|")
        for s in result["sets"]:
            std = s["white_noise_std_of_same_pesq"]
            lines.append(
                f"| {s['gen']} | {s['pesq_wb']:.3f} | {s['silent_share']:.2f} | {s['ref_rms_silent']:.4f} "
                f"| {s['gen_rms_silent']:.4f} | {'-' if std is None else f'{std:.4f}'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", type=Path, help="a Kaldi-style data directory of 16 kHz prompts (wav.scp)")
    parser.add_argument("--gen", type=Path, nargs="*", default=[], help="folders of vocoded <utt>.wav")
    parser.add_argument("--stds", default="0,0.001,0.002,0.004,0.0065,0.01,0.02")
    parser.add_argument("--silent", type=float, default=0.003, help="frame RMS under which a prompt is silent")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("noise_floor"))
    args = parser.parse_args(argv)
    try:
        stds = [float(s) for s in args.stds.split(",")]
    except ValueError:
        parser.error(f"--stds: {args.stds!r} is not a comma-separated list of numbers")
    if any(s < 0 for s in stds):
        parser.error(f"--stds: {args.stds!r} has a negative std")
    clips = {u: load_audio(p, 16000).double() for u, p in read_scp(args.ref / "wav.scp").items()}
    curve = noisy_pesq(clips, stds, args.seed)
    sets = [score_set(g, clips, args.silent, stds, curve) for g in args.gen]
    result = {"ref": str(args.ref), "n_clips": len(clips), "seed": args.seed, "stds": stds}
    result |= {"pesq_with_noise": curve, "silent": args.silent, "sets": sets}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result), end="")
    return result


if __name__ == "__main__":
    main()
