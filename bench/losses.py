"""Forward+backward time of the spectral losses, side by side with auraloss and raw ptwt.

Usage: python bench/losses.py [--device cuda] [--rounds 15]
Writes bench/results/losses[_cuda].json and .md. Every pair (ours, peer) is also checked to
give the same value, so the speed comparison is at identical output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import auraloss
import ptwt
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audiodiff.losses import build_loss  # noqa: E402
from bench.common import machine, time_interleaved, write  # noqa: E402


def raw_ptwt_loss(wavelet: str, ndim: int):
    """The peer: transform both signals with ptwt and sum the L1 norms of the differences."""

    def loss(x0_hat, x0):
        if ndim == 1:
            a = ptwt.wavedec(x0_hat, wavelet, mode="symmetric")
            b = ptwt.wavedec(x0, wavelet, mode="symmetric")
            return sum((u - v).abs().flatten(1).sum(1) for u, v in zip(a, b))
        a = ptwt.wavedec2(x0_hat, wavelet, mode="symmetric")
        b = ptwt.wavedec2(x0, wavelet, mode="symmetric")
        total = (a[0] - b[0]).abs().flatten(1).sum(1)
        for da, db in zip(a[1:], b[1:]):
            total = total + sum((u - v).abs().flatten(1).sum(1) for u, v in zip(da, db))
        return total

    return loss


def step(loss_fn, pred, target):
    def run():
        p = pred.detach().requires_grad_(True)
        loss_fn(p, target).sum().backward()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    dev = args.device
    torch.manual_seed(0)
    audio = (torch.randn(16, 1, 16000, device=dev), torch.randn(16, 1, 16000, device=dev))
    image = (torch.randn(16, 3, 64, 64, device=dev), torch.randn(16, 3, 64, 64, device=dev))
    aura = auraloss.freq.MultiResolutionSTFTLoss().to(dev)

    ours = {name: build_loss(name).to(dev) for name in ("amp", "amp_phase", "stft", "mrstft", "mel")}
    ours["haar"] = build_loss("wavelet", wavelet="haar").to(dev)
    ours["bior1.3"] = build_loss("wavelet", wavelet="bior1.3").to(dev)

    cases, pairs, agreement = {}, [], {}
    for name, loss in ours.items():
        cases[f"audio/{name}"] = step(loss, *audio)
    for name in ("amp", "amp_phase", "haar", "bior1.3"):
        cases[f"image/{name}"] = step(ours[name], *image)
    cases["audio/auraloss_mrstft"] = step(lambda a, b: aura(a, b).reshape(1), *audio)
    pairs.append(("audio/mrstft", "audio/auraloss_mrstft"))
    # auraloss's spectral convergence is a batch ratio: compare values per example.
    per_ex = torch.stack([aura(audio[0][i : i + 1], audio[1][i : i + 1]) for i in range(16)])
    agreement["mrstft vs auraloss"] = (ours["mrstft"](*audio) - per_ex).abs().max().item() / per_ex.abs().max().item()
    for w in ("haar", "bior1.3"):
        for kind, data, nd in (("audio", audio, 1), ("image", image, 2)):
            peer = raw_ptwt_loss(w, nd)
            cases[f"{kind}/ptwt_{w}"] = step(peer, *data)
            pairs.append((f"{kind}/{w}", f"{kind}/ptwt_{w}"))
            ref = peer(*data)
            agreement[f"{kind} {w} vs raw ptwt"] = (ours[w](*data) - ref).abs().max().item() / ref.abs().max().item()

    timings = time_interleaved(cases, dev, args.rounds)
    ratios = {f"{a} vs {b}": timings[b]["median_ms"] / timings[a]["median_ms"] for a, b in pairs}
    payload = {
        "machine": machine(dev),
        "shapes": {"audio": [16, 1, 16000], "image": [16, 3, 64, 64]},
        "timings": timings,
        "speedup_ours_over_peer": ratios,
        "max_relative_value_difference": agreement,
    }
    table = [
        "Forward+backward per call, median of interleaved rounds (min-max).",
        "",
        "| case | median ms | min-max ms |",
        "|---|---:|---:|",
        *(f"| {k} | {v['median_ms']:.2f} | {v['min_ms']:.2f}-{v['max_ms']:.2f} |" for k, v in timings.items()),
        "",
        "| ours vs peer | speed-up (peer time / our time) | max relative value difference |",
        "|---|---:|---:|",
    ]
    agree_keys = list(agreement)
    for (key, ratio), akey in zip(ratios.items(), agree_keys):
        table.append(f"| {key} | {ratio:.2f}x | {agreement[akey]:.1e} |")
    md = write("losses", payload, table, "" if dev == "cpu" else f"_{dev.split(':')[0]}")
    print(md.read_text())


if __name__ == "__main__":
    main()
