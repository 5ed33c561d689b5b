"""Training of the evaluation classifier (`audiodiff train-classifier`); the model and its scores
live in `audiodiff.eval.classifier`.

`train_classifier` fits the small CNN (log-mels for audio, pixels for images) on a labelled split
with augmentation, keeps the weights with the best validation accuracy, reports test accuracy, and
writes `classifier.safetensors` + `classifier.json` atomically.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from audiodiff.eval.classifier import Classifier, ClassifierConfig, fit_samples, save_classifier


def load_labelled(source: str | Path, config: ClassifierConfig | None = None) -> tuple[Tensor, np.ndarray, list[str]]:
    """Inputs and integer labels of a split: a Kaldi data dir with utt2label (or text), or images.npy + labels.npy.

    Audio is loaded at the config's sample rate and cropped/padded (centred) to `samples`.
    Returns (inputs, labels, label_names_in_the_split).
    """
    source = Path(source)
    if (source / "images.npy").is_file():
        if not (source / "labels.npy").is_file():
            raise FileNotFoundError(f"{source}: images.npy has no labels.npy beside it")
        images = torch.from_numpy(np.load(source / "images.npy")).float() / 127.5 - 1
        labels = np.load(source / "labels.npy").astype(np.int64)
        return images, labels, [str(i) for i in range(int(labels.max()) + 1)]
    from audiodiff.audio.io import load_audio
    from audiodiff.data.datasets import list_audio
    from audiodiff.data.kaldi import label_names, read_labels

    if not (source / "wav.scp").is_file():
        raise FileNotFoundError(f"{source}: want a data dir with wav.scp + utt2label (or text), or images.npy")
    wavs = list_audio(source)
    raw, label_file = read_labels(source, wavs)
    names = label_names(raw.values())
    cfg = config or ClassifierConfig()
    clips = torch.stack([fit_samples(load_audio(wavs[u], cfg.sample_rate), cfg.samples) for u in wavs])
    index = {n: i for i, n in enumerate(cfg.labels or names)}
    unknown = sorted({raw[u] for u in wavs} - set(index))
    if unknown:
        raise ValueError(f"{label_file}: labels {unknown} are not among the classifier's {list(index)}")
    return clips, np.array([index[raw[u]] for u in wavs]), names


def _augment(x: Tensor, kind: str, gen: torch.Generator) -> Tensor:
    """Audio: random shift (+-10%), gain (+-6 dB), white noise (SNR 15..40 dB). Images: shift +-2 px."""
    b = x.shape[0]
    if kind == "images":
        pad = F.pad(x, (2, 2, 2, 2), mode="replicate")
        dy, dx = torch.randint(0, 5, (2,), generator=gen).tolist()
        return pad[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
    n = x.shape[-1]
    shift = int(torch.randint(-n // 10, n // 10 + 1, (1,), generator=gen))
    x = torch.roll(x, shift, dims=-1)
    gain = 10 ** ((torch.rand(b, 1, generator=gen) * 12 - 6) / 20)
    x = x * gain
    snr_db = 15 + 25 * torch.rand(b, 1, generator=gen)
    power = x.square().mean(-1, keepdim=True).clamp_min(1e-10)
    noise = torch.randn(x.shape, generator=gen) * (power / 10 ** (snr_db / 10)).sqrt()
    return x + noise


@torch.no_grad()
def accuracy(model: Classifier, x: Tensor, y: np.ndarray, batch_size: int = 256) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    return float((pred.numpy() == y).mean())


def _fit_epochs(model: Classifier, x_tr, y_tr, x_va, y_va, epochs, batch_size, lr, gen, log) -> float:
    """AdamW with a one-cycle schedule, label smoothing 0.05; keeps (loads) the weights of the best
    validation accuracy, which it returns."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(x_tr) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    best, best_state = -1.0, None
    y_tr_t = torch.from_numpy(y_tr)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            logits = model(_augment(x_tr[idx], model.config.kind, gen))
            loss = F.cross_entropy(logits, y_tr_t[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = accuracy(model, x_va, y_va)
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
        log(f"epoch {epoch + 1}/{epochs} loss={total / len(x_tr):.4f} valid_acc={acc:.4f}")
    model.load_state_dict(best_state)
    return best


def train_classifier(
    train: str | Path,
    valid: str | Path,
    out: str | Path,
    test: str | Path | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    config: ClassifierConfig | None = None,
    log=print,
) -> dict:
    """Fit a classifier on a labelled split, select by validation accuracy, report test accuracy.

    The kind (audio or images), the label set and the image shape come from the data.
    Returns the metadata written to classifier.json.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    is_images = (Path(train) / "images.npy").is_file()
    cfg = config or ClassifierConfig()
    cfg.kind = "images" if is_images else "audio"
    x_tr, y_tr, names = load_labelled(train, cfg)
    if not cfg.labels:
        cfg.labels = names
    if is_images:
        cfg.image_shape = list(x_tr.shape[1:])
    x_va, y_va, _ = load_labelled(valid, cfg)
    model = Classifier(cfg)
    t0 = time.perf_counter()
    best = _fit_epochs(model, x_tr, y_tr, x_va, y_va, epochs, batch_size, lr, gen, log)
    info = {
        "train": str(train),
        "valid": str(valid),
        "n_train": len(x_tr),
        "valid_accuracy": best,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    if test is not None:
        x_te, y_te, _ = load_labelled(test, cfg)
        info.update(test=str(test), n_test=len(x_te), test_accuracy=accuracy(model, x_te, y_te))
    save_classifier(model, out, info)
    return {"config": asdict(cfg), **info}
