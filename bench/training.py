"""Training throughput over a plain eager fp32 reference, same weights, same batch, interleaved.

Models (--models, comma list):
  diffwave_base     DiffWave base (30 x 64, mel-conditioned), batch 2 x 15872 on CPU (62 frames, the paper's crop);
                    reference: bench/reference.py's lmnt-style network
  vocoder16k_small  the 16 kHz mel-conditioned small vocoder (12 x 32, hop 128), batch 4 x 4096
  small_uncond      the unconditional small DiffWave (12 x 32), batch 4 x 4096
  unet32            the image UNet (configs/model/unet_image.yaml) at 32 x 32, batch 8
  unet_mel          the mel UNet (configs/model/unet_mel.yaml) on 80-band log-mels x 64 frames, batch 8
Cases per model:
  reference fp32    the straightforward step, eager float32: DDPM (uniform integer t, eps L1) or EDM
                    (log-normal sigma, weighted MSE), Adam; on our network with the same weights
                    (diffwave_base: the lmnt-style reference network)
  reference amp     (CUDA, diffwave_base) the same with fp16 autocast + GradScaler
  ours <mode>       audiodiff.train.train_step (what train() runs: SpectralObjective, gradient clipping,
                    AdamW, EMA; bench/models.py modes); "fast_cpu" = train.fast_cpu=auto resolved on this
                    machine (bf16 autocast where the CPU has native bf16, else float32)
  ours <mode> + R   the same with regularizer R (lambda 1e-4): its added cost over `ours <mode>`
Throughput = training examples per second; every case of one model timed round by round.
Usage: python bench/training.py [--device cuda] [--models ...] [--rounds 5] [--regs amp,haar]
Writes bench/results/training[_cuda].json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audiodiff.diffusion import DDPM, EDM, SpectralObjective  # noqa: E402
from audiodiff.fastcpu import resolve_fast_cpu  # noqa: E402
from audiodiff.losses import build_spectral_loss  # noqa: E402
from audiodiff.models import DIFFWAVE_PRESETS, DiffWave, DiffWaveConfig, UNet, UNetConfig  # noqa: E402
from audiodiff.models.lmnt import ours_to_lmnt  # noqa: E402
from bench.common import machine, time_interleaved, write  # noqa: E402
from bench.models import AUDIO_REGS, IMAGE_REGS, make_step  # noqa: E402
from bench.reference import ReferenceDiffWave  # noqa: E402

SMALL = dict(layers=12, channels=32, cycle=6, embed_dim=128)
MODELS = {  # name: (network builder, formulation, CPU batch, example shape, condition shape or None)
    "diffwave_base": (lambda: DiffWave(DIFFWAVE_PRESETS["base"]), "ddpm", 2, (1, 15872), (80, 62)),
    "vocoder16k_small": (lambda: DiffWave(DiffWaveConfig(**SMALL, hop=128)), "ddpm", 4, (1, 4096), (80, 32)),
    "small_uncond": (lambda: DiffWave(DiffWaveConfig(**SMALL, n_mels=0)), "ddpm", 4, (1, 4096), None),
    "unet32": (
        lambda: UNet(UNetConfig(channels=64, channel_mult=(1, 2, 2), attn_levels=(1,), embedding="fourier")),
        "edm", 8, (1, 32, 32), None,
    ),
    "unet_mel": (
        lambda: UNet(UNetConfig(channels=32, channel_mult=(1, 2, 2), attn_levels=(2,), embedding="fourier")),
        "edm", 8, (1, 80, 64), None,
    ),
}  # fmt: skip


def reference_step(model, opt, audio, mel, alpha_cum, scaler=None):
    """One DiffWave training step written the plain way."""
    device = audio.device.type

    def step():
        t = torch.randint(0, len(alpha_cum), (audio.shape[0],), device=audio.device)
        a = alpha_cum[t].view(-1, 1, 1)
        noise = torch.randn_like(audio)
        noisy = a.sqrt() * audio + (1 - a).sqrt() * noise
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.float16, enabled=scaler is not None):
            loss = F.l1_loss(model(noisy, t.float(), mel), noise)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    return step


def reference_edm_step(model, opt, x0, sigma_data: float = 0.5):
    """One EDM training step (Karras et al. 2022, Table 1) written the plain way."""

    def step():
        sigma = (torch.randn(x0.shape[0], 1, 1, 1, device=x0.device) * 1.2 - 1.2).exp()
        noisy = x0 + sigma * torch.randn_like(x0)
        total = sigma**2 + sigma_data**2
        out = model(noisy / total.sqrt(), sigma.log().flatten() / 4, None)
        denoised = sigma_data**2 / total * noisy + sigma * sigma_data / total.sqrt() * out
        loss = (total / (sigma * sigma_data) ** 2 * (denoised - x0) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def model_cases(name: str, args, modes: list[str]) -> tuple[dict, int]:
    """{case: step function} for one model, all from the same initial weights; and the batch."""
    build, kind, cpu_batch, shape, cond_shape = MODELS[name]
    dev, cuda = args.device, args.device.startswith("cuda")
    batch = args.batch or (16 if cuda else cpu_batch)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x0 = (0.1 * torch.randn(batch, *shape, generator=g)).to(dev)
    cond = torch.randn(batch, *cond_shape, generator=g).to(dev) if cond_shape else None
    formulation = (DDPM.from_preset("diffwave", loss_type="l1") if kind == "ddpm" else EDM(sigma_data=0.5)).to(dev)
    net0 = build()
    if name != "diffwave_base" and isinstance(net0, DiffWave):
        torch.nn.init.normal_(net0.out.weight, std=0.02)  # a trained-like net: the output is not all zero
    regs = AUDIO_REGS if kind == "ddpm" else IMAGE_REGS
    wanted = ["none", *(r for r in (args.regs.split(",") if args.regs else regs) if r != "none")]

    def copy():
        net = build().to(dev)
        net.load_state_dict(net0.state_dict())
        return net

    cases = {}
    ref = ReferenceDiffWave().to(dev) if name == "diffwave_base" else copy()
    if name == "diffwave_base":
        ref.load_state_dict(ours_to_lmnt(net0.state_dict()))
    opt = torch.optim.Adam(ref.parameters(), lr=2e-4)
    if kind == "ddpm":
        alpha_cum = torch.cumprod(1 - formulation.betas.to(dev, torch.float32), 0)
        cases["reference fp32"] = reference_step(ref, opt, x0, cond, alpha_cum)
        if cuda and name == "diffwave_base":
            ref16 = ReferenceDiffWave().to(dev)
            ref16.load_state_dict(ref.state_dict())
            opt16 = torch.optim.Adam(ref16.parameters(), lr=2e-4)
            cases["reference amp"] = reference_step(ref16, opt16, x0, cond, alpha_cum, torch.amp.GradScaler())
    else:
        cases["reference fp32"] = reference_edm_step(ref, opt, x0)
    for mode in modes:
        if mode == "fast_cpu":
            autocast = not cuda and resolve_fast_cpu("auto", torch.device(dev))[0] == "on"
        else:
            autocast = mode.startswith("bf16")
        for reg in wanted:
            net = copy()
            opt = torch.optim.AdamW(
                net.parameters(), lr=2e-4, weight_decay=0.0, fused=(cuda and mode != "fp32") or None
            )
            call = net
            objective = SpectralObjective(formulation, build_spectral_loss(regs[reg]), lam=1e-4).to(dev)
            if "compile" in mode or "graphs" in mode:
                call = torch.compile(net, mode="reduce-overhead" if "graphs" in mode else None)
                if regs[reg]:
                    objective.spectral.compile(mode="reduce-overhead" if "graphs" in mode else None, fullgraph=True)
            step = make_step(call, objective, opt, x0, cond, autocast, dev, "graphs" in mode)
            cases[f"ours {mode}" + ("" if reg == "none" else f" + {reg}")] = step
    return cases, batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="vocoder16k_small,small_uncond,unet32,unet_mel", help=", ".join(MODELS))
    ap.add_argument("--batch", type=int, default=None, help="default 16 on CUDA, per model on CPU")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--regs", default=None, help="regularizers (bench/models.py names); default all of the model's")
    ap.add_argument("--modes", default=None, help="our modes; default fast_cpu on CPU, bf16,bf16_graphs on CUDA")
    ap.add_argument("--tag", default="", help="suffix of the results file names")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    rounds = args.rounds or (20 if cuda else 5)
    modes = (args.modes or ("bf16,bf16_graphs" if cuda else "fast_cpu")).split(",")
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        ap.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    t0 = time.perf_counter()
    results, table = {}, []
    for name in args.models.split(","):
        cases, batch = model_cases(name, args, modes)
        timings = time_interleaved(cases, args.device, rounds, warmup=args.warmup)
        base = timings["reference fp32"]["median_ms"]
        for case, t in timings.items():
            t["examples_per_s"] = batch / (t["median_ms"] / 1e3)
            t["speedup_vs_reference_fp32"] = base / t["median_ms"]
            own = case.split(" + ")[0]
            if " + " in case:
                t["regularizer_overhead"] = t["median_ms"] / timings[own]["median_ms"] - 1
        results[name] = {"batch": batch, "timings": timings}
        table += [
            f"## {name}, batch {batch}",
            "",
            "| case | median ms / step | examples / s | vs reference fp32 | regularizer's added cost |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {k} | {v['median_ms']:.1f} | {v['examples_per_s']:.2f} | {v['speedup_vs_reference_fp32']:.2f}x | "
                + (f"{100 * v['regularizer_overhead']:+.1f}% |" if "regularizer_overhead" in v else "- |")
                for k, v in timings.items()
            ),
            "",
        ]
        print("\n".join(table[-len(timings) - 5 :]), flush=True)
    fast = resolve_fast_cpu("auto", torch.device(args.device))
    payload = {
        "machine": machine(args.device),
        "fast_cpu": fast[1],
        "results": results,
        "rounds": rounds,
        "wall_s": time.perf_counter() - t0,
    }
    table = [f"{fast[1]}; {rounds} interleaved rounds, median.", "", *table]
    md = write("training", payload, table, ("_cuda" if cuda else "") + (f"_{args.tag}" if args.tag else ""))
    print(md.read_text())


if __name__ == "__main__":
    main()
