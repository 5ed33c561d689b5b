"""The training loop: data -> model -> regularized objective -> AdamW, one readable function
(each optimizer step is `train_step`, audiodiff/train_step.py).

Run with `audiodiff train CONFIG [key=value ...]`, or on several processes with
`torchrun --nproc_per_node N -m audiodiff.cli train ...` (DistributedDataParallel; NCCL on
GPUs, gloo on CPUs). The global batch stays `train.batch_size` whatever the process count:
each process takes batch_size / (processes x grad_accum) examples per micro-step.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from torch import Tensor, nn

from audiodiff.builders import build_formulation, build_network, build_task
from audiodiff.checkpoint import ResumedPrior, latest_checkpoint, load_checkpoint, load_weights, save_checkpoint
from audiodiff.config import ExperimentConfig, from_yaml, to_yaml
from audiodiff.data.datasets import TrainingStream
from audiodiff.data.validate import describe_bad
from audiodiff.diffusion import SpectralObjective, training_sample
from audiodiff.fastcpu import machine, resolve_fast_cpu
from audiodiff.finetune import inherit_prior, init_from_checkpoint
from audiodiff.losses import build_spectral_loss
from audiodiff.runfiles import keep_prior_align, prepare_run_dir, record_resume, resume_changes, resumed_time
from audiodiff.sampling import sample
from audiodiff.tasks import Task
from audiodiff.train_step import train_step


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


clock = time.monotonic  # wall clock for train.max_minutes and train_seconds (tests replace it)


def _out_of_time(elapsed: float, max_minutes: float, world: int, device: torch.device) -> bool:
    """Whether train.max_minutes have passed (`elapsed` seconds); rank 0's clock decides for every process."""
    if max_minutes <= 0:
        return False
    late = elapsed >= 60 * max_minutes
    if world > 1:  # the processes must stop at the same step (a lone process would wait in all-reduce)
        flag = torch.tensor([float(late)], device=device)
        dist.broadcast(flag, 0)
        late = bool(flag.item())
    return late


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


def _check_replicas(model: nn.Module) -> None:
    """Raise if the processes' parameters differ (they must stay identical under DDP)."""
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    if dist.get_backend() == "nccl":
        checksum = checksum.cuda()
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"parameters differ across processes: checksums {[g.item() for g in gathered]}")


def _crop_note(cfg: ExperimentConfig, net: nn.Module, task) -> str | None:
    """A warning when a waveform crop is shorter than the network's receptive field, else None.

    Not an error: the paper's SC09 DiffWave (36 layers, cycle 12: 24,571 samples) trains on
    16,000-sample crops; the network zero-pads, so its widest dilations see padding while training.
    """
    field = getattr(net, "receptive_field", 0)
    if not task.waveform or field <= cfg.data.segment:
        return None
    return (
        f"warning: data.segment={cfg.data.segment} is shorter than the network's receptive field "
        f"({field} samples): its widest dilations see only zero padding while training"
    )


def train(
    cfg: ExperimentConfig,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    auto_resume: bool = False,
    allow_changes: bool = False,
    stop_at: int | None = None,
) -> Path:
    """Train as `cfg` says; returns the run directory exp_dir/name.

    Writes config.yaml, log.txt, TensorBoard events, checkpoints/ (atomic, last K + `latest`),
    and samples/ every train.sample_every steps. With `resume` it continues exactly where the
    latest checkpoint stopped (same weights as an uninterrupted run on CPU); `auto_resume` does
    so when there is a checkpoint and starts otherwise. Resuming with settings other than the
    checkpoint's (besides RESUME_FREE) needs `allow_changes`; the changes and the step are then
    written to log.txt and the previous config.yaml kept in config_history/. The run directory
    is locked for the whole run: a second writer is refused (RunInUseError). With
    train.max_minutes > 0 the loop stops once that much time has passed since it began (model
    building and data loading not counted), saves a checkpoint and returns: a resumable slice.
    Every checkpoint records `train_seconds`, on the same clock: the seconds since this process's
    first step plus the resumed checkpoint's train_seconds, i.e. the training time summed over the
    run's pieces (`train_pieces` of them), without their set-up (reading the data, building the model:
    as lmnt's trainer in egs/asterisk_en/local/lmnt_train.py counts) and without the idle time between
    them; log.txt's "checkpoint ckpt-N.pt saved at step N, train_seconds=T" lines repeat it. A resume from a
    checkpoint without one takes its mtime minus the run's start (`runfiles.resumed_time`, logged). A
    fine-tune (train.init_from) counts from 0: only the weights come from its source, not the source's time.
    `stop_at` ends the run after that step (with a checkpoint) while the learning-rate schedule
    stays that of train.steps: the start of a longer run, as audiodiff.reproduce re-trains it.
    """
    rank, world, local_rank = _distributed()
    run = Path(cfg.exp_dir) / cfg.name
    task = build_task(cfg, torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"))
    # a fine-tuned run keeps its source's prior (resumed: its own checkpoint's), not one from data.train;
    # a resumed run keeps its checkpoint's prior align when the config leaves it unset. The checkpoint's
    # prior is read when one of them asks, once for both (None: a new run, or --auto-resume of one not started)
    latest = latest_checkpoint(run / "checkpoints") if (resume or auto_resume) and not force else None
    resumed = ResumedPrior(latest) if latest is not None else None
    prior_note = inherit_prior(cfg, resumed)
    keep_prior_align(cfg, resumed)
    examples = task.examples()  # the data is read and audited before anything is created
    lock, resume = prepare_run_dir(run, resume or auto_resume, force, rank, auto_resume)
    with lock:
        _train(cfg, run, resume, progress, rank, world, task, examples, allow_changes, stop_at, prior_note)
    return run


def _train(
    cfg: ExperimentConfig,
    run: Path,
    resume: bool,
    progress: bool,
    rank: int,
    world: int,
    task: Task,
    examples: torch.utils.data.Dataset,
    allow_changes: bool = False,
    stop_at: int | None = None,
    prior_note: str | None = None,
) -> None:
    """The loop of `train()`, run while the run directory is locked; `prior_note` goes into log.txt."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    tc = cfg.train
    device = task.device
    local_rank = device.index or 0
    tc.fast_cpu, fast_note = resolve_fast_cpu(tc.fast_cpu, device)  # recorded resolved: config.yaml, checkpoints

    # ---- model, objective, optimizer (same init on every rank; DDP keeps them in step)
    torch.manual_seed(tc.seed)
    net = build_network(cfg).to(device)
    latest = latest_checkpoint(run / "checkpoints") if resume else None
    if tc.init_from and latest is None:  # fine-tuning: weights only (the step starts at 0); not on a resume
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
    task.check_loss(spectral)
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
    step, rng, changes = 0, None, []
    trained, pieces, time_note, time_log = 0.0, 0, None, None  # training time before this process (train()'s doc)
    if resume and latest is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {run / 'checkpoints'}")
    if latest is not None:
        state = load_checkpoint(latest, map_location=device)
        stored = from_yaml(state["config"], f"{latest}: stored config")
        for key in ("model.kind", "task"):
            held, wanted = OmegaConf.select(stored, key), OmegaConf.select(cfg, key)
            if held != wanted:
                raise ValueError(
                    f"--resume: {latest} holds a {key}={held} model but the config says {key}={wanted}; "
                    "resume with the run's own config or pass --force to start over"
                )
        load_weights(net, state["model"], latest)
        if tc.init_from and not tc.init_sha256:  # the source was hashed when the run started (not read again)
            tc.init_sha256 = stored.train.init_sha256
        changes = resume_changes(stored, cfg, latest, allow_changes)
        for (name, _), e in zip(net.named_parameters(), ema):
            e.copy_(state["ema"][name])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        rng = state["rng_cpu"], state.get("rng_cuda")
        trained, pieces, time_note, time_log = resumed_time(run, latest, state)

    # ---- data: a global-batch stream, exact to resume and independent of the process count
    stream = TrainingStream(len(examples), tc.batch_size, tc.seed, rank, world, tc.grad_accum, start_step=step)
    loader = torch.utils.data.DataLoader(
        examples, batch_sampler=stream, num_workers=cfg.data.num_workers, pin_memory=fused
    )
    batches = iter(loader)

    def next_micro() -> tuple[Tensor, Tensor | None, dict]:
        batch = next(batches)
        x0, cond = task.to_model(batch)
        draws = {k: batch[k].to(device) for k in ("u", "z")}
        return x0, cond, training_sample(formulation, draws, batch["noise"].to(device, non_blocking=True))

    # ---- logging (rank 0 only)
    writer = None
    log = open(run / "log.txt", "a") if rank == 0 else None  # noqa: SIM115
    if rank == 0:
        if latest is not None:
            record_resume(run, log, latest, step, changes, to_yaml(cfg))
            if time_log:
                log.write(time_log + "\n")
        (run / "config.yaml").write_text(to_yaml(cfg))
        writer = SummaryWriter(str(run / "tensorboard"))
    if log:  # the commit and machine on every start and resume: `audiodiff export` puts them on the card
        from audiodiff.eval.results import source_commit

        commit = source_commit() or "unknown (not a git checkout)"
        log.write(f"commit {commit}\nmachine {machine(device)}\n{fast_note}\n")
    if log and task.bad:
        log.write(f"data.on_bad_audio=skip: left out {describe_bad(task.bad)}\n")
    if log and prior_note:
        log.write(prior_note + "\n")
    if log and (note := _crop_note(cfg, net, task)):
        log.write(note + "\n")
        tqdm.write(note)
    bar = tqdm(total=tc.steps, initial=step, desc=cfg.name, disable=rank != 0 or not progress)
    autocast = tc.bf16 if device.type == "cuda" else tc.fast_cpu == "on"

    def checkpoint(now: float) -> None:
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
                "train_seconds": round(trained + now - started, 1),
                "train_pieces": pieces + 1,
            }
            if time_note:
                state["train_seconds_note"] = time_note
            if device.type == "cuda":
                state["rng_cuda"] = torch.cuda.get_rng_state(device)
            path = save_checkpoint(run / "checkpoints", step, state, tc.keep_ckpts)
            log.write(f"checkpoint {path.name} saved at step {step}, train_seconds={state['train_seconds']:g}\n")
            log.flush()

    if rng is not None:  # after the model, the data iterator and the loss: exact resume with dropout
        torch.set_rng_state(rng[0])
        if device.type == "cuda" and rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], device)

    # ---- the loop
    bad_in_a_row, skipped, t_last, started = 0, 0, time.perf_counter(), clock()
    last = min(tc.steps, stop_at or tc.steps)
    while step < last:
        for group in opt.param_groups:
            group["lr"] = tc.lr * _lr_factor(step, tc.warmup_steps, tc.steps, tc.schedule)
        sums, grad_norm, ok = train_step(
            next_micro,
            call,
            objective,
            opt,
            ema,
            decay,
            grad_accum=tc.grad_accum,
            grad_clip=tc.grad_clip,
            autocast=autocast,
            graphs=graphs,
            model=model,
        )
        if ok:
            bad_in_a_row = 0
        else:  # skipped: the weights stay, but the batch is consumed and counted (resume stays aligned)
            bad_in_a_row, skipped = bad_in_a_row + 1, skipped + 1
            if bad_in_a_row >= tc.max_bad_steps:
                raise NonFiniteLossError(
                    f"{bad_in_a_row} consecutive steps with a non-finite loss or gradient at step {step}; stopped "
                    f"(the last good checkpoint is kept). Try a lower train.lr, train.grad_clip or regularizer.lam."
                )
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
            _log_samples(
                cfg, net, ema, formulation, task, len(examples), writer, run / "samples" / f"step_{step:08d}", step
            )
        now = clock()  # one look per step: train_seconds of a checkpoint and train.max_minutes
        if step % tc.ckpt_every == 0 or step == last:
            checkpoint(now)
        if step < tc.steps and _out_of_time(now - started, tc.max_minutes, world, device):
            if step % tc.ckpt_every:
                checkpoint(now)
            if rank == 0:
                note = f"train.max_minutes={tc.max_minutes:g} reached at step {step}: checkpoint saved; resume to go on"
                log.write(note + "\n")
                tqdm.write(note)
            break
    bar.close()
    if rank == 0:
        writer.close()
        log.close()


def _log_samples(cfg, net, ema, formulation, task: Task, available: int, writer, out: Path, step: int) -> None:
    """Generate a few samples with the EMA weights; the task writes them to `out` and TensorBoard."""
    saved = [p.detach().clone() for p in net.parameters()]
    torch._foreach_copy_([p.data for p in net.parameters()], ema)
    net.eval()
    try:
        seeds = list(range(min(cfg.train.num_samples, available)))
        cond = task.preview_condition(seeds)
        x = sample(net, formulation, cfg, seeds, task.shape(cond), cond)
        task.log_samples(writer, out, seeds, task.decode(x, seeds), step)
    finally:
        torch._foreach_copy_([p.data for p in net.parameters()], saved)
        net.train()
