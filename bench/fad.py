"""FAD pipeline cost: embedding throughput (cold) and a cached re-evaluation, for each offline embedder.

Usage: python bench/fad.py [--data DIR] [--n 120]
DIR is an audio data dir (default: the digits test split made by `make demo`, else a synthetic set).
Writes bench/results/fad.json and .md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audiodiff.data.datasets import list_audio  # noqa: E402
from audiodiff.eval.embeddings import EMBEDDERS, build_embedder, embed_files  # noqa: E402
from audiodiff.eval.fad import fad  # noqa: E402
from bench.common import machine, write  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1] / "egs/digits/data/digits/data/test"


def synthetic(root: Path, n: int) -> Path:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(16000) / 16000
        sf.write(root / f"{i}.wav", 0.2 * np.sin(2 * np.pi * rng.uniform(100, 400) * t), 16000)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT))
    ap.add_argument("--n", type=int, default=120)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        source = Path(args.data) if Path(args.data).exists() else synthetic(tmp, args.n)
        paths = list(list_audio(source).values())[: args.n]
        audio_s = len(paths)  # 1 s clips in the default sets
        rows, results = [], {}
        for name in EMBEDDERS:
            try:
                embedder = build_embedder(name)
            except FileNotFoundError as err:
                results[name] = {"skipped": str(err)}
                continue
            cache = tmp / f"cache-{name}"
            t0 = time.perf_counter()
            emb, info = embed_files(paths, embedder, cache)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            emb2, info2 = embed_files(paths, embedder, cache)
            fad(emb2[: len(emb2) // 2], emb2[len(emb2) // 2 :])
            warm = time.perf_counter() - t0
            results[name] = {
                "files": len(paths),
                "cold_s": cold,
                "cached_s": warm,
                "files_per_s_cold": len(paths) / cold,
                "cache_speedup": cold / warm,
                "cache_hits": info2["cache_hits"],
            }
            rows.append(
                f"| {name} | {len(paths)} | {cold:.2f} | {len(paths) / cold:.0f} ({audio_s / cold:.0f}x real time) "
                f"| {warm:.3f} | {cold / warm:.0f}x |"
            )
        payload = {"machine": machine("cpu"), "data": str(source), "results": results}
        table = [
            "| embedder | files | cold s | files/s | cached re-evaluation s (embed + FAD) | speed-up |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
        ]
        print(write("fad", payload, table).read_text())
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
