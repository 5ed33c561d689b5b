"""The fast CPU training switch, `train.fast_cpu`: bf16 autocast on CPUs that compute bf16 natively.

"auto" (the default) turns it on where /proc/cpuinfo lists `amx_bf16` (AMX tiles multiply bf16
matrices natively); "on" forces it; "off" keeps float32. `avx512_bf16` alone is not enough: on an
Intel Xeon with avx512_bf16 and no AMX, one thread, bf16 autocast steps were 6-17% slower than float32
(the 16 kHz vocoder 0.94x, the mel UNet 0.83x, the image UNet 0.94x;
bench/results/training__xeon_bf16_1t.md), so "auto" stays float32 there. Weights, gradients and
AdamW's state stay float32 either way (autocast runs matrix products and convolutions in bf16; the
parameters are never cast).
On a CPU without those instructions bf16 is emulated and slow: a 32-channel DiffWave step took
17x longer in bf16 than in float32 on an AVX2-only AMD EPYC (docs/results.md), so "auto" stays
float32 there. GPU runs ignore the switch (they use `train.bf16`); the resolved value ("on" or
"off") is what train() writes into the run's config.yaml and checkpoints.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

FAST_CPU = ("auto", "on", "off")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags of the first processor in `cpuinfo` (empty where there is no such file)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name ("AMD EPYC 7B13"), else what `platform` knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    """What decides a run's floating-point results besides its config: the processor, the thread
    count and torch ("AMD EPYC 7B13, 1 thread(s), torch 2.13.0+cpu"); train writes it to log.txt."""
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return f"{where}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"


def normalize_fast_cpu(value: object) -> str:
    """ "auto", "on" or "off" from a config value; YAML reads on/off as booleans, so true/false count too."""
    text = str(value).lower()
    text = {"true": "on", "false": "off"}.get(text, text)
    if text not in FAST_CPU:
        raise ValueError(f"train.fast_cpu={value!r} is not allowed; choose one of {list(FAST_CPU)}")
    return text


def resolve_fast_cpu(setting: str, device: torch.device, flags: set[str] | None = None) -> tuple[str, str]:
    """("on" or "off", a one-line note for log.txt) for train.fast_cpu on `device`.

    Args:
        setting: "auto", "on" or "off" (true/false accepted, see normalize_fast_cpu).
        flags: the CPU's feature flags (default: read from /proc/cpuinfo).
    """
    setting = normalize_fast_cpu(setting)
    if device.type != "cpu":
        return "off", f"train.fast_cpu={setting}: ignored on {device.type} (train.bf16 sets autocast there)"
    flags = cpu_flags() if flags is None else flags
    native = sorted(set(NATIVE_BF16_FLAGS) & flags)
    has = f"native bf16 ({', '.join(native)})" if native else "no native bf16 (no avx512_bf16 or amx_bf16)"
    if setting == "auto":
        resolved = "on" if "amx_bf16" in flags else "off"
        why = "" if resolved == "on" or not native else ", no AMX (bf16 measured slower than float32 there)"
        return resolved, f"train.fast_cpu=auto -> {resolved}: this CPU has {has}{why}"
    if setting == "on" and not native:
        return "on", f"warning: train.fast_cpu=on on a CPU with {has}: bf16 is emulated, expect slower steps"
    return setting, f"train.fast_cpu={setting}: this CPU has {has}"
