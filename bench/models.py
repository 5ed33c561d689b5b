"""Training-step time of DiffWave base/small and the UNet, with and without each regularizer.

One step = objective forward (network + spectral loss) + backward + AdamW update. Modes:
  fp32          eager float32 (the plain reference; default AdamW)
  bf16          eager with bf16 autocast (CUDA only), fused AdamW
  bf16_compile  bf16 autocast + torch.compile of the network and of the spectral loss, fused AdamW
  bf16_graphs   as bf16_compile with CUDA graphs (mode="reduce-overhead") for both
  fp32_compile  float32 + torch.compile (CPU's optimized mode)
All timings of one model are interleaved round by round. Overhead of a regularizer is
(step with it - baseline step) / baseline step, within the same mode.

Usage: python bench/models.py [--device cuda] [--batch 16] [--rounds 20]
Writes bench/results/models[_cuda].json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audiodiff.diffusion import DDPM, EDM, SpectralObjective  # noqa: E402
from audiodiff.losses import build_spectral_loss  # noqa: E402
from audiodiff.models import DIFFWAVE_PRESETS, DiffWave, UNet, UNetConfig  # noqa: E402
from audiodiff.train import train_step  # noqa: E402
from bench.common import machine, time_interleaved, write  # noqa: E402

AUDIO_REGS = {
    "none": [],
    "amp": [{"name": "amp"}],
    "amp_phase": [{"name": "amp_phase"}],
    "haar": [{"name": "wavelet", "kwargs": {"wavelet": "haar"}}],
    "bior1.3": [{"name": "wavelet", "kwargs": {"wavelet": "bior1.3"}}],
    "mrstft": [{"name": "mrstft"}],
    "mel": [{"name": "mel", "kwargs": {"sample_rate": 22050}}],
}
IMAGE_REGS = {k: AUDIO_REGS[k] for k in ("none", "amp", "amp_phase", "haar", "bior1.3")}


def build(model: str, batch: int, samples: int, device: str):
    """(network, formulation, regularizer table, x0, cond)."""
    g = torch.Generator().manual_seed(0)
    if model.startswith("diffwave"):
        net = DiffWave(DIFFWAVE_PRESETS[model.split("_", 1)[1]])
        frames = samples // 256
        x0 = (0.1 * torch.randn(batch, 1, frames * 256, generator=g)).to(device)
        cond = torch.randn(batch, 80, frames, generator=g).to(device)
        return net, DDPM.from_preset("diffwave", loss_type="l1"), AUDIO_REGS, x0, cond
    net = UNet(UNetConfig(channels=64, channel_mult=(1, 2, 2, 2), attn_levels=(2,)))
    x0 = torch.randn(batch, 1, 80, 64, generator=g).to(device)
    return net, EDM(sigma_data=0.5), IMAGE_REGS, x0, None


def make_step(net_call, objective, opt, x0, cond, autocast: bool, device: str, graphs: bool):
    """One call = audiodiff.train.train_step (what train() runs): forward, backward, clip, AdamW, EMA."""
    ema = [p.detach().clone() for p in opt.param_groups[0]["params"]]

    def step():
        train_step(
            lambda: (x0, cond, {}),
            net_call,
            objective,
            opt,
            ema,
            0.999,
            grad_clip=1.0,
            autocast=autocast,
            graphs=graphs,
        )

    return step


def graph_breaks(net, x0, cond, formulation) -> int:
    noise_cond = torch.ones(x0.shape[0], device=x0.device)
    explanation = torch._dynamo.explain(net)(x0, noise_cond, cond)
    torch._dynamo.reset()
    return explanation.graph_break_count


def run_model(model: str, modes: list[str], args) -> dict:
    dev = args.device
    net, formulation, regs, x0, cond = build(model, args.batch, args.samples, dev)
    net = net.to(dev)
    formulation = formulation.to(dev)
    result = {"params": sum(p.numel() for p in net.parameters()), "modes": {}}
    result["graph_breaks"] = graph_breaks(net, x0, cond, formulation)
    for mode in modes:
        torch.manual_seed(0)
        fused = dev.startswith("cuda") and mode != "fp32"
        opt = torch.optim.AdamW(net.parameters(), lr=2e-4, fused=fused or None)
        net_call = net
        t0 = time.perf_counter()
        if "compile" in mode or "graphs" in mode:
            net_call = torch.compile(net, mode="reduce-overhead" if "graphs" in mode else None)
        cases = {}
        for reg, entries in regs.items():
            objective = SpectralObjective(formulation, build_spectral_loss(entries), lam=1e-4).to(dev)
            if net_call is not net and entries:
                objective.spectral.compile(mode="reduce-overhead" if "graphs" in mode else None, fullgraph=True)
            cases[reg] = make_step(net_call, objective, opt, x0, cond, mode.startswith("bf16"), dev, "graphs" in mode)
        try:
            timings = time_interleaved(cases, dev, args.rounds, warmup=args.warmup)
        except Exception as err:  # record the failure of one mode and keep measuring the others
            result["modes"][mode] = {"error": f"{type(err).__name__}: {err}"[:500]}
            continue
        base = timings["none"]["median_ms"]
        for t in timings.values():
            t["overhead_vs_none"] = t["median_ms"] / base - 1
        result["modes"][mode] = {"timings": timings, "setup_s": time.perf_counter() - t0}
        torch._dynamo.reset()
    ref = result["modes"].get(modes[0], {}).get("timings", {}).get("none")
    for res in result["modes"].values():
        if ref and "timings" in res:
            res["speedup_vs_" + modes[0]] = ref["median_ms"] / res["timings"]["none"]["median_ms"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default=None, help="comma list of diffwave_base, diffwave_small, unet")
    ap.add_argument("--modes", default=None, help="comma list; default fp32,bf16,bf16_compile,bf16_graphs on CUDA")
    ap.add_argument("--batch", type=int, default=None, help="default 16 on CUDA, 2 on CPU")
    ap.add_argument("--samples", type=int, default=15872, help="audio crop (62 frames of 256, the paper's)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tag", default="", help="suffix of the results file names")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    args.batch = args.batch or (16 if cuda else 2)
    args.rounds = args.rounds or (20 if cuda else 4)
    models = (args.models or ("diffwave_base,diffwave_small,unet" if cuda else "diffwave_small,unet")).split(",")
    modes = (args.modes or ("fp32,bf16,bf16_compile,bf16_graphs" if cuda else "fp32")).split(",")
    if cuda:
        torch.backends.cudnn.benchmark = True
    results = {m: run_model(m, modes, args) for m in models}
    payload = {"machine": machine(args.device), "batch": args.batch, "samples": args.samples, "results": results}
    table = []
    for model, res in results.items():
        table += [
            f"## {model} ({res['params'] / 1e6:.2f}M parameters, batch {args.batch}, "
            f"graph breaks under torch.compile: {res['graph_breaks']})",
            "",
        ]
        ok = [m for m in modes if "timings" in res["modes"].get(m, {})]
        table += ["| regularizer | " + " | ".join(f"{m} ms (overhead)" for m in ok) + " |", "|---|" + "---:|" * len(ok)]
        for reg in res["modes"][ok[0]]["timings"] if ok else []:
            cells = []
            for m in ok:
                t = res["modes"][m]["timings"][reg]
                cells.append(f"{t['median_ms']:.1f} ({100 * t['overhead_vs_none']:+.1f}%)")
            table.append(f"| {reg} | " + " | ".join(cells) + " |")
        speed = ", ".join(f"{m} {res['modes'][m]['speedup_vs_' + modes[0]]:.2f}x" for m in ok)
        table += ["", f"Baseline-step speed-up over {modes[0]}: {speed}", ""]
        for m, r in res["modes"].items():
            if "error" in r:
                table += [f"{m} failed: {r['error']}", ""]
    md = write("models", payload, table, ("_cuda" if cuda else "") + (f"_{args.tag}" if args.tag else ""))
    print(md.read_text())


if __name__ == "__main__":
    main()
