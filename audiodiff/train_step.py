"""One optimizer step of training: micro-batches forward/backward, gradient clipping, AdamW, EMA.

`audiodiff.train` runs it in its loop (and re-exports it); bench/models.py times it by itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from audiodiff.diffusion import SpectralObjective


def train_step(
    next_micro: Callable[[], tuple[Tensor, Tensor | None, dict]],
    call: nn.Module,
    objective: SpectralObjective,
    opt: torch.optim.Optimizer,
    ema: list[Tensor],
    decay: float,
    *,
    grad_accum: int = 1,
    grad_clip: float = 0.0,
    autocast: bool = False,
    graphs: bool = False,
    model: nn.Module | None = None,
) -> tuple[dict[str, Tensor], Tensor, bool]:
    """One optimizer step: `grad_accum` micro-batches forward/backward, clipping, AdamW, EMA.

    Args:
        next_micro: returns the next micro-batch (x0, cond, sample), `sample` being the levels and
            noise for `objective` (empty: the objective draws them).
        call: the network as called (compiled or DDP-wrapped); `model`, when DDP-wrapped, skips
            the gradient all-reduce on all but the last micro-batch.
        ema: EMA copies of the parameters of `opt`'s single group, lerped towards them by 1 - decay.
        grad_clip: max gradient norm (0: no clipping, the norm is still computed).
        autocast: bf16 autocast on x0's device (CUDA: train.bf16; CPU: train.fast_cpu); the
            parameters, gradients and optimizer state stay float32. graphs: mark CUDA-graph step boundaries.

    Returns:
        (per-term loss means over the step, gradient norm, whether the step was taken): a
        non-finite loss or gradient leaves the weights as they are.
    """
    params = opt.param_groups[0]["params"]
    sums: dict[str, Tensor] = {}
    for micro in range(grad_accum):
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        x0, cond, levels = next_micro()
        sync = not hasattr(model, "no_sync") or micro == grad_accum - 1
        with model.no_sync() if not sync else torch.enable_grad():
            with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=autocast):
                out = objective(call, x0, cond, **levels)
            (out["loss"].mean() / grad_accum).backward()
        for name, value in out.items():
            if name != "x0_hat":
                sums[name] = sums.get(name, 0.0) + value.detach().float().mean() / grad_accum
    grad_norm = nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf"))
    ok = bool(torch.isfinite(grad_norm) and torch.isfinite(sums["loss"]))
    if ok:
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
    opt.zero_grad(set_to_none=True)
    return sums, grad_norm, ok
