"""Fine-tuning: start training from the weights of another checkpoint (`train.init_from`).

The source is an lmnt-com/diffwave checkpoint (their released LJSpeech vocoder, which the paper
fine-tunes) or one of ours (a checkpoint file or a run directory; its EMA weights, as `generate`
uses). Only the weights are taken: the optimizer, the step (training restarts at 0) and the RNG
are fresh. The source's architecture must equal the config's model block, so a mismatch is one
line naming the keys to set instead of a shape error. The file's SHA-256 goes into log.txt and
into `train.init_sha256` of the run's config.yaml and checkpoints; a config that already sets
`train.init_sha256` must match it.

With a data-dependent prior (diffusion.prior, PriorGrad's or SpecGrad's) the weights learned to remove noise
coloured by the source's prior, so a fine-tuned run keeps the source's prior (`inherit_prior`): its
diffusion.prior block, the training frame-energy range included, not one recomputed from the new
data.train. A config that sets its own energy_min/energy_max overrides that deliberately; a source
without a prior (lmnt's, or ours with kind "none") leaves the range to `audiodiff train` as for a
new model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf
from torch import Tensor, nn

from audiodiff.checkpoint import ResumedPrior, resolve_checkpoint, stored_prior
from audiodiff.config import ExperimentConfig, from_yaml
from audiodiff.data.corpora.common import sha256sum
from audiodiff.models.lmnt import config_from_lmnt_state, lmnt_to_ours, safe_torch_load, split_lmnt_checkpoint


def _source_weights(file: Path) -> tuple[str, dict, dict[str, Tensor], str]:
    """(model kind, model config as a dict, weights in our names, description) of a checkpoint file."""
    raw = safe_torch_load(file)
    if isinstance(raw, dict) and "config" in raw and "model" in raw:  # one of ours
        stored = from_yaml(raw["config"])
        kind = stored.model.kind
        weights = raw["ema"] if "ema" in raw else raw["model"]
        return kind, OmegaConf.to_container(stored.model[kind]), weights, f"audiodiff step={raw.get('step')}"
    state, info = split_lmnt_checkpoint(raw)
    try:
        arch = config_from_lmnt_state(state, info["params"])
        weights = lmnt_to_ours(state)
    except ValueError as err:
        raise ValueError(f"train.init_from={file}: {err}") from None
    return "diffwave", dataclasses.asdict(arch), weights, f"lmnt-com/diffwave step={info['step']}"


def _check_architecture(file: Path, kind: str, source: dict, cfg: ExperimentConfig) -> None:
    if cfg.model.kind != kind:
        raise ValueError(f"train.init_from={file} holds a {kind} model; the config has model.kind={cfg.model.kind}")
    target = OmegaConf.to_container(cfg.model[kind])
    if kind == "diffwave" and source.get("wave_cond", 0) != target["wave_cond"]:
        raise ValueError(
            f"train.init_from={file}: its DiffWave takes {source.get('wave_cond', 0)} waveform channels beside mels "
            f"(lmnt-com/diffwave's take none), data.cond_waveform={cfg.data.cond_waveform} needs {target['wave_cond']}"
        )
    differ = [f"model.{kind}.{k}={v!r} (config: {target.get(k)!r})" for k, v in source.items() if target.get(k) != v]
    if differ:
        raise ValueError(f"train.init_from={file} has a different model; set {', '.join(differ)}")


def _check_fits(file: Path, net: nn.Module, weights: dict[str, Tensor]) -> None:
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in weights.items()}
    bad = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if bad:
        shown = ", ".join(f"{k}: {theirs.get(k)} vs {ours.get(k)}" for k in bad[:3])
        raise ValueError(f"train.init_from={file}: {len(bad)} tensors do not fit the model ({shown})")


def _source_file(cfg: ExperimentConfig) -> Path:
    """The checkpoint file train.init_from names (FileNotFoundError when it does not exist)."""
    path = Path(cfg.train.init_from)
    if not path.exists():
        raise FileNotFoundError(
            f"train.init_from={path}: no such checkpoint file or run directory "
            "(lmnt-com/diffwave's weights are a download: see egs/ljspeech/README.md)"
        )
    return resolve_checkpoint(path)


def inherit_prior(cfg: ExperimentConfig, resumed: ResumedPrior | None) -> str | None:
    """A fine-tuned run with diffusion.prior and no energy range takes its source's prior block.

    Args:
        cfg: the experiment config; its diffusion.prior is replaced by the source's.
        resumed: the checkpoint a resumed run continues from, with its stored prior read on first use
            (the caller's one reading serves this and `keep_prior_align`); None: a new run. It is then
            the source (it holds what the run started with; the init_from file need not exist any more).

    Returns:
        The log line naming the prior and where it came from, or None when nothing was taken (no
        init_from, no prior, a range set in the config, or a source without a prior).
    """
    prior = cfg.diffusion.prior
    if not cfg.train.init_from or prior.kind == "none" or prior.energy_min is not None:
        return None
    file = resumed.path if resumed is not None else _source_file(cfg)
    source = resumed.prior if resumed is not None else stored_prior(file)  # lmnt's: None, trained with N(0, I)
    if source is None or source.kind != prior.kind or source.energy_min is None:
        return None
    cfg.diffusion.prior = source
    if source.kind == "spec_envelope":
        return (
            f"diffusion.prior from {file}, the prior its weights were trained with: spec_envelope, lifter order "
            f"{source.lifter_order}, floor {source.floor:g}, envelope RMS {source.energy_min:g} .. "
            f"{source.energy_max:g}"
        )
    return (
        f"diffusion.prior from {file}, the prior its weights were trained with: std_min {source.std_min:g}, "
        f"energy {source.energy} {source.energy_min:g} .. {source.energy_max:g}, align {source.align}"
    )


def init_from_checkpoint(net: nn.Module, cfg: ExperimentConfig, log_path: Path | None) -> str:
    """Load `cfg.train.init_from`'s weights into `net`; record the source's SHA-256.

    Args:
        net: the freshly built network (its config is `cfg.model`).
        cfg: the experiment config; `train.init_sha256` is set to the file's digest.
        log_path: log.txt to append the source line to (None on ranks other than 0).

    Returns:
        The log line: "init_from FILE sha256=HEX FORMAT step=N".

    Raises:
        FileNotFoundError: no such file or run directory.
        ValueError: the checkpoint is unreadable or refused, its digest differs from
            `train.init_sha256`, or its model differs from the config's.
    """
    file = _source_file(cfg)
    digest = sha256sum(file)
    if cfg.train.init_sha256 and cfg.train.init_sha256 != digest:
        raise ValueError(f"train.init_from={file}: sha256 {digest}, but train.init_sha256={cfg.train.init_sha256}")
    kind, source, weights, described = _source_weights(file)
    _check_architecture(file, kind, source, cfg)
    _check_fits(file, net, weights)
    net.load_state_dict(weights, strict=True)
    cfg.train.init_sha256 = digest
    line = f"init_from {file} sha256={digest} {described}"
    if log_path is not None:
        with open(log_path, "a") as log:
            log.write(line + "\n")
    return line
