"""The shared spectral loss core: tensors in, one loss per example (B,) out.

Every loss compares the model's clean-signal estimate `x0_hat` with the real signal `x0`
(arXiv 2603.02447). Build weighted combinations from config entries with
`build_spectral_loss([{"name": "amp", "weight": 1.0, "kwargs": {...}}, ...])`.

Two normalisations: "paper" (the defaults; the paper's unnormalised FFT and L1 sums, whose
values grow with the clip length, AMP like N^1.5 and the wavelet loss like N) and "scale_free"
(each loss class's `SCALE_FREE` options: orthonormal FFT and means, so values are about the
same at any clip length and comparable across losses; see docs/lambda.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from audiodiff.losses.fourier import AmplitudeLoss, AmplitudePhaseLoss
from audiodiff.losses.stft import MelSTFTLoss, MultiResolutionSTFTLoss, STFTLoss
from audiodiff.losses.wavelet import WaveletLoss

LOSSES: dict[str, type[nn.Module]] = {
    "amp": AmplitudeLoss,
    "amp_phase": AmplitudePhaseLoss,
    "wavelet": WaveletLoss,
    "stft": STFTLoss,
    "mrstft": MultiResolutionSTFTLoss,
    "mel": MelSTFTLoss,
}
ENTRY_KEYS = ("name", "weight", "kwargs", "label")
NORMALIZATIONS = ("paper", "scale_free")

__all__ = [
    "LOSSES",
    "NORMALIZATIONS",
    "AmplitudeLoss",
    "AmplitudePhaseLoss",
    "MelSTFTLoss",
    "MultiResolutionSTFTLoss",
    "STFTLoss",
    "SpectralLossSum",
    "WaveletLoss",
    "build_loss",
    "build_spectral_loss",
]


def build_loss(name: str, normalize: str = "paper", **kwargs) -> nn.Module:
    """Instantiate one registered loss, with errors that name the bad key and the allowed ones.

    Args:
        name: a key of LOSSES.
        normalize: "paper" (the class defaults) or "scale_free" (the class's `SCALE_FREE`
            options; an explicit kwarg that contradicts them is an error).
        **kwargs: constructor options.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown spectral loss {name!r}; choose one of {sorted(LOSSES)}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize={normalize!r} is not allowed; choose one of {list(NORMALIZATIONS)}")
    cls = LOSSES[name]
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(f"spectral loss {name!r}: unknown option(s) {unknown}; allowed: {params}")
    if normalize == "scale_free":
        for key, value in cls.SCALE_FREE.items():
            if kwargs.get(key, value) != value:
                raise ValueError(
                    f"spectral loss {name!r}: normalize='scale_free' sets {key}={value!r}, but kwargs give "
                    f"{key}={kwargs[key]!r}; drop it or use normalize='paper'"
                )
        kwargs = {**cls.SCALE_FREE, **kwargs}
    return cls(**kwargs)


class SpectralLossSum(nn.Module):
    """A weighted sum of spectral losses that exposes each term.

    `forward()` returns the unweighted per-example value of every term, {label: (B,)}, so the
    whole module can be compiled (`module.compile()`, e.g. with CUDA graphs) and each term
    logged; `combine(terms)` returns `sum_i weight_i * term_i`, and `total()` both at once.

    Shapes:
        x0_hat, x0: (B, C, T) or (B, C, H, W) -> {label: (B,)}
    """

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        if set(losses) != set(weights):
            raise ValueError(f"losses {sorted(losses)} and weights {sorted(weights)} must have the same labels")
        self.losses = nn.ModuleDict(losses)
        self.weights = dict(weights)

    def __len__(self) -> int:
        return len(self.losses)

    def forward(self, x0_hat: Tensor, x0: Tensor) -> dict[str, Tensor]:
        """Unweighted per-example value of each term: {label: (B,)}."""
        return {label: loss(x0_hat, x0) for label, loss in self.losses.items()}

    def combine(self, terms: Mapping[str, Tensor]) -> Tensor:
        """Weighted sum of the values returned by `forward()`, (B,)."""
        total = None
        for label, value in terms.items():
            value = self.weights[label] * value
            total = value if total is None else total + value
        if total is None:
            raise ValueError("combine() needs at least one term; check len(loss) before calling it")
        return total

    def total(self, x0_hat: Tensor, x0: Tensor) -> Tensor:
        """Weighted sum of all terms, (B,); zeros for an empty sum."""
        if not self.losses:
            return torch.zeros(x0.shape[0], device=x0.device, dtype=torch.promote_types(x0.dtype, torch.float32))
        return self.combine(self(x0_hat, x0))


def build_spectral_loss(entries: Sequence[Mapping], normalize: str = "paper") -> SpectralLossSum:
    """Build a SpectralLossSum from config entries.

    Args:
        entries: each a mapping with `name` (a key of LOSSES), optional `weight` (default 1.0),
            optional `kwargs` (constructor options) and optional `label` (defaults to the name;
            set it to use one loss twice, e.g. two wavelets).
        normalize: "paper" or "scale_free", for every entry (see `build_loss`).

    Returns:
        The combined loss module.
    """
    losses: dict[str, nn.Module] = {}
    weights: dict[str, float] = {}
    for i, entry in enumerate(entries):
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise ValueError(f"spectral loss entry {i}: unknown key(s) {unknown}; allowed: {list(ENTRY_KEYS)}")
        if "name" not in entry:
            raise ValueError(f"spectral loss entry {i}: missing 'name'; choose one of {sorted(LOSSES)}")
        label = entry.get("label") or entry["name"]
        if "." in label:
            raise ValueError(f"spectral loss entry {i}: label {label!r} must not contain '.' (a module name)")
        if label in losses:
            raise ValueError(f"spectral loss entry {i}: label {label!r} used twice; give one a distinct 'label'")
        losses[label] = build_loss(entry["name"], normalize, **dict(entry.get("kwargs") or {}))
        weights[label] = float(entry.get("weight", 1.0))
    return SpectralLossSum(losses, weights)
