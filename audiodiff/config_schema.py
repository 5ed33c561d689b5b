"""The experiment config's schema: one dataclass per block, the choices as Literal types.

`audiodiff.config` loads, composes, overrides and validates configs against it and re-exports
these classes (`from audiodiff.config import ExperimentConfig` stays the import to use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from omegaconf import MISSING

from audiodiff.builders import FORMULATIONS, NETWORKS, SAMPLER_PLANS
from audiodiff.data.validate import ON_BAD_AUDIO
from audiodiff.diffusion.ddpm import LOSS_TYPES, PREDICTIONS
from audiodiff.diffusion.prior import PriorConfig
from audiodiff.diffusion.regularize import WEIGHTINGS, X0_SOURCES
from audiodiff.losses import NORMALIZATIONS
from audiodiff.models.diffwave import DiffWaveConfig
from audiodiff.models.unet import UNetConfig
from audiodiff.tasks.audio import COND_WAVEFORMS

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
    fast_cpu: str = "auto"  # CPU bf16 autocast: auto|on|off, auto = on where the CPU has AMX bf16 (fastcpu.py)
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
