"""Experiment configuration: YAML composition, dotted overrides, validation against the schema.

A YAML file may start with `defaults: [path, ...]` (relative to the file): those files are
merged first, in order, then the file's own keys, then command-line overrides `key.path=value`.
Everything is validated against the dataclass schema (config_schema.py; its classes are imported
from here: `from audiodiff.config import ExperimentConfig`); an unknown key, a wrong type or a
missing required value is a `ConfigError` with one line naming the key and what is allowed.
"""

from __future__ import annotations

import inspect
import io
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from audiodiff.builders import TASKS
from audiodiff.config_schema import (  # noqa: F401  (the schema is imported from here, as before the split)
    DataConfig,
    DiffusionConfig,
    ExperimentConfig,
    GriffinLimConfig,
    LossEntry,
    ModelConfig,
    RegularizerConfig,
    SampleConfig,
    TrainConfig,
)
from audiodiff.diffusion.prior import prior_problem
from audiodiff.fastcpu import normalize_fast_cpu
from audiodiff.guidance import guidance_problem, label_dropout_problem
from audiodiff.losses.stft import MelSTFTLoss
from audiodiff.models.diffwave import resolve_embed_interp
from audiodiff.tasks.audio import wave_cond_channels

MEL_LOSS_RATE = inspect.signature(MelSTFTLoss).parameters["sample_rate"].default


class ConfigError(ValueError):
    """A bad configuration: unknown key, wrong type, missing value or unreadable file."""


def _valid_keys(schema: type, path: str) -> list[str]:
    """Field names at a dotted path of the schema ('' = top level)."""
    cls = schema
    for part in [p for p in path.split(".") if p]:
        match = {f.name: f for f in fields(cls)}.get(part)
        if match is None or not is_dataclass(match.type if isinstance(match.type, type) else None):
            default = match.default_factory() if match and match.default_factory is not None else None
            if default is None or not is_dataclass(default):
                return []
            cls = type(default)
        else:
            cls = match.type
    return [f.name for f in fields(cls)]


def _explain(err: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(err, "full_key", "") or ""
    if isinstance(err, ConfigKeyError):
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        valid = _valid_keys(ExperimentConfig, parent)
        where = f" in '{parent}'" if parent else ""
        return ConfigError(f"{source}: unknown key '{key}'{where}; valid keys: {valid}")
    if isinstance(err, MissingMandatoryValue):
        return ConfigError(f"{source}: missing required value '{key}'")
    if isinstance(err, ValidationError):
        msg = str(err).splitlines()[0]
        choice = re.fullmatch(r"Invalid value (.*), expected one of (\[.*\])", msg)
        if choice:  # a Literal field
            return ConfigError(f"{source}: {key}={choice.group(1)} is not allowed; choose one of {choice.group(2)}")
        return ConfigError(f"{source}: bad value for '{key}': {msg}")
    return ConfigError(f"{source}: {str(err).splitlines()[0]}")


def _load_yaml(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """A YAML file with its `defaults:` merged underneath, recursively."""
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path in seen:
        raise ConfigError(f"config {path}: 'defaults' cycle through {[str(p) for p in seen]}")
    try:
        node = OmegaConf.load(path)
    except Exception as err:  # yaml errors come in several types
        raise ConfigError(f"config {path}: cannot parse YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(node, DictConfig):
        raise ConfigError(f"config {path}: top level must be a mapping")
    defaults = node.pop("defaults", [])
    merged = OmegaConf.create()
    for item in defaults:
        merged = OmegaConf.merge(merged, _load_yaml(_find_default(path, str(item)), (*seen, path)))
    return OmegaConf.merge(merged, node)


# The shared config blocks (model/, diffusion/, loss/, data/, train/), shipped inside the package.
PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def _find_default(path: Path, item: str) -> Path:
    """A `defaults:` entry of the config `path`: a file relative to it, else a packaged block by name
    (`model/diffwave_small_uncond.yaml`, also written `configs/model/...` as in the repository)."""
    local = path.parent / item
    if local.is_file() or Path(item).is_absolute():
        return local
    name = item.removeprefix("configs/")
    if (PACKAGED_CONFIGS / name).is_file():
        return PACKAGED_CONFIGS / name
    blocks = sorted(p.parent.name for p in PACKAGED_CONFIGS.glob("*/"))
    raise ConfigError(
        f"config {path}: defaults entry {item!r} is neither a file next to it ({local}) nor a packaged "
        f"block (folders {blocks}; `audiodiff.config.PACKAGED_CONFIGS` lists them)"
    )


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Schema defaults <- YAML (with its defaults) <- `key.path=value` overrides, validated.

    Configs written before the `task` key (data.kind, data.condition, data.features and
    model.kind deciding) are read as the task they meant (`_upgrade`).

    Returns:
        A typed ExperimentConfig (an OmegaConf structured config behaving like the dataclass).
    """
    source = str(path) if path else "config"
    try:
        node = _merged(_load_yaml(Path(path)) if path else OmegaConf.create(), overrides)
        cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), _upgrade(node, source))
    except OmegaConfBaseException as err:
        raise _explain(err, source) from None
    return _validated(cfg, source)


def _merged(node: DictConfig, overrides: list[str] | tuple[str, ...]) -> DictConfig:
    """`node` with the `key.path=value` overrides merged in, one by one."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        node = OmegaConf.merge(node, OmegaConf.from_dotlist([item]))
    return node


def with_overrides(cfg: ExperimentConfig, overrides: list[str] | tuple[str, ...], source: str) -> ExperimentConfig:
    """A copy of a loaded config with `key.path=value` overrides, validated (`source` names it in errors)."""
    try:
        merged = _merged(OmegaConf.merge(cfg, {}), overrides)
    except OmegaConfBaseException as err:
        raise _explain(err, source) from None
    return _validated(merged, source)


# The flags that made the task decision before the `task` key, with their allowed values.
LEGACY_DATA_FLAGS = {"kind": ("audio", "images"), "condition": ("none", "mel"), "features": (False, True)}


def legacy_task(kind: str = "audio", condition: str = "none", features: bool = False, model: str = "diffwave") -> str:
    """The task an old config meant by data.kind, data.condition, data.features and model.kind."""
    if kind == "images":
        return "image"
    if features:
        return "mel_features"
    if condition == "mel":
        return "vocoder"
    return "mel" if model == "unet" else "waveform"


def _upgrade(node: DictConfig, source: str) -> DictConfig:
    """Replace an old config's task flags (data.kind/condition/features) by `task`, in place.

    A config without `task` gets the task its flags and model.kind meant (none: waveform); old
    flags beside a `task` must mean the same task. A mel_energy diffusion.prior energy range without `align`
    (stored before align existed) gets align "hold", the placement its model was trained with.
    """
    prior = OmegaConf.select(node, "diffusion.prior")
    if (
        isinstance(prior, DictConfig)
        and prior.get("kind") == "mel_energy"
        and prior.get("energy_min") is not None
        and "align" not in prior
    ):
        prior.align = "hold"
    data = node.get("data")
    old = {}
    for key, allowed in LEGACY_DATA_FLAGS.items():
        if isinstance(data, DictConfig) and key in data:
            old[key] = data.pop(key)
            if old[key] not in allowed:
                raise ConfigError(f"{source}: data.{key}={old[key]!r} is not allowed; choose one of {list(allowed)}")
    meant = legacy_task(**old, model=OmegaConf.select(node, "model.kind", default="diffwave"))
    if "task" not in node:
        node.task = meant
    elif old and node.task != meant:
        flags = ", ".join(f"data.{k}={v}" for k, v in old.items())
        raise ConfigError(f"{source}: task={node.task} contradicts the old flags {flags} (task={meant}); drop them")
    return node


def _validated(cfg: DictConfig, source: str, required: bool = True) -> ExperimentConfig:
    """`cfg` after checking (if `required`) required values, then choices and value ranges."""
    try:
        OmegaConf.to_container(cfg, throw_on_missing=required)
    except OmegaConfBaseException as err:
        raise _explain(err, source) from None
    try:  # before the task's checks, which see the network's in-channels
        cfg.model.diffwave.wave_cond = wave_cond_channels(cfg)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    _check_task(cfg, source)
    _check_values(cfg, source)
    _resolve(cfg, source)
    return cfg  # type: ignore[return-value]


def _resolve(cfg: DictConfig, source: str) -> None:
    """Replace values that depend on other keys ("auto") by what they mean, in place."""
    diffwave = cfg.model.diffwave
    try:
        cfg.train.fast_cpu = normalize_fast_cpu(cfg.train.fast_cpu)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    try:
        diffwave.embed_interp = resolve_embed_interp(diffwave.embed_interp, cfg.diffusion.kind, diffwave.embed_freqs)
    except ValueError as err:
        raise ConfigError(f"{source}: model.diffwave.{err}") from None


# Value ranges: checked for loaded configs and for configs stored in checkpoints alike.
AT_LEAST_ONE = (
    "train.steps",
    "train.batch_size",
    "train.grad_accum",
    "train.ckpt_every",
    "train.log_every",
    "data.segment",
    "data.sample_rate",
    "data.cond_griffin_lim.iters",
)
NON_NEGATIVE = ("regularizer.lam", "train.sample_every", "train.warmup_steps", "train.max_minutes")


def _check_task(cfg: DictConfig, source: str) -> None:
    """cfg.task names a registered task, and the rest of the config fits it."""
    if cfg.task not in TASKS:
        raise ConfigError(f"{source}: task={cfg.task!r} is not allowed; choose one of {list(TASKS)}")
    for problem in TASKS[cfg.task].problems(cfg):
        raise ConfigError(f"{source}: {problem}")


def _check_values(cfg: DictConfig, source: str) -> None:
    for key in AT_LEAST_ONE:
        if OmegaConf.select(cfg, key) < 1:
            raise ConfigError(f"{source}: {key}={OmegaConf.select(cfg, key)} must be >= 1")
    for key in NON_NEGATIVE:
        if OmegaConf.select(cfg, key) < 0:
            raise ConfigError(f"{source}: {key}={OmegaConf.select(cfg, key)} must be >= 0")
    if not 0 <= cfg.data.cond_griffin_lim.momentum < 1:
        raise ConfigError(
            f"{source}: data.cond_griffin_lim.momentum={cfg.data.cond_griffin_lim.momentum} must be in [0, 1)"
        )
    if problem := guidance_problem(cfg) or label_dropout_problem(cfg) or prior_problem(cfg):
        raise ConfigError(f"{source}: {problem}")
    waveform = TASKS[cfg.task].waveform
    for i, entry in enumerate(cfg.regularizer.losses):
        rate = entry.kwargs.get("sample_rate", MEL_LOSS_RATE)
        if waveform and entry.name == "mel" and rate != cfg.data.sample_rate:
            raise ConfigError(
                f"{source}: regularizer.losses[{i}] (mel) has sample_rate={rate} but data.sample_rate="
                f"{cfg.data.sample_rate}; set its kwargs.sample_rate to the data's rate"
            )


def to_yaml(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML text (stored in run dirs and checkpoints)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> leaf values of a config container (lists are leaves)."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_changes(old: ExperimentConfig, new: ExperimentConfig) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (old value, new value)} for every setting that differs, in key order.

    `name` and `exp_dir` (where the run is) are not compared.
    """
    a, b = (_flat(OmegaConf.to_container(c, resolve=True)) for c in (old, new))
    skip = {"name", "exp_dir"}
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if k not in skip and a.get(k) != b.get(k)}


def from_yaml(text: str, source: str = "stored config") -> ExperimentConfig:
    """Rebuild a validated config from `to_yaml` text (e.g. from a checkpoint); `source` names it in errors.

    Stored values are kept as they are (a checkpoint saying embed_interp "exact" samples as it
    always did); only "auto" is resolved.
    """
    try:  # load, not create: create() asserts on a scalar document ("12"), load() raises OSError
        node = OmegaConf.load(io.StringIO(text)) if isinstance(text, str) else None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: cannot parse YAML: {str(err).splitlines()[0]}") from None
    except OSError:  # "Invalid loaded object type": a number or boolean, not a mapping
        node = None
    if not isinstance(node, DictConfig) or not node:
        raise ConfigError(f"{source}: not a YAML mapping of config keys (got {text!r:.40})")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), _upgrade(node, source))
    except OmegaConfBaseException as err:
        raise _explain(err, source) from None
    return _validated(cfg, source, required=False)  # generation needs no name or data paths
