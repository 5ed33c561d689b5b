"""The training loop: data -> model -> regularized objective -> AdamW, one readable function.

Run with `audiodiff train CONFIG [key=value ...]`, or on several processes with
`torchrun --nproc_per_node N -m audiodiff.cli train ...` (DistributedDataParallel; NCCL on
GPUs, gloo on CPUs). The global batch stays `train.batch_size` whatever the process count:
each process takes batch_size / (processes x grad_accum) examples per micro-step.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from audiodiff.audio.features import LogMel, griffin_lim, mel_config
from audiodiff.checkpoint import latest_checkpoint, load_checkpoint, load_weights, remove_stale_temps, save_checkpoint
from audiodiff.config import ExperimentConfig, from_yaml, to_yaml
from audiodiff.data.datasets import AudioClips, DiffusionExamples, ImageArrays, TrainingStream
from audiodiff.data.features import MelFeatureExamples
from audiodiff.data.validate import describe_bad
from audiodiff.diffusion import DDPM, SpectralObjective
from audiodiff.finetune import init_from_checkpoint
from audiodiff.generate import (
    build_formulation,
    build_network,
    generate_images,
    image_grid,
    mel_to_unit,
    sample,
    spectrogram_grid,
    unit_to_mel,
)
from audiodiff.losses import build_spectral_loss
from audiodiff.runfiles import RunLock, clear_run_dir, run_contents, writable_dir


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def _prepare_run_dir(run: Path, resume: bool, force: bool, rank: int) -> AbstractContextManager:
    """Lock the run directory (rank 0), check it against resume/force and make checkpoints/.

    Returns:
        The held RunLock on rank 0 (a no-op context elsewhere): the run holds it until it ends.
    """
    lock: AbstractContextManager = nullcontext()
    if rank == 0:
        if resume and not run.is_dir():
            raise FileNotFoundError(f"--resume: no run directory {run}; start it without --resume")
        lock = RunLock(writable_dir(run, "run directory"))
        try:
            if resume and latest_checkpoint(run / "checkpoints") is None:
                raise FileNotFoundError(
                    f"--resume: no checkpoint in {run / 'checkpoints'} to resume; start without --resume "
                    "(add --force to replace what the run directory holds)"
                )
            if not resume and run_contents(run):
                if not force:
                    raise FileExistsError(
                        f"run directory {run} is not empty; pass --resume to continue it or --force to replace it"
                    )
                clear_run_dir(run)
            (run / "checkpoints").mkdir(exist_ok=True)
            remove_stale_temps(run / "checkpoints")
        except BaseException:
            lock.release()
            raise
    if dist.is_initialized():
        dist.barrier()
    return lock


def _check_crop(spectral: nn.Module, segment: int, device: torch.device) -> None:
    """Raise a one-line ValueError if a crop of `segment` samples is too short for a regularizer term."""
    probe = torch.zeros(1, 1, segment, device=device)
    for label, loss in spectral.losses.items():
        try:
            with torch.no_grad():
                loss(probe, probe)
        except RuntimeError as err:
            raise ValueError(
                f"data.segment={segment} is too short for the regularizer '{label}': {str(err).splitlines()[0]}"
            ) from err


def _check_replicas(model: nn.Module) -> None:
    """Raise if the processes' parameters differ (they must stay identical under DDP)."""
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    if dist.get_backend() == "nccl":
        checksum = checksum.cuda()
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"parameters differ across processes: checksums {[g.item() for g in gathered]}")


def train(cfg: ExperimentConfig, resume: bool = False, force: bool = False, progress: bool = True) -> Path:
    """Train as `cfg` says; returns the run directory exp_dir/name.

    Writes config.yaml, log.txt, TensorBoard events, checkpoints/ (atomic, last K + `latest`),
    and samples/ every train.sample_every steps. With `resume` it continues exactly where the
    latest checkpoint stopped (same weights as an uninterrupted run on CPU). The run directory
    is locked for the whole run: a second writer is refused (RunInUseError).
    """
    rank, world, local_rank = _distributed()
    run = Path(cfg.exp_dir) / cfg.name
    with _prepare_run_dir(run, resume, force, rank):
        _train(cfg, run, resume, progress, rank, world, local_rank)
    return run


def _train(
    cfg: ExperimentConfig, run: Path, resume: bool, progress: bool, rank: int, world: int, local_rank: int
) -> None:
    """The loop of `train()`, run while the run directory is locked."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    tc = cfg.train
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")

    # ---- model, objective, optimizer (same init on every rank; DDP keeps them in step)
    torch.manual_seed(tc.seed)
    net = build_network(cfg).to(device)
    if tc.init_from:  # fine-tuning: weights only (the step starts at 0); a resume then replaces them
        init_from_checkpoint(net, cfg, run / "log.txt" if rank == 0 else None)
    formulation = build_formulation(cfg).to(device)
    rc = cfg.regularizer
    spectral = build_spectral_loss(
        [{"name": e.name, "weight": e.weight, "label": e.label or None, "kwargs": dict(e.kwargs)} for e in rc.losses],
        rc.normalize,
    )
    objective = SpectralObjective(
        formulation, spectral, rc.lam, rc.weighting, rc.sigma_range, rc.t_range, rc.x0_source, rc.rollout_steps
    ).to(device)
    if cfg.model.kind == "diffwave" and cfg.data.kind == "audio":
        _check_crop(spectral, cfg.data.segment, device)
    ema = [p.detach().clone() for p in net.parameters()]
    decay = 0.5 ** (1 / tc.ema_halflife_steps) if tc.ema_halflife_steps > 0 else tc.ema_decay
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(
        net.parameters(), lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay, fused=fused or None
    )
    model = nn.parallel.DistributedDataParallel(net, [local_rank] if fused else None) if world > 1 else net
    graphs = tc.compile and tc.cuda_graphs and device.type == "cuda"
    if tc.cuda_graphs and (world > 1 or not tc.compile):
        raise ValueError("train.cuda_graphs needs train.compile=true and a single process")
    mode = "reduce-overhead" if graphs else None
    call = torch.compile(model, mode=mode) if tc.compile else model
    if tc.compile and len(spectral):
        spectral.compile(mode=mode)

    # ---- resume (the RNG state is restored just before the loop, after everything that draws from it)
    step, rng = 0, None
    latest = latest_checkpoint(run / "checkpoints") if resume else None
    if resume and latest is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {run / 'checkpoints'}")
    if latest is not None:
        state = load_checkpoint(latest, map_location=device)
        stored = from_yaml(state["config"], f"{latest}: stored config")
        if stored.model.kind != cfg.model.kind:
            raise ValueError(
                f"--resume: {latest} holds a model.kind={stored.model.kind} model but the config says "
                f"model.kind={cfg.model.kind}; resume with the run's own config or pass --force to start over"
            )
        load_weights(net, state["model"], latest)
        for (name, _), e in zip(net.named_parameters(), ema):
            e.copy_(state["ema"][name])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        rng = state["rng_cpu"], state.get("rng_cuda")

    # ---- data: a global-batch stream, exact to resume and independent of the process count
    images = cfg.data.kind == "images"
    mel = mel_config(cfg.data.mel_preset, sample_rate=cfg.data.sample_rate)
    if images:
        clips = ImageArrays(cfg.data.train)
        if cfg.model.kind != "unet" or list(clips.images.shape[1:]) != list(cfg.data.image_shape):
            raise ValueError(
                f"data.kind=images needs model.kind=unet and data.image_shape={list(clips.images.shape[1:])} "
                f"(the data's (C, H, W)); got model.kind={cfg.model.kind}, image_shape={list(cfg.data.image_shape)}"
            )
        examples = clips
    else:
        seconds = mel.n_fft / mel.sample_rate  # audited up front; shorter than one STFT frame is unusable
        clips = AudioClips(
            cfg.data.train, cfg.data.sample_rate, cfg.data.segment, True, True, cfg.data.on_bad_audio, seconds
        )
        noise_shape = (1, cfg.data.segment)
        if cfg.model.kind == "unet":  # noise for (1, n_mels, frames) log-mels
            noise_shape = (1, mel.n_mels, cfg.data.segment // mel.hop + 1)
        examples = DiffusionExamples(clips, noise_shape)
        if cfg.data.features:
            if cfg.model.kind != "unet":
                raise ValueError("data.features=true serves mel-spectrogram models (model.kind=unet)")
            examples = MelFeatureExamples(cfg.data.train, cfg.data.mel_preset, cfg.data.sample_rate, noise_shape[-1])
    stream = TrainingStream(len(examples), tc.batch_size, tc.seed, rank, world, tc.grad_accum, start_step=step)
    loader = torch.utils.data.DataLoader(
        examples, batch_sampler=stream, num_workers=cfg.data.num_workers, pin_memory=fused
    )
    batches = iter(loader)
    mel_model = cfg.model.kind == "unet" and not images  # mel-spectrogram diffusion: x0 is the normalized log-mel
    if mel_model and cfg.data.condition != "none":
        raise ValueError("model.kind=unet models log-mels unconditionally; set data.condition=none")
    logmel = LogMel(mel).to(device) if mel_model or cfg.data.condition == "mel" else None
    if cfg.data.condition == "mel":
        if cfg.model.kind != "diffwave" or cfg.model.diffwave.hop != logmel.config.hop:
            raise ValueError(f"data.condition=mel needs model.kind=diffwave with hop {logmel.config.hop}")
        if cfg.data.segment % logmel.config.hop:
            raise ValueError(f"data.segment={cfg.data.segment} must be a multiple of the mel hop {logmel.config.hop}")

    # ---- logging (rank 0 only)
    writer = None
    if rank == 0:
        (run / "config.yaml").write_text(to_yaml(cfg))
        writer = SummaryWriter(str(run / "tensorboard"))
    log = open(run / "log.txt", "a") if rank == 0 else None  # noqa: SIM115
    if log and getattr(clips, "bad", None):
        log.write(f"data.on_bad_audio=skip: left out {describe_bad(clips.bad)}\n")
    bar = tqdm(total=tc.steps, initial=step, desc=cfg.name, disable=rank != 0 or not progress)
    autocast = device.type == "cuda" and tc.bf16

    def checkpoint() -> None:
        if world > 1:
            _check_replicas(net)
        if rank == 0:
            state = {
                "model": net.state_dict(),
                "ema": net.state_dict() | {name: e for (name, _), e in zip(net.named_parameters(), ema)},
                "optimizer": opt.state_dict(),
                "step": step,
                "config": to_yaml(cfg),
                "rng_cpu": torch.get_rng_state(),
                "world_size": world,
                "torch": str(torch.__version__),
            }
            if device.type == "cuda":
                state["rng_cuda"] = torch.cuda.get_rng_state(device)
            save_checkpoint(run / "checkpoints", step, state, tc.keep_ckpts)

    if rng is not None:  # after the model, the data iterator and the loss: exact resume with dropout
        torch.set_rng_state(rng[0])
        if device.type == "cuda" and rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], device)

    # ---- the loop
    bad_in_a_row, skipped, t_last = 0, 0, time.perf_counter()
    while step < tc.steps:
        for group in opt.param_groups:
            group["lr"] = tc.lr * _lr_factor(step, tc.warmup_steps, tc.steps, tc.schedule)
        sums: dict[str, float] = {}
        for micro in range(tc.grad_accum):
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            batch = next(batches)
            x0 = batch["audio"].to(device, non_blocking=True)
            noise = batch["noise"].to(device, non_blocking=True)
            levels = formulation.levels_from(batch["u"].to(device), batch["z"].to(device))
            key = "t" if isinstance(formulation, DDPM) else "sigma"
            cond = None
            if images:
                cond = batch["label"].to(device) if cfg.model.unet.num_classes else None
            elif cfg.model.kind == "unet":  # x0 is audio, or dumped log-mels with data.features
                x0 = mel_to_unit(x0 if cfg.data.features else logmel(x0), cfg.data.mel_range)[:, None]
            elif logmel is not None:
                cond = logmel(x0)[..., : x0.shape[-1] // logmel.config.hop]
            sync = world == 1 or micro == tc.grad_accum - 1
            with model.no_sync() if not sync else torch.enable_grad():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    out = objective(call, x0, cond, **{key: levels, "noise": noise})
                (out["loss"].mean() / tc.grad_accum).backward()
            for name, value in out.items():
                if name != "x0_hat":
                    sums[name] = sums.get(name, 0.0) + value.detach().float().mean() / tc.grad_accum
        grad_norm = nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip if tc.grad_clip > 0 else float("inf"))
        loss_value = sums["loss"]
        if torch.isfinite(grad_norm) and torch.isfinite(loss_value):
            bad_in_a_row = 0
            opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in net.parameters()], 1 - decay)
        else:  # skipped: the weights stay, but the batch is consumed and counted (resume stays aligned)
            bad_in_a_row, skipped = bad_in_a_row + 1, skipped + 1
            if bad_in_a_row >= tc.max_bad_steps:
                raise NonFiniteLossError(
                    f"{bad_in_a_row} consecutive steps with a non-finite loss or gradient at step {step}; stopped "
                    f"(the last good checkpoint is kept). Try a lower train.lr, train.grad_clip or regularizer.lam."
                )
        opt.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)

        if rank == 0 and (step % tc.log_every == 0 or step == tc.steps):
            now = time.perf_counter()
            scalars = {k: float(v) for k, v in sums.items()}
            if "spectral" in scalars:  # lambda_eff * L_spec over the denoising loss: is lambda sensible?
                scalars["spectral_ratio"] = scalars["spectral"] / max(scalars["denoise"], 1e-12)
            rate = tc.log_every / max(now - t_last, 1e-9)
            t_last = now
            for k, v in scalars.items():
                writer.add_scalar(f"loss/{k}", v, step)
            writer.add_scalar("train/lr", opt.param_groups[0]["lr"], step)
            writer.add_scalar("train/grad_norm", float(grad_norm), step)
            writer.add_scalar("train/skipped_steps", skipped, step)
            terms = {k: f"{scalars[k]:.4g}" for k in ("loss", "denoise", "spectral") if k in scalars}
            bar.set_postfix(**terms, steps_s=f"{rate:.2f}")
            log.write(
                f"step {step} "
                + " ".join(f"{k}={v:.6g}" for k, v in scalars.items())
                + f" lr={opt.param_groups[0]['lr']:.3g} grad_norm={float(grad_norm):.4g} skipped={skipped}\n"
            )
            log.flush()
        if tc.sample_every and step % tc.sample_every == 0 and rank == 0:
            _log_samples(cfg, net, ema, formulation, clips, logmel, writer, run, step, device)
        if step % tc.ckpt_every == 0 or step == tc.steps:
            checkpoint()
    bar.close()
    if rank == 0:
        writer.close()
        log.close()


def _log_samples(cfg, net, ema, formulation, clips, logmel, writer, run, step, device) -> None:
    """Generate a few clips with the EMA weights; write them to TensorBoard and samples/step_<k>/."""
    from audiodiff.audio.io import save_audio

    saved = [p.detach().clone() for p in net.parameters()]
    torch._foreach_copy_([p.data for p in net.parameters()], ema)
    net.eval()
    try:
        n = min(cfg.train.num_samples, len(clips))
        seeds = list(range(n))
        if cfg.data.kind == "images":
            pictures = generate_images(net, formulation, cfg, seeds)
            out = run / "samples" / f"step_{step:08d}"
            image_grid(pictures, out / "grid.png")
            writer.add_images("samples/images", (pictures.float().cpu() + 1) / 2, step)
            return
        cond = None
        if cfg.data.condition == "mel":
            audio = torch.stack([clips[i][0] for i in range(n)]).to(device)
            cond = logmel(audio)[..., : audio.shape[-1] // logmel.config.hop]
        if cfg.model.kind == "unet":
            frames = cfg.data.segment // logmel.config.hop + 1
            mels = sample(net, formulation, cfg, seeds, (1, logmel.config.n_mels, frames))
            wavs = griffin_lim(logmel, unit_to_mel(mels[:, 0], cfg.data.mel_range), length=cfg.data.segment)
        else:
            wavs = sample(net, formulation, cfg, seeds, (1, cfg.data.segment), cond)
        out = run / "samples" / f"step_{step:08d}"
        sr = cfg.data.sample_rate
        for seed, wav in zip(seeds, wavs):
            save_audio(out / f"{seed}.wav", wav, sr)
            writer.add_audio(f"samples/{seed}", wav.float().cpu().clamp(-1, 1).reshape(1, -1), step, sr)
        spectrogram_grid(list(wavs), sr, out / "spectrograms.png", [str(s) for s in seeds])
        import matplotlib.image

        writer.add_image(
            "samples/spectrograms", matplotlib.image.imread(out / "spectrograms.png")[..., :3], step, dataformats="HWC"
        )
    finally:
        torch._foreach_copy_([p.data for p in net.parameters()], saved)
        net.train()
