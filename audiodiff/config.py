"""Experiment configuration: dataclass schemas, YAML composition, dotted overrides.

A YAML file may start with `defaults: [path, ...]` (relative to the file): those files are
merged first, in order, then the file's own keys, then command-line overrides `key.path=value`.
Everything is validated against the schema below; an unknown key, a wrong type or a missing
required value is a `ConfigError` with one line naming the key and what is allowed.
"""

from __future__ import annotations

import inspect
import io
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from audiodiff.builders import FORMULATIONS, NETWORKS, SAMPLER_PLANS, TASKS
from audiodiff.data.validate import ON_BAD_AUDIO
from audiodiff.diffusion.ddpm import LOSS_TYPES, PREDICTIONS
from audiodiff.diffusion.prior import PriorConfig, prior_problem
from audiodiff.diffusion.regularize import WEIGHTINGS, X0_SOURCES
from audiodiff.fastcpu import normalize_fast_cpu
from audiodiff.guidance import guidance_problem, label_dropout_problem
from audiodiff.losses import NORMALIZATIONS
from audiodiff.losses.stft import MelSTFTLoss
from audiodiff.models.diffwave import DiffWaveConfig, resolve_embed_interp
from audiodiff.models.unet import UNetConfig
from audiodiff.tasks.audio import COND_WAVEFORMS, wave_cond_channels

MEL_LOSS_RATE = inspect.signature(MelSTFTLoss).parameters["sample_rate"].default

# Choices: Literal types from the registries and the modules that define them, checked by
# OmegaConf whenever a config is loaded or rebuilt from a checkpoint. `task` is checked against
# the live TASKS registry instead (tasks may be added at run time, e.g. by tests).
ModelKind = Literal[tuple(NETWORKS)]
DiffusionKind = Literal[tuple(FORMULATIONS)]
Prediction = Literal[PREDICTIONS]
LossType = Literal[LOSS_TYPES]
Weighting = Literal[WEIGHTINGS]
X0Source = Literal[X0_SOURCES]
Normalize = Literal[NORMALIZATIONS]
OnBadAudio = Literal[ON_BAD_AUDIO]
LRSchedule = Literal["constant", "cosine"]
SamplerName = Literal[tuple(SAMPLER_PLANS)]
CondScale = Literal["raw", "mel_range"]
CondWaveform = Literal[tuple(COND_WAVEFORMS)]


class ConfigError(ValueError):
    """A bad configuration: unknown key, wrong type, missing value or unreadable file."""


@dataclass
class ModelConfig:
    kind: ModelKind = "diffwave"  # the network: "diffwave" (waveforms) or "unet" (mels, images)
    # embed_interp "auto" is resolved by the formulation when the config is loaded (lerp for DDPM)
    diffwave: DiffWaveConfig = field(default_factory=lambda: DiffWaveConfig(embed_interp="auto"))
    unet: UNetConfig = field(default_factory=UNetConfig)


@dataclass
class DiffusionConfig:
    kind: DiffusionKind = "ddpm"
    schedule: str = "diffwave"  # DDPM schedule preset: diffwave, ddpm, cosine
    prediction: Prediction = "eps"
    loss_type: LossType = "l1"  # l1 (DiffWave) or l2
    sigma_data: float = 0.5  # EDM
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    prior: PriorConfig = field(default_factory=PriorConfig)  # PriorGrad's mel-energy prior (diffusion/prior.py)


@dataclass
class LossEntry:
    name: str = MISSING
    weight: float = 1.0
    label: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RegularizerConfig:
    lam: float = 0.0
    weighting: Weighting = "unweighted"  # or "weighted" (EDM)
    sigma_range: list[float] | None = None
    t_range: list[int] | None = None
    x0_source: X0Source = "one_step"  # or "rollout"
    rollout_steps: int = 4
    # "paper" (unnormalised FFT, L1 sums: values grow with the clip length) or "scale_free"
    # (orthonormal FFT, means: comparable across losses and lengths); see docs/lambda.md
    normalize: Normalize = "paper"
    losses: list[LossEntry] = field(default_factory=list)


@dataclass
class GriffinLimConfig:
    """Fast Griffin-Lim settings (audiodiff.audio.features.griffin_lim) of data.cond_waveform=griffin_lim."""

    iters: int = 32  # it runs on every training batch: 32 costs about half of 64
    momentum: float = 0.99
    seed: int = 0  # the initial phase's generator, seeded at every call: the same mels give the same waveform


@dataclass
class DataConfig:
    train: str = MISSING  # audio: a Kaldi data dir (with wav.scp) or a folder; images: a dir with images.npy
    valid: str = ""  # same kinds; used for sample conditioning and evaluation
    sample_rate: int = 16000
    segment: int = 16000  # training crop in samples (a multiple of the mel hop when conditioned)
    mel_preset: str = "speech16k"
    mel_range: list[float] = field(default_factory=lambda: [-11.5, 2.5])  # log-mel values mapped to [-1, 1]
    # vocoders: the condition as computed ("raw", lmnt's convention) or mapped by mel_range ("mel_range")
    cond_scale: CondScale = "raw"
    # vocoders: "griffin_lim" adds the Griffin-Lim waveform of the condition's mels (cond_griffin_lim's
    # settings) to the condition, as model.diffwave.wave_cond = 1 sample-rate channel; "none": the mels alone
    cond_waveform: CondWaveform = "none"
    cond_griffin_lim: GriffinLimConfig = field(default_factory=GriffinLimConfig)
    image_shape: list[int] = field(default_factory=lambda: [1, 32, 32])  # images: (C, H, W)
    # class names of a class-conditional mel model (index = class id), from data.train's utt2label
    # (or text) at training, sorted; recorded so that generation knows them
    labels: list[str] = field(default_factory=list)
    num_workers: int = 0
    on_bad_audio: OnBadAudio = (
        "error"  # unusable training files (unreadable, NaN/inf, silent, too short): error or skip
    )


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16  # global batch = per-process batch x processes x grad_accum
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0
    schedule: LRSchedule = "constant"  # "constant" or "cosine" (after warmup)
    grad_clip: float = 1.0  # 0 disables
    ema_decay: float = 0.999
    ema_halflife_steps: float = 0.0  # > 0 overrides ema_decay: decay = 0.5 ** (1 / halflife)
    bf16: bool = True  # bf16 autocast on CUDA (CPU runs: fast_cpu)
    fast_cpu: str = "auto"  # CPU bf16 autocast: auto|on|off, auto = on where the CPU has avx512_bf16/amx (fastcpu.py)
    compile: bool = False  # torch.compile the network and the spectral loss
    cuda_graphs: bool = False  # with compile on one GPU: CUDA graphs (mode="reduce-overhead"), see README
    seed: int = 0
    log_every: int = 10
    sample_every: int = 0  # 0 disables
    num_samples: int = 4
    ckpt_every: int = 500
    max_minutes: float = 0.0  # > 0: stop after this much wall-clock time with a checkpoint (resume to go on)
    keep_ckpts: int = 3
    max_bad_steps: int = 20  # consecutive non-finite steps before the run stops
    init_from: str = ""  # fine-tune: weights of an lmnt-com/diffwave checkpoint or one of ours (audiodiff/finetune.py)
    init_sha256: str = ""  # the init_from file's SHA-256: checked when set, recorded by train


@dataclass
class SampleConfig:
    sampler: SamplerName = "fast"
    steps: int = 50
    eta: float = 0.0
    churn: float = 0.0
    fast_betas: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
    rho: float = 7.0
    clip_denoised: bool = False  # clamp x0_hat to the data range [-1, 1] at every step (DDPM images)
    # classifier-free guidance w: D = D_null + w (D_label - D_null); 1 = plain conditional (one call per
    # step), 0 = unconditional; other than 1 needs model.unet.num_classes > 0 and label_dropout > 0
    guidance: float = 1.0


@dataclass
class ExperimentConfig:
    name: str = MISSING
    exp_dir: str = "exp"
    # what is generated, a key of audiodiff.builders.TASKS: waveform, vocoder (mel-conditioned
    # DiffWave), mel (log-mel UNet), mel_features (the same from dumped log-mels), image
    task: str = "waveform"
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)


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
    flags beside a `task` must mean the same task. A diffusion.prior energy range without `align`
    (stored before align existed) gets align "hold", the placement its model was trained with.
    """
    prior = OmegaConf.select(node, "diffusion.prior")
    if isinstance(prior, DictConfig) and prior.get("energy_min") is not None and "align" not in prior:
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
        diffwave.embed_interp = resolve_embed_interp(diffwave.embed_interp, cfg.diffusion.kind)
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
