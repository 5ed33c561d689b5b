"""Do a released model's weights still come from its recipe? Re-train the recipe for a short budget
(same config, same seed, its corpus prepared anew) and compare the denoising-loss curve with the one
recorded at export (NAME.loss.json). tests/test_reproduce.py does this for every shipped model.

With the same seed, training draws the same batches, levels and noise, so two runs differ only
through their weights: on one machine the curves are identical (log.txt's 6 significant digits),
and across machines (other BLAS kernels, thread counts) they drift apart slowly as rounding
differences grow. A changed recipe (learning rate, loss, schedule, data) moves the curve at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# Mean |relative difference| of the logged denoising loss that still counts as the same recipe.
# On the machine that trained the model (the same processor, thread count and torch, as log.txt
# records them) the curve must come back as logged: 6 significant digits, hence 1e-6. Elsewhere,
# RTOL. Measured over the first 200 steps, 20 logged points (docs/pretrained.md): 1 vs 2 threads
# with the same seed (other reduction orders: the cross-machine stand-in) drift by 0.022 (ar
# DiffWave) and 1.2e-5 (checkerboard UNet); another seed differs by 0.147 and 0.268; lr x 1.5 by
# 0.043 and 0.086. 0.06 is about 3x the largest drift and well below another seed.
SAME_MACHINE_RTOL = 1e-6
RTOL = 0.06


def tolerance(record: dict) -> tuple[float, str]:
    """(rtol, why) for re-training a release here: exact on the machine its record names, else RTOL."""
    from audiodiff.fastcpu import machine

    here = machine(torch.device("cpu"))
    if record.get("machine") == here:
        return SAME_MACHINE_RTOL, f"the machine that trained it ({here}): the curve must come back as logged"
    return RTOL, f"trained on {record.get('machine') or 'an unrecorded machine'}, re-trained on {here}"


def compare_curves(recorded: dict, rerun: dict, rtol: float = RTOL, key: str = "denoise") -> dict:
    """Compare `rerun`'s `key` curve with `recorded`'s at the steps both logged.

    Args:
        recorded, rerun: {"step": [...], key: [...]} (NAME.loss.json, `audiodiff.release.loss_curve`).
        rtol: the largest mean |rerun - recorded| / |recorded| that passes.

    Returns:
        {"ok", "points", "mean_rel", "max_rel", "max_step", "message"}; "message" is one line.

    Raises:
        ValueError: fewer than 2 steps in common, or a curve without `key`.
    """
    for name, curve in (("recorded", recorded), ("rerun", rerun)):
        if key not in curve or len(curve[key]) != len(curve.get("step", ())):
            raise ValueError(f"the {name} curve has no {key!r} values for its steps")
    index = {s: i for i, s in enumerate(recorded["step"])}
    common = [(index[s], j) for j, s in enumerate(rerun["step"]) if s in index]
    if len(common) < 2:
        raise ValueError(f"the curves share {len(common)} logged step(s); need >= 2 (same train.log_every?)")
    a = np.array([recorded[key][i] for i, _ in common], dtype=np.float64)
    b = np.array([rerun[key][j] for _, j in common], dtype=np.float64)
    rel = np.abs(b - a) / np.maximum(np.abs(a), 1e-12)
    worst = int(np.argmax(rel))
    result = {
        "points": len(common),
        "mean_rel": float(rel.mean()),
        "max_rel": float(rel[worst]),
        "max_step": rerun["step"][common[worst][1]],
        "ok": bool(rel.mean() <= rtol),
    }
    verdict = "tracks" if result["ok"] else "does NOT track"
    result["message"] = (
        f"the re-trained {key} loss {verdict} the recorded one over {len(common)} points up to step "
        f"{rerun['step'][common[-1][1]]}: mean relative difference {result['mean_rel']:.4f} (tolerance {rtol}), "
        f"largest {result['max_rel']:.4f} at step {result['max_step']}"
    )
    return result


def retrain_curve(model: str | Path, work: str | Path, steps: int) -> dict:
    """Re-train a release's recipe for `steps` steps under `work` and return its loss curve.

    The corpus is prepared into `work`/data as NAME.loss.json records (its corpus and options),
    unless it is there already, and a `mel_features` recipe's log-mels are dumped from its training
    split as `audiodiff dump-features` would (the data.mel_preset and data.sample_rate of the release);
    the run goes to `work`/exp/retrain.

    Raises:
        FileNotFoundError: no NAME.loss.json beside the model.
        ValueError: the record names no preparable corpus, or the recipe starts from other weights.
    """
    from audiodiff.checkpoint import read_json
    from audiodiff.data.corpora import prepare
    from audiodiff.data.features import dump_features
    from audiodiff.release import loss_curve, read_release, release_config, resolve_release
    from audiodiff.train import train

    path = resolve_release(model)
    record_file = path.with_name(f"{path.stem}.loss.json")
    if not record_file.is_file():
        raise FileNotFoundError(f"{path}: no {record_file.name} beside it (audiodiff export writes one)")
    record = read_json(record_file)
    meta, _ = read_release(path, tensors=False)
    cfg = release_config(meta, path)
    if not isinstance(record, dict) or not isinstance(record.get("prepare"), dict):
        raise ValueError(f"{record_file}: no 'prepare' record (export --prepare CORPUS): its data cannot be rebuilt")
    if cfg.train.init_from:
        raise ValueError(f"{path}: fine-tuned from {cfg.train.init_from}; re-training needs those weights")
    data = Path(work) / "data"
    if not (data / "data" / "train").is_dir():
        prepare(record["prepare"]["corpus"], str(data), record["prepare"]["options"])
    cfg.name, cfg.exp_dir = "retrain", str(Path(work) / "exp")
    cfg.data.train = str(data / "data" / "train")
    if cfg.task == "mel_features" and not (data / "data" / "train" / "feats.scp").is_file():
        dump_features(cfg.data.train, cfg.data.mel_preset, cfg.data.sample_rate)
    cfg.data.valid = str(data / "data" / "valid") if cfg.data.valid else ""
    cfg.train.sample_every = 0  # train.steps stays: a cosine schedule decays over the whole run
    cfg.train.max_minutes = 0.0  # a wall-clock slice would end the re-run early (exports before this kept it)
    run = train(cfg, force=True, progress=False, stop_at=steps)
    return loss_curve(run / "log.txt", steps)
