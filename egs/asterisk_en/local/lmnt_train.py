#!/usr/bin/env python
"""lmnt's DiffWave trainer on this recipe's data: the side-by-side anchor of issue 18.

    python local/lmnt_train.py train --train data/asterisk_en/data/train --out exp/lmnt --steps 20000
    python local/lmnt_train.py curve exp/lmnt --ref data/curve8 --seeds 0 --generate "--mels-from data/curve8" \\
        --evaluate "--metrics mrstft,lsd,pesq" --metrics mrstft,lsd_db,pesq_wb

`train` runs lmnt-com/diffwave's own code (the `diffwave` package: `pip install --no-deps diffwave`,
as the Makefile does; it is an optional reference, not an audiodiff dependency): their model
(diffwave.model.DiffWave), their training step (DiffWaveLearner.train_step: L1 on eps, t uniform
over their 50-step schedule, Adam, gradient clipping at params.max_grad_norm), their crop and
batching (diffwave.dataset.Collator) and their mel features (diffwave.preprocess.transform,
re-written here in torch because it needs torchaudio, which the pinned stack does not install:
`lmnt_mel`, checked against their function in tests). It saves their checkpoints
(`weights-<step>.pt`, DiffWaveLearner.save_to_checkpoint) every --ckpt_every steps, at --steps and
when --minutes have passed, with the wall time of each in `wall.json`, and continues from
`weights.pt` when run again (the wall time then adds on). The clock starts where ours does: at the
first step, once the model, the optimizer, a resumed state and the data (their mels, computed once
as their preprocess does before training) are ready; our trainer reads its clips and builds its
model before its first step, where its train_seconds (the wall time of its curve) and train.max_minutes' clock start.

Their params take our vocoder's sizes from `--conf` (conf/baseline.yaml) where lmnt has a knob:
sample rate (data.sample_rate), residual layers, residual channels, dilation cycle, n_mels, batch size,
learning rate, gradient clipping, and the crop (data.segment samples at their hop: 2048 / 256 = 8 frames).
A run continued from `weights.pt` draws its crops, batch order, diffusion steps and noise from a seed
derived from (--seed, step) (`resume_seed`), not the first run's draws again. What differs:
- hop 256 and n_fft 1024 (win 1024; at the recipe's 16 kHz), not our speech16k hop 128 / n_fft 512:
  their spectrogram upsampler is two fixed x16 transposed convolutions, so hop 256 is built in;
- their mels: magnitude (power 1), window-normalised, 20 Hz to sr / 2 HTK bands without area norm,
  20 log10(max(m, 1e-5)) - 20 dB mapped by (x + 100) / 100 to [0, 1]; ours are natural-log Slaney
  mels mapped by data.mel_range to [-1, 1];
- no learning-rate warm-up and no EMA (our trainer: 200 warm-up steps, EMA half-life 200 steps),
  a fixed 512-wide step embedding (ours 128), the noise schedule is the same (linear betas 1e-4..0.05
  over 50 steps, lmnt's params.noise_schedule);
- data loading in this process (num_workers 0, one thread) rather than their one worker per core.

`curve` scores every saved checkpoint like recipes/learning_curve.py (same options, same
curve.json/.md/.png, so `--compare` plots the two runs together), vocoding each clip of
`--generate "--mels-from DIR"` with lmnt's own inference (diffwave.inference.predict, their
6-step fast schedule; `--generate "--mels-from DIR --full"` for their 50 steps) from their mels
of the clip, one seed per clip (seed k of --seeds for clip k), output cut to the clip's length.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import random
import sys
import time
import types
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "recipes"))
lc = importlib.import_module("learning_curve")  # recipes/learning_curve.py: the scoring and the curve files

from audiodiff.audio.io import save_audio  # noqa: E402
from audiodiff.checkpoint import write_json  # noqa: E402
from audiodiff.config import load_config  # noqa: E402
from audiodiff.data.datasets import list_audio  # noqa: E402
from audiodiff.models.lmnt import safe_torch_load, split_lmnt_checkpoint  # noqa: E402
from audiodiff.runfiles import write_set_listing  # noqa: E402

LMNT_HOP = 256  # diffwave.model.SpectrogramUpsampler: two x16 transposed convolutions
WALL = "wall.json"  # {step: seconds of training} of every saved checkpoint
clock = time.perf_counter  # the training clock of wall.json and --minutes (tests replace it)


def lmnt(module: str) -> types.ModuleType:
    """Import diffwave.<module> (lmnt's package) or stop with one line saying how to install it.

    Their learner, dataset and inference modules import torchaudio at the top but use it only to
    read files and in their command-line mains, which are not used here: without torchaudio an
    empty placeholder module stands in for the import.
    """
    try:
        importlib.import_module("diffwave.params")
    except ImportError:
        raise SystemExit(
            "lmnt_train.py: needs lmnt's `diffwave` package: pip install --no-deps diffwave (see the Makefile)"
        ) from None
    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    return importlib.import_module(f"diffwave.{module}")


def lmnt_params(conf: Path) -> dict:
    """lmnt's params (diffwave.params.params) with our vocoder's rate and sizes from `conf` where they have a knob."""
    from audiodiff.audio.features import mel_config

    cfg = load_config(conf, ["name=lmnt", "data.train=unused"])  # the sizes only
    net, sample_rate = cfg.model.diffwave, cfg.data.sample_rate
    if cfg.data.cond_waveform != "none":
        raise ValueError(
            f"{conf}: data.cond_waveform={cfg.data.cond_waveform}: lmnt's DiffWave is conditioned on mels only"
        )
    if cfg.data.segment % LMNT_HOP:
        raise ValueError(f"{conf}: data.segment={cfg.data.segment} is not a whole number of lmnt hops ({LMNT_HOP})")
    params = dict(lmnt("params").params)
    params.update(
        sample_rate=sample_rate,
        n_mels=mel_config(cfg.data.mel_preset, sample_rate=sample_rate).n_mels,
        n_fft=4 * LMNT_HOP,
        hop_samples=LMNT_HOP,
        crop_mel_frames=cfg.data.segment // LMNT_HOP,
        residual_layers=net.layers,
        residual_channels=net.channels,
        dilation_cycle_length=net.cycle,
        batch_size=cfg.train.batch_size,
        learning_rate=cfg.train.lr,
        max_grad_norm=cfg.train.grad_clip or None,
    )
    return params


def read_lmnt_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """(T,) float audio as their preprocess and dataset read it: int16 / 32767.5, clamped to [-1, 1]."""
    data, sr = sf.read(str(path), dtype="int16", always_2d=True)
    if sr != sample_rate:
        raise ValueError(f"{path}: sample rate {sr}, lmnt's params.sample_rate is {sample_rate} (no resampling)")
    return torch.clamp(torch.from_numpy(data[:, 0].astype(np.float32)) / 32767.5, -1.0, 1.0)


def lmnt_mel(audio: torch.Tensor, params: dict) -> torch.Tensor:
    """Their preprocess.transform in torch, without torchaudio: audio (T,) -> mels (n_mels, T // hop + 1) in [0, 1].

    torchaudio's MelSpectrogram(win_length=4 hop, power=1, normalized=True, f_min=20, f_max=sr/2,
    HTK bands, no norm): a centred, reflect-padded STFT with a periodic Hann window, magnitudes
    divided by the window's L2 norm, then 20 log10(max(m, 1e-5)) - 20 dB, (x + 100) / 100 clamped.
    """
    import librosa

    sr, hop, n_fft = params["sample_rate"], params["hop_samples"], params["n_fft"]
    window = torch.hann_window(4 * hop)
    spec = torch.stft(audio, n_fft, hop, 4 * hop, window, center=True, pad_mode="reflect", return_complex=True)
    spec = spec.abs() / window.pow(2).sum().sqrt()
    bands = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=params["n_mels"], fmin=20.0, fmax=sr / 2, htk=True, norm=None
    )
    mel = torch.from_numpy(bands) @ spec
    db = 20 * torch.log10(torch.clamp(mel, min=1e-5)) - 20
    return torch.clamp((db + 100) / 100, 0.0, 1.0)


def lmnt_records(data: str | Path, params: dict) -> list[dict]:
    """Their dataset's items ({"audio": (T,), "spectrogram": (frames, n_mels)}, numpy) for every clip of `data`."""
    records = []
    for path in list_audio(data).values():
        audio = read_lmnt_audio(path, params["sample_rate"])
        records.append({"audio": audio.numpy(), "spectrogram": lmnt_mel(audio, params).T.numpy()})
    return records


def resume_seed(seed: int, step: int) -> int:
    """The seed of a run (re)started at `step`: `seed` itself at step 0 (a fresh run), else one derived
    from (seed, step), so a resumed run neither replays the first run's draws nor meets another seed's."""
    return seed if step == 0 else int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def batches(records: list[dict], params: dict, seed: int):
    """Endless shuffled batches through their Collator (random crops of crop_mel_frames, drop_last)."""
    collate = lmnt("dataset").Collator(lmnt("params").AttrDict(params)).collate
    rng = random.Random(seed)
    size = params["batch_size"]
    while True:
        order = rng.sample(range(len(records)), len(records))
        for k in range(0, len(order) - size + 1, size):
            yield collate([dict(records[i]) for i in order[k : k + size]])


def train(args: argparse.Namespace) -> None:
    """Train their model with their learner's train_step; their checkpoints and wall.json in args.out."""
    torch.set_num_threads(1)
    params = lmnt_params(args.conf)
    random.seed(args.seed)  # their Collator's crops (python's random); torch: the model's init, t and noise
    torch.manual_seed(args.seed)
    AttrDict = lmnt("params").AttrDict
    model = lmnt("model").DiffWave(AttrDict(params))
    optimizer = torch.optim.Adam(model.parameters(), lr=params["learning_rate"])
    learner = lmnt("learner").DiffWaveLearner(str(args.out), model, None, optimizer, AttrDict(params))
    wall = {int(k): v for k, v in lc.read_json(args.out / WALL, {}).items()}
    if (args.out / "weights.pt").exists():  # continue: their checkpoint holds step, model, optimizer
        learner.load_state_dict(safe_torch_load(args.out / "weights.pt"))
    seed = resume_seed(args.seed, learner.step)
    if learner.step:  # continued: new crops, t and noise from here, not the first run's again
        random.seed(seed)
        torch.manual_seed(seed)
    offset = wall.get(learner.step, 0.0)  # wall time already spent on the run
    stream = batches(lmnt_records(args.train, params), params, seed)
    log = (args.out / "log.txt").open("a")
    print(f"lmnt params: {json.dumps({k: v for k, v in params.items() if 'schedule' not in k})}", file=log, flush=True)
    started = clock()  # the first step (module doc): setup and reading the data are not training time
    deadline = started + 60 * args.minutes if args.minutes else float("inf")
    while learner.step < args.steps:
        loss = learner.train_step(next(stream))
        learner.step += 1
        last = learner.step == args.steps or clock() >= deadline
        if learner.step % args.log_every == 0:
            print(f"step {learner.step} loss {loss.item():.4f} grad_norm {float(learner.grad_norm):.3f}", file=log)
            log.flush()
        if learner.step % args.ckpt_every == 0 or last:
            learner.save_to_checkpoint()
            wall[learner.step] = round(offset + clock() - started, 1)
            write_json(args.out / WALL, {str(k): v for k, v in sorted(wall.items())})
        if last:
            break
    print(f"lmnt: {learner.step} steps in {args.out} ({clock() - started:.0f} s)")


def saved_points(run: Path) -> list[tuple[int, Path, float | None]]:
    """(step, weights-<step>.pt, wall seconds) of the run's checkpoints, from wall.json."""
    wall = lc.read_json(run / WALL, None)
    if not wall:
        raise FileNotFoundError(f"no {run / WALL}: not a run of lmnt_train.py train (or nothing saved yet)")
    return [(int(s), run / f"weights-{int(s)}.pt", w) for s, w in sorted(wall.items(), key=lambda kv: int(kv[0]))]


def vocode_with_lmnt(ckpt: Path, gen: Path, args: argparse.Namespace) -> None:
    """Vocode the clips of --mels-from with their model and their inference.predict; a generated set in `gen`."""
    ap = argparse.ArgumentParser(prog="lmnt_train.py curve --generate")
    ap.add_argument("--mels-from", required=True)
    ap.add_argument("--full", action="store_true", help="Their 50-step schedule instead of the 6-step one.")
    opts = ap.parse_args(args.generate)
    state, info = split_lmnt_checkpoint(safe_torch_load(ckpt))
    params = lmnt("params").AttrDict(info["params"])
    model = lmnt("model").DiffWave(params)
    model.load_state_dict(state)
    inference = lmnt("inference")
    inference.models[str(ckpt)] = model.eval()  # their predict() would build a 30 x 64 model from base params
    gen.mkdir(parents=True, exist_ok=True)
    files = []
    for k, (utt, path) in enumerate(list_audio(opts.mels_from).items()):
        audio = read_lmnt_audio(path, params.sample_rate)
        torch.manual_seed(args.seed_list[k % len(args.seed_list)])
        out, rate = inference.predict(
            lmnt_mel(audio, params), str(ckpt), device=torch.device("cpu"), fast_sampling=not opts.full
        )
        save_audio(gen / f"{utt}.wav", out[0, : audio.numel()], rate)
        files.append(f"{utt}.wav")
    del inference.models[str(ckpt)]
    write_set_listing(
        gen, {"complete": True, "files": files, "ckpt": str(ckpt), "step": info["step"], "weights": "raw",
              "sampler": "lmnt " + ("50-step" if opts.full else "fast 6-step"), "mels_from": opts.mels_from}
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["curve"]:
        args = lc.parse_args(argv[1:])
        try:
            points = saved_points(args.run)
            out = args.out or args.run / "curve"
            weights = "raw weights (lmnt's trainer keeps no EMA)"
            wall = "wall s: training time from wall.json, summed over continued runs (their set-up not counted)"
            result = lc.learning_curve(args.run, out, args, points, vocode_with_lmnt, weights, wall)
        except (FileNotFoundError, RuntimeError, ValueError) as err:
            raise SystemExit(f"lmnt_train.py curve: {err}") from None
        print((out / "curve.md").read_text())
        return result
    ap = argparse.ArgumentParser(description="Train lmnt's DiffWave (the diffwave package) on a data dir.")
    ap.add_argument("command", choices=["train", "curve"], help="train a run; curve: score its checkpoints.")
    ap.add_argument("--train", type=Path, required=True, help="Data dir (wav.scp) or wav folder, at data.sample_rate.")
    ap.add_argument("--out", type=Path, required=True, help="Run folder: weights-<step>.pt, wall.json, log.txt.")
    ap.add_argument("--conf", type=Path, default=Path(__file__).parents[1] / "conf" / "baseline.yaml")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--minutes", type=float, default=0, help="Stop (with a checkpoint) after this long; 0: no limit.")
    ap.add_argument("--ckpt_every", type=int, default=500)
    ap.add_argument("--log_every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.seed < 0:
        ap.error(f"--seed {args.seed}: want a non-negative integer")
    if not args.conf.is_file():
        ap.error(f"--conf: file not found: {args.conf}")
    try:
        train(args)
    except (FileNotFoundError, ValueError) as err:  # a missing data dir, a --conf lmnt cannot take
        raise SystemExit(f"lmnt_train.py train: {err}") from None
    return None


if __name__ == "__main__":
    main()
