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


def config_from_lmnt_state(state: dict[str, Tensor]) -> DiffWaveConfig:
    """Infer layers, channels and mel bands from the tensors; dilation cycle 10 and hop 256 as theirs."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"residual_layers\.(\d+)\.", k)))
    channels = state["input_projection.weight"].shape[0]
    cond = state.get("residual_layers.0.conditioner_projection.weight")
    n_mels = 0 if cond is None else cond.shape[1]
    embed_dim = state["diffusion_embedding.projection1.weight"].shape[0]
    return DiffWaveConfig(layers, channels, 10, n_mels, 256, embed_dim, embed_interp="lerp")


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
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an lmnt-com/diffwave checkpoint")


_RESTRICTED_PICKLE = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=pickle.load, __name__="restricted")


def load_lmnt_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[DiffWave, dict]:
    """Build an audiodiff DiffWave from an lmnt-com/diffwave checkpoint file.

    Args:
        path: their `weights.pt` (or a saved bare state dict).
        map_location: device for the tensors.

    Returns:
        (model, info) where info has the checkpoint's "step" and "params" (a plain dict) when present.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lmnt-com/diffwave checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=False, pickle_module=_RESTRICTED_PICKLE)
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    model = DiffWave(config_from_lmnt_state(state))
    model.load_state_dict(lmnt_to_ours(state), strict=True)
    info = {"step": ckpt.get("step") if isinstance(ckpt, dict) else None}
    if isinstance(ckpt, dict) and "params" in ckpt:
        info["params"] = dict(ckpt["params"])
    return model, info
