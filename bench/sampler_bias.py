"""How much does a sampler alone bend the spectrum? Samplers driven by the exact denoiser of a Gaussian process.

For a corpus with an analytic power spectrum (the `ar` corpus's `analytic_psd.json`), the exact
denoiser E[x0 | x] is a per-frequency Wiener gain (audiodiff.eval.psd.wiener_denoiser). Each case
(a config's formulation and sampler, with the sampler and step count optionally changed) samples
`--clips` clips through audiodiff's own sampler code with that denoiser in place of a network, and
the clips' per-band PSD error against the analytic PSD is reported (the `band_psd` metric). A
perfect network sampled this way would score exactly this, so a trained model's band error should
be read next to its sampler's row here.

    python bench/sampler_bias.py egs/ar/data/ar/analytic_psd.json \\
        --case egs/ar/conf/baseline.yaml --case egs/ar/conf/baseline.yaml,ddim,50 \\
        --case egs/ar/conf/edm.yaml,heun,18 --case egs/ar/conf/edm.yaml

A case is CONFIG[,SAMPLER[,STEPS]]; without cases the list above is run (plus DDPM's 1000-step
schedule, all steps). Writes bench/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from audiodiff.builders import build_formulation  # noqa: E402
from audiodiff.config import load_config  # noqa: E402
from audiodiff.eval.psd import band_psd_error, load_analytic_psd, wiener_denoiser  # noqa: E402
from audiodiff.sampling import run_plan, sampling_plan  # noqa: E402
from bench.common import machine, write  # noqa: E402

AR = "egs/ar/conf"
DEFAULT_CASES = [
    f"{AR}/baseline.yaml",
    f"{AR}/baseline.yaml,ddim,50",
    f"{AR}/baseline.yaml,ddpm,1000,diffusion.schedule=ddpm",
    f"{AR}/edm.yaml,heun,18",
    f"{AR}/edm.yaml",
    f"{AR}/edm.yaml,heun,80",
]


def parse_case(text: str) -> tuple[str, str | None, int | None, list[str]]:
    """CONFIG[,SAMPLER[,STEPS[,key=value...]]] -> (config, sampler or None, steps or None, overrides)."""
    parts = text.split(",")
    config, sampler = parts[0], (parts[1] or None) if len(parts) > 1 else None
    steps = int(parts[2]) if len(parts) > 2 and parts[2] else None
    return config, sampler, steps, parts[3:]


def run_case(text: str, spec: dict, clips: int, length: int) -> dict:
    """Sample `clips` clips of `length` samples with the Wiener denoiser; the band_psd summary."""
    config, sampler, steps, overrides = parse_case(text)
    path = Path(config) if Path(config).is_file() else ROOT / config
    cfg = load_config(path, ["name=sampler_bias", "data.train=unused", *overrides])
    formulation = build_formulation(cfg)
    sampler = sampler or cfg.sample.sampler
    plan = sampling_plan(cfg, formulation, sampler, steps or cfg.sample.steps)
    seeds, denoiser = list(range(clips)), wiener_denoiser(spec, length)
    out = run_plan(plan, denoiser, formulation, seeds, (1, length), dtype=torch.float64)
    sigmas = plan[1]
    result = band_psd_error(out[:, 0].numpy(), spec)
    label = f"{path.name} {cfg.diffusion.kind} {sampler} {len(sigmas) - 1} levels"
    label += f" (sigma {float(sigmas[-2]):.3g}..{float(sigmas[0]):.3g})" + (
        f" {' '.join(overrides)}" if overrides else ""
    )
    return {"case": text, "label": label, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("psd", help="analytic_psd.json (written by `audiodiff prepare ar`)")
    parser.add_argument("--case", action="append", default=[], help="CONFIG[,SAMPLER[,STEPS[,key=value...]]]")
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--length", type=int, default=0, help="samples per clip (default: the corpus's clip length)")
    parser.add_argument("--name", default="sampler_bias")
    args = parser.parse_args()
    spec = load_analytic_psd(args.psd)
    length = args.length or int(spec.get("options", {}).get("length", 2048))
    rows = [run_case(case, spec, args.clips, length) for case in args.case or DEFAULT_CASES]
    edges = [f"{b['lo_hz'] / 1000:g}-{b['hi_hz'] / 1000:g}" for b in rows[0]["bands"]]
    table = [
        f"Exact (Wiener) denoiser, {args.clips} clips of {length} samples; band error in dB (sampled minus analytic),",
        "bands in kHz; `99%`: the largest |error| over the bands that carry 99% of the energy.",
        "",
        "| sampler | 99% | " + " | ".join(edges) + " |",
        "|---|---:|" + "---:|" * len(edges),
    ]
    for r in rows:
        table.append(
            f"| {r['label']} | {r['max_db_99']:.2f} | " + " | ".join(f"{b['error_db']:+.2f}" for b in r["bands"]) + " |"
        )
    payload = {"machine": machine("cpu"), "psd": args.psd, "clips": args.clips, "length": length, "rows": rows}
    print(write(args.name, payload, table).read_text())


if __name__ == "__main__":
    main()
