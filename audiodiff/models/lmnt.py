"""Import of lmnt-com/diffwave checkpoints (the released LJSpeech vocoder the paper fine-tunes).

Their checkpoint is a torch pickle `{"step", "model": state_dict, "optimizer", "params"}` where
`params` is their `diffwave.params.AttrDict`, a dict subclass that torch's weights-only
unpickler refuses. We read it with a restricted unpickler instead: only torch's tensor/storage
rebuild functions and OrderedDict are resolved, the AttrDict becomes a plain dict, and any
other global is refused, so no code from the file is executed. Their
step embedding interpolates linearly between integer-step embeddings; the imported model
uses `embed_interp="lerp"` to match.
"""

from __future__ import annotations

import pickle
import re
import types
from pathlib import Path

import torch
from torch import Tensor

from audiodiff.models.diffwave import DiffWave, DiffWaveConfig

# (lmnt-com/diffwave prefix, audiodiff prefix); "{i}" stands for a layer index.
NAME_MAP = [
    ("input_projection.", "inp."),
    ("diffusion_embedding.projection1.", "step_embed.fc1."),
    ("diffusion_embedding.projection2.", "step_embed.fc2."),
    ("spectrogram_upsampler.conv1.", "upsampler.stages.0."),
    ("spectrogram_upsampler.conv2.", "upsampler.stages.1."),
    ("residual_layers.{i}.dilated_conv.", "layers.{i}.dilated."),
    ("residual_layers.{i}.diffusion_projection.", "layers.{i}.step_proj."),
    ("residual_layers.{i}.conditioner_projection.", "layers.{i}.cond_proj."),
    ("residual_layers.{i}.output_projection.", "layers.{i}.out_proj."),
    ("skip_projection.", "skip_out."),
    ("output_projection.", "out."),
]


def _rules(forward: bool) -> list[tuple[str, str]]:
    """(regex, replacement) pairs renaming prefixes from one side of NAME_MAP to the other."""
    rules = []
    for theirs, ours in NAME_MAP:
        src, dst = (theirs, ours) if forward else (ours, theirs)
        pattern = "^" + re.escape(src).replace(re.escape("{i}"), r"(\d+)")
        rules.append((pattern, dst.replace("{i}", r"\1")))
    return rules


LMNT_TO_OURS, OURS_TO_LMNT = _rules(True), _rules(False)
_IGNORED = re.compile(r"^diffusion_embedding\.embedding$")  # their precomputed table (a buffer)


def _rename(state: dict[str, Tensor], table: list[tuple[str, str]], source: str) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if _IGNORED.match(key):
            continue
        for pattern, repl in table:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            raise ValueError(f"{source}: unexpected state-dict key {key!r}")
    return out


def lmnt_to_ours(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an lmnt-com/diffwave state dict to audiodiff's DiffWave names."""
    return _rename(state, LMNT_TO_OURS, "lmnt-com/diffwave state dict")


def ours_to_lmnt(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an audiodiff DiffWave state dict to lmnt-com/diffwave's names."""
    return _rename(state, OURS_TO_LMNT, "audiodiff DiffWave state dict")


# Their params (diffwave.params.AttrDict) -> our DiffWaveConfig fields.
_PARAM_KEYS = {"residual_layers": "layers", "residual_channels": "channels", "n_mels": "n_mels"}


def config_from_lmnt_state(state: dict[str, Tensor], params: dict | None = None) -> DiffWaveConfig:
    """Their architecture: the checkpoint's own `params` where present, checked against the tensors.

    Layers, channels and mel bands come from the tensors (and must agree with `params`); the
    dilation cycle and hop are not visible in the tensors, so they come from `params`
    (`dilation_cycle_length`, `hop_samples`), defaulting to lmnt's 10 and 256. `unconditional`
    models have no mel input (n_mels 0).

    Raises:
        ValueError: `params` disagree with the tensors.
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    layer_ids = [int(m.group(1)) for k in state if (m := re.match(r"residual_layers\.(\d+)\.", k))]
    if not layer_ids or "input_projection.weight" not in state:
        raise ValueError("not an lmnt-com/diffwave state dict: no residual_layers.* or input_projection.weight")
    cond = state.get("residual_layers.0.conditioner_projection.weight")
    seen = {"layers": 1 + max(layer_ids), "channels": state["input_projection.weight"].shape[0]}
    seen["n_mels"] = 0 if cond is None else cond.shape[1]
    params = dict(params or {})
    if params.get("unconditional"):
        params["n_mels"] = 0
    for theirs, ours in _PARAM_KEYS.items():
        if theirs in params and int(params[theirs]) != seen[ours]:
            bad = f"params.{theirs}={params[theirs]} but the weights have {ours}={seen[ours]}"
            raise ValueError(f"lmnt-com/diffwave checkpoint: {bad}")
    embed_dim = state["diffusion_embedding.projection1.weight"].shape[0]
    cycle, hop = int(params.get("dilation_cycle_length", 10)), int(params.get("hop_samples", 256))
    return DiffWaveConfig(seen["layers"], seen["channels"], cycle, seen["n_mels"], hop, embed_dim, embed_interp="lerp")


class _AttrDict(dict):
    """Receives diffwave.params.AttrDict (a dict subclass with attribute access)."""


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("diffwave.params", "AttrDict"):
            return _AttrDict
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only tensors, containers and lmnt's params)")


def _restricted_load(file, **kwargs):
    return _RestrictedUnpickler(file, **kwargs).load()


# torch.load's legacy (non-zip) reader calls `pickle_module.load` for the magic number, the
# protocol, the system info and the storage keys, and only the main object goes through
# `pickle_module.Unpickler`: both must be restricted, or a file runs code before failing.
_RESTRICTED_PICKLE = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=_restricted_load, __name__="restricted")


def safe_torch_load(path: str | Path, map_location: str = "cpu") -> object:
    """`torch.load` of a zip or legacy torch file that runs no code from it.

    Only tensors, parameters, OrderedDict, torch.Size and plain containers are rebuilt, and
    lmnt's `diffwave.params.AttrDict` becomes a dict; any other global is refused.

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file: a refused global, or not a readable torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False, pickle_module=_RESTRICTED_PICKLE)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: {str(err).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError) as err:  # truncated, corrupt or not a torch file
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable torch checkpoint: {reason}") from err


def split_lmnt_checkpoint(ckpt: object) -> tuple[dict[str, Tensor], dict]:
    """(their state dict, info) of a loaded lmnt-com/diffwave checkpoint (or bare state dict).

    info has the checkpoint's "step" and "params" (a plain dict, {} when absent).
    """
    if not isinstance(ckpt, dict):
        raise ValueError(f"an lmnt-com/diffwave checkpoint is a dict, got {type(ckpt).__name__}")
    state = ckpt["model"] if "model" in ckpt else ckpt
    return state, {"step": ckpt.get("step"), "params": dict(ckpt.get("params") or {})}


def load_lmnt_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[DiffWave, dict]:
    """Build an audiodiff DiffWave from an lmnt-com/diffwave checkpoint file.

    Args:
        path: their `weights.pt` (or a saved bare state dict), zip or legacy format.
        map_location: device for the tensors.

    Returns:
        (model, info) where info has the checkpoint's "step" and "params" (a plain dict).
    """
    state, info = split_lmnt_checkpoint(safe_torch_load(path, map_location))
    try:
        model = DiffWave(config_from_lmnt_state(state, info["params"]))
        model.load_state_dict(lmnt_to_ours(state), strict=True)
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: {' '.join(str(err).split())[:300]}") from None
    return model, info
