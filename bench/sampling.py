"""Sampling real-time factor of DiffWave base (mel-conditioned vocoder), ours vs a plain eager reference.

Both generate 1 s at 22.05 kHz (86 mel frames = 22016 samples) from the same weights. RTF =
seconds of audio produced per second of wall time (batch x duration / time).
  reference      bench/reference.py: eager float32, DiffWave's Algorithm 2 loop
  ours           audiodiff: mel projections computed once per utterance, sampler on Python
                 floats; CPU: DiffWaveInference (audiodiff/models/diffwave_infer.py: time-major,
                 tiled, folded constants; what `audiodiff generate` uses), float32; CUDA: bf16
                 autocast + torch.compile with CUDA graphs (mode="reduce-overhead")
  one graph      CUDA only: the whole 6-step loop (mel projection, noise, calls, updates) captured
                 in one CUDA graph around the network compiled without graphs
With --more, two rows without a reference (the same engine / compilation settings):
  EDM heun-18    the same DiffWave under EDM preconditioning, deterministic Heun with 18 levels
                 (35 network calls)
  mel+vocoder    mel-spectrogram diffusion: the recipes' mel UNet (configs/model/unet_mel.yaml)
                 samples 80 x 88 log-mels with Heun-18, then the DiffWave vocoder's 6-step schedule
Usage: python bench/sampling.py [--device cuda] [--batches 1,16] [--rounds 5] [--full] [--more]
Writes bench/results/sampling[_more][_cuda].json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audiodiff.diffusion import DDPM, EDM, Formulation  # noqa: E402
from audiodiff.diffusion.samplers import (  # noqa: E402
    DIFFWAVE_FAST_BETAS,
    ddpm_sigmas,
    fast_sigmas,
    karras_sigmas,
    sample_ddpm,
    sample_heun,
)
from audiodiff.models import DiffWave, DiffWaveConfig, UNet, UNetConfig  # noqa: E402
from audiodiff.models.diffwave_infer import DiffWaveInference  # noqa: E402
from audiodiff.models.lmnt import ours_to_lmnt  # noqa: E402
from bench.common import machine, time_interleaved, write  # noqa: E402
from bench.reference import ReferenceDiffWave, reference_fast_sample  # noqa: E402

FRAMES, HOP, SR = 86, 256, 22050


def diffwave_call(net: DiffWave, device: str):
    """The network as our samplers run it: compiled with CUDA graphs on a GPU, the CPU engine on a CPU."""
    if device.startswith("cuda"):
        return torch.compile(net, mode="reduce-overhead", dynamic=False)
    return DiffWaveInference(net)


@torch.no_grad()
def vocode(call, formulation: Formulation, sampler, sigmas: list[float], mel: torch.Tensor, prior_std: float):
    """1 s per mel: project the mel once, draw the prior, run the sampler (bf16 autocast on CUDA)."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mel.is_cuda):
        projected = call.project_condition(mel)
        x = torch.randn(mel.shape[0], 1, FRAMES * HOP, device=mel.device) * prior_std
        out = sampler(lambda x, s, c: formulation.denoise(call, x, s, c), x, sigmas, cond=projected)
    return out.float().clamp(-1, 1)


def our_sampler(net: DiffWave, ddpm: DDPM, sigmas: list[float], device: str):
    call = diffwave_call(net, device)
    return lambda mel: vocode(call, ddpm, sample_ddpm, sigmas, mel, ddpm.prior_std(sigmas[0]))


def graphed_sampler(net: DiffWave, ddpm: DDPM, sigmas: list[float], device: str, batch: int):
    """CUDA only: the whole loop (mel projection, noise draws, every network call and update) in one
    CUDA graph, the network compiled without its own graphs; replay copies the mel in and the audio out.
    """
    call = torch.compile(net, dynamic=False)  # default mode: no CUDA graphs of its own
    static_mel = torch.zeros(batch, 80, FRAMES, device=device)

    def loop():
        return vocode(call, ddpm, sample_ddpm, sigmas, static_mel, ddpm.prior_std(sigmas[0]))

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # compile and warm up outside the capture
        for _ in range(3):
            loop()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = loop()

    def generate(mel):
        static_mel.copy_(mel)
        graph.replay()
        return static_out.clone()

    return generate


def edm_sampler(net: DiffWave, edm: EDM, steps: int, device: str):
    """The DiffWave vocoder under EDM preconditioning, deterministic Heun."""
    call = diffwave_call(net, device)
    sigmas = [float(s) for s in karras_sigmas(steps, 0.002, 80.0)]
    return lambda mel: vocode(call, edm, sample_heun, sigmas, mel, sigmas[0])


def mel_then_vocoder(unet: UNet, vocoder, device: str, batch: int, steps: int = 18):
    """Sample normalised log-mels (80 x 88) with the mel UNet (EDM Heun), map them back, vocode."""
    cuda = device.startswith("cuda")
    call = torch.compile(unet, mode="reduce-overhead" if cuda else None, dynamic=False)
    edm = EDM(sigma_data=0.5).to(device)
    sigmas = [float(s) for s in karras_sigmas(steps, 0.002, 80.0)]
    lo, hi = -11.5, 2.5  # the recipes' data.mel_range

    @torch.no_grad()
    def generate():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            x = torch.randn(batch, 1, 80, 88, device=device) * sigmas[0]
            unit = sample_heun(lambda x, s, c: edm.denoise(call, x, s, c), x, sigmas)
        mel = (unit.float().clamp(-1, 1)[:, 0, :, :FRAMES] + 1) / 2 * (hi - lo) + lo
        return vocoder(mel)

    return generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default=None, help="comma list; default 1,16 on CUDA, 1 on CPU")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="also time the 50-step schedule")
    ap.add_argument("--more", action="store_true", help="also time EDM Heun-18 and mel diffusion + vocoder")
    args = ap.parse_args()
    dev, cuda = args.device, args.device.startswith("cuda")
    batches = [int(b) for b in (args.batches or ("1,16" if cuda else "1")).split(",")]
    rounds = args.rounds or (10 if cuda else 3)
    torch.manual_seed(0)
    ours = DiffWave(DiffWaveConfig(embed_interp="lerp")).to(dev).eval()
    for p in ours.parameters():  # trained-looking weights (the output layer starts at zero)
        p.data.normal_(0, 0.05)
    ref = ReferenceDiffWave().to(dev).eval()
    ref.load_state_dict(ours_to_lmnt(ours.state_dict()))
    ddpm = DDPM.from_preset("diffwave").to(dev)
    # the two networks agree
    x, t, mel = (
        torch.randn(1, 1, FRAMES * HOP, device=dev),
        torch.tensor([12.5], device=dev),
        torch.randn(1, 80, FRAMES, device=dev),
    )
    with torch.no_grad():
        diff = (ours(x, t, mel) - ref(x, t, mel)).abs().max().item()
    fast = [float(s) for s in fast_sigmas(DIFFWAVE_FAST_BETAS)]
    full = [float(s) for s in ddpm_sigmas(ddpm.sigmas)]
    cases, seconds, failed = {}, {}, {}
    for b in batches:
        mel_b = torch.randn(b, 80, FRAMES, device=dev)
        cases[f"reference 6-step b{b}"] = lambda m=mel_b: reference_fast_sample(ref, m, ddpm.betas, DIFFWAVE_FAST_BETAS)
        fast_gen = our_sampler(ours, ddpm, fast, dev)
        cases[f"ours 6-step b{b}"] = lambda m=mel_b, g=fast_gen: g(m)
        seconds[f"reference 6-step b{b}"] = seconds[f"ours 6-step b{b}"] = b * FRAMES * HOP / SR
        if cuda:
            try:  # not yet run on a GPU: a failure is recorded, not fatal
                graph_gen = graphed_sampler(ours, ddpm, fast, dev, b)
                cases[f"ours 6-step one graph b{b}"] = lambda m=mel_b, g=graph_gen: g(m)
                seconds[f"ours 6-step one graph b{b}"] = b * FRAMES * HOP / SR
            except Exception as e:
                failed[f"ours 6-step one graph b{b}"] = f"{type(e).__name__}: {e}"[:500]
        if args.full:
            full_gen = our_sampler(ours, ddpm, full, dev)
            cases[f"ours 50-step b{b}"] = lambda m=mel_b, g=full_gen: g(m)
            seconds[f"ours 50-step b{b}"] = b * FRAMES * HOP / SR
        if args.more:
            edm_gen = edm_sampler(ours, EDM(sigma_data=0.5).to(dev), 18, dev)
            cases[f"ours EDM heun-18 b{b}"] = lambda m=mel_b, g=edm_gen: g(m)
            unet = UNet(
                UNetConfig(in_channels=1, channels=32, channel_mult=(1, 2, 2), attn_levels=(2,), embedding="fourier")
            )
            unet = unet.to(dev).eval()
            pipe = mel_then_vocoder(unet, fast_gen, dev, b)
            cases[f"ours mel UNet heun-18 + vocoder 6-step b{b}"] = pipe
            seconds[f"ours EDM heun-18 b{b}"] = seconds[f"ours mel UNet heun-18 + vocoder 6-step b{b}"] = (
                b * FRAMES * HOP / SR
            )
    t0 = time.perf_counter()
    timings = time_interleaved(cases, dev, rounds, warmup=args.warmup)
    for name, t in timings.items():
        t["rtf"] = seconds[name] / (t["median_ms"] / 1e3)
    ratios = {f"b{b}": timings[f"ours 6-step b{b}"]["rtf"] / timings[f"reference 6-step b{b}"]["rtf"] for b in batches}
    payload = {
        "machine": machine(dev),
        "audio_seconds_per_item": FRAMES * HOP / SR,
        "max_abs_network_difference_ours_vs_reference": diff,
        "timings": timings,
        "speedup_ours_over_reference": ratios,
        "wall_s": time.perf_counter() - t0,
        "failed": failed,
    }
    table = [
        "| case | median ms | real-time factor |",
        "|---|---:|---:|",
        *(f"| {k} | {v['median_ms']:.1f} | {v['rtf']:.2f}x |" for k, v in timings.items()),
        "",
        "Speed-up of ours over the reference (6-step): " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()),
        f"Network outputs agree to {diff:.1e} (max abs).",
        *(f"Failed: {k}: {v}" for k, v in failed.items()),
    ]
    md = write("sampling", payload, table, ("_more" if args.more else "") + ("_cuda" if cuda else ""))
    print(md.read_text())


if __name__ == "__main__":
    main()
