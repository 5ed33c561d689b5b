"""Shared benchmark helpers: interleaved timing, machine description, JSON + markdown output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(cases: dict[str, Callable[[], None]], device: str, rounds: int, warmup: int = 3) -> dict:
    """Median and spread (ms) of each case, timed in interleaved rounds so drift hits all alike."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {
        name: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v), "rounds": rounds}
        for name, v in samples.items()
    }


def machine(device: str) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = "unknown"
    return info


def write(name: str, payload: dict, table: list[str], suffix: str = "") -> Path:
    """Write results/<name><suffix>.json and .md; return the markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    stem = RESULTS / f"{name}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    m = payload["machine"]
    header = [
        f"# {name} benchmark",
        "",
        f"Command: `{payload['command']}`  ",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), "
        f"device {m.get('gpu', m['device'])}, commit {m['commit']}",
        "",
    ]
    md = stem.with_suffix(".md")
    md.write_text("\n".join(header + table) + "\n")
    return md
