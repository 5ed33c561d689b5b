"""Training throughput of DiffWave base: audiodiff vs a plain eager reference, same weights, same batch.

  reference fp32     bench/reference.py's network and the straightforward DiffWave training step
                     (uniform integer t, eps-prediction L1, Adam), eager float32
  reference amp      the same with fp16 autocast + GradScaler (what lmnt-com/diffwave does on GPUs)
  ours <mode>        audiodiff.train.train_step (what train() runs: SpectralObjective + DiffWave, gradient
                     clipping, AdamW, EMA; bench/models.py modes), no regularizer; results written
                     before train_step existed timed objective + backward + AdamW only
  ours <mode> + amp  the same with the AMP regularizer (lambda 1e-4)
Throughput = training examples per second (each a 62-frame, 15872-sample crop as in the paper).
Timings are interleaved round by round.
Usage: python bench/training.py [--device cuda] [--batch 16] [--rounds 10]
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
from audiodiff.diffusion import DDPM, SpectralObjective  # noqa: E402
from audiodiff.losses import build_spectral_loss  # noqa: E402
from audiodiff.models import DIFFWAVE_PRESETS, DiffWave  # noqa: E402
from audiodiff.models.lmnt import ours_to_lmnt  # noqa: E402
from bench.common import machine, time_interleaved, write  # noqa: E402
from bench.models import make_step  # noqa: E402
from bench.reference import ReferenceDiffWave  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=None, help="default 16 on CUDA, 2 on CPU")
    ap.add_argument("--samples", type=int, default=15872)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument(
        "--modes", default=None, help="our modes; default fp32,fp32_compile on CPU, bf16,bf16_graphs on CUDA"
    )
    args = ap.parse_args()
    dev, cuda = args.device, args.device.startswith("cuda")
    batch = args.batch or (16 if cuda else 2)
    rounds = args.rounds or (20 if cuda else 5)
    modes = (args.modes or ("bf16,bf16_graphs" if cuda else "fp32,fp32_compile")).split(",")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    frames = args.samples // 256
    x0 = (0.1 * torch.randn(batch, 1, frames * 256, generator=g)).to(dev)
    mel = torch.randn(batch, 80, frames, generator=g).to(dev)
    ddpm = DDPM.from_preset("diffwave", loss_type="l1").to(dev)
    alpha_cum = torch.cumprod(1 - ddpm.betas.to(dev, torch.float32), 0)

    cases, nets = {}, []
    ours0 = DiffWave(DIFFWAVE_PRESETS["base"])
    ref = ReferenceDiffWave().to(dev)
    ref.load_state_dict(ours_to_lmnt(ours0.state_dict()))
    cases["reference fp32"] = reference_step(ref, torch.optim.Adam(ref.parameters(), lr=2e-4), x0, mel, alpha_cum)
    if cuda:
        ref16 = ReferenceDiffWave().to(dev)
        ref16.load_state_dict(ref.state_dict())
        opt16 = torch.optim.Adam(ref16.parameters(), lr=2e-4)
        cases["reference amp"] = reference_step(ref16, opt16, x0, mel, alpha_cum, torch.amp.GradScaler())
    t0 = time.perf_counter()
    for mode in modes:
        for reg, entries in (("", []), (" + amp", [{"name": "amp"}])):
            net = DiffWave(DIFFWAVE_PRESETS["base"]).to(dev)
            net.load_state_dict(ours0.state_dict())
            nets.append(net)
            fused = cuda and mode != "fp32"
            opt = torch.optim.AdamW(net.parameters(), lr=2e-4, weight_decay=0.0, fused=fused or None)
            call = net
            objective = SpectralObjective(ddpm, build_spectral_loss(entries), lam=1e-4).to(dev)
            if "compile" in mode or "graphs" in mode:
                call = torch.compile(net, mode="reduce-overhead" if "graphs" in mode else None)
                if entries:
                    objective.spectral.compile(mode="reduce-overhead" if "graphs" in mode else None, fullgraph=True)
            step = make_step(call, objective, opt, x0, mel, mode.startswith("bf16"), dev, "graphs" in mode)
            cases[f"ours {mode}{reg}"] = step
    timings = time_interleaved(cases, dev, rounds, warmup=3)
    for t in timings.values():
        t["examples_per_s"] = batch / (t["median_ms"] / 1e3)
    base = timings["reference fp32"]["examples_per_s"]
    for t in timings.values():
        t["speedup_vs_reference_fp32"] = t["examples_per_s"] / base
    payload = {
        "machine": machine(dev),
        "batch": batch,
        "samples": frames * 256,
        "timings": timings,
        "wall_s": time.perf_counter() - t0,
    }
    table = [
        f"DiffWave base (30 x 64, mel-conditioned), batch {batch} x {frames * 256} samples.",
        "",
        "| case | median ms / step | examples / s | vs reference fp32 |",
        "|---|---:|---:|---:|",
        *(
            f"| {k} | {v['median_ms']:.1f} | {v['examples_per_s']:.2f} | {v['speedup_vs_reference_fp32']:.2f}x |"
            for k, v in timings.items()
        ),
    ]
    md = write("training", payload, table, "_cuda" if cuda else "")
    print(md.read_text())


if __name__ == "__main__":
    main()
