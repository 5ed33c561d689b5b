"""A small classifier trained by the recipes, and the metrics it gives: classifier-FID, IS, mIS, AM.

The SC09 protocol of DiffWave and SaShiMi scores unconditional digit generators with a digit
classifier: the Frechet distance of its penultimate features (classifier-FID), the inception score
IS = exp E_x KL(p(y|x) || p(y)), the modified IS mIS = exp E_{x,x'} KL(p(y|x) || p(y|x')) (also
rewards within-class diversity) and the AM score KL(p_ref(y) || p_gen(y)) + E_x H(p(y|x)) (lower
is better). We train our own classifier on the recipe's training split (no published SC09
classifier weights are loadable without their code), so numbers are comparable within this
toolkit, not with published tables.

`train_classifier` fits a small CNN (log-mels for audio, pixels for images) with augmentation,
keeps the weights with the best validation accuracy, reports test accuracy, and writes
`classifier.safetensors` + `classifier.json` atomically. `ClassifierEmbedder` plugs it into the
embedding registry (`--embedder classifier --classifier DIR`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from audiodiff.audio.mel import mel_filterbank

FILES = ("classifier.safetensors", "classifier.json")


@dataclass
class ClassifierConfig:
    kind: str = "audio"  # "audio" (waveforms) or "images" (uint8 arrays)
    labels: list[str] = field(default_factory=list)  # class names, index = class id
    sample_rate: int = 16000
    samples: int = 16000  # audio: input length (crop/pad)
    n_fft: int = 512
    hop: int = 128
    n_mels: int = 64
    image_shape: list[int] = field(default_factory=lambda: [1, 32, 32])
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    feature_dim: int = 128
    dropout: float = 0.2


class Classifier(nn.Module):
    """Waveform (B, T) or image (B, C, H, W) in [-1, 1] -> penultimate features (B, D) -> logits."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        if config.kind not in ("audio", "images"):
            raise ValueError(f"classifier kind must be 'audio' or 'images', got {config.kind!r}")
        if len(config.labels) < 2:
            raise ValueError(f"classifier needs at least 2 labels, got {config.labels}")
        self.config = config
        if config.kind == "audio":
            self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
            fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels)
            self.register_buffer("fb", fb, persistent=False)
            c_in = 1
        else:
            c_in = config.image_shape[0]
        blocks, prev = [], c_in
        for ch in config.channels:
            blocks += [nn.Conv2d(prev, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(), nn.MaxPool2d(2)]
            prev = ch
        self.input_norm = nn.BatchNorm2d(c_in)
        self.body = nn.Sequential(*blocks)
        # Keep where things are (mel band; image position): average over time only, then flatten.
        shrink = 2 ** len(config.channels)
        if config.kind == "audio":
            kept = config.n_mels // shrink
        else:
            kept = (config.image_shape[1] // shrink) * (config.image_shape[2] // shrink)
        if kept < 1:
            raise ValueError(f"classifier: {len(config.channels)} pooling blocks leave nothing of the input")
        self.proj = nn.Linear(prev * kept, config.feature_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, len(config.labels))

    def frontend(self, x: Tensor) -> Tensor:
        if self.config.kind == "images":
            return x
        spec = torch.stft(x.float(), self.config.n_fft, self.config.hop, window=self.window, return_complex=True)
        return (self.fb @ spec.abs().square()).clamp_min(1e-8).log()[:, None]

    def features(self, x: Tensor) -> Tensor:
        h = self.body(self.input_norm(self.frontend(x)))
        h = h.mean(-1).flatten(1) if self.config.kind == "audio" else h.flatten(1)
        return F.relu(self.proj(h))

    def logits_from_features(self, feats: Tensor) -> Tensor:
        return self.head(self.dropout(feats))

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_from_features(self.features(x))


# ---------------------------------------------------------------------------------------- scores


def inception_score(probs: np.ndarray) -> float:
    """exp E_x KL(p(y|x) || p(y)), p(y) the mean of the rows. 1 (no information) .. n_classes."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1)
    marginal = p.mean(0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(1).mean()))


def modified_inception_score(probs: np.ndarray) -> float:
    """exp E_{x != x'} KL(p(y|x) || p(y|x')), over all ordered pairs of distinct rows."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1)
    n = len(p)
    if n < 2:
        raise ValueError("modified inception score needs at least 2 examples")
    neg_entropy = (p * np.log(p)).sum(1).mean()
    cross = (p.mean(0) * np.log(p).mean(0)).sum()  # E_i E_j sum_y p_i log p_j (i = j included)
    all_pairs = neg_entropy - cross  # the i = j terms are 0, so rescale to distinct pairs
    return float(np.exp(all_pairs * n / (n - 1)))


def am_score(probs_ref: np.ndarray, probs_gen: np.ndarray) -> float:
    """KL(p_ref(y) || p_gen(y)) + E_x H(p_gen(y|x)): 0 for confident predictions with the reference's class mix."""
    pr = np.clip(np.asarray(probs_ref, np.float64).mean(0), 1e-12, 1)
    pg = np.clip(np.asarray(probs_gen, np.float64), 1e-12, 1)
    marginal = pg.mean(0)
    return float((pr * (np.log(pr) - np.log(marginal))).sum() - (pg * np.log(pg)).sum(1).mean())


# ------------------------------------------------------------------------------------ save / load


def save_classifier(model: Classifier, out: str | Path, info: dict) -> Path:
    from safetensors.torch import save

    from audiodiff.checkpoint import atomic_write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / FILES[0], save(state))
    meta = {"config": asdict(model.config), **info}
    atomic_write_bytes(out / FILES[1], (json.dumps(meta, indent=2) + "\n").encode())
    return out


def load_classifier(path: str | Path, device: str = "cpu") -> tuple[Classifier, dict]:
    """A classifier directory (or its classifier.json / .safetensors) -> (model in eval mode, metadata)."""
    from safetensors.torch import load_file

    path = Path(path)
    root = path.parent if path.is_file() else path
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"classifier {path}: missing {', '.join(missing)} (train one with `audiodiff train-classifier`)"
        )
    meta = json.loads((root / FILES[1]).read_text())
    model = Classifier(ClassifierConfig(**meta["config"]))
    model.load_state_dict(load_file(root / FILES[0]))
    meta["weights_sha1"] = hashlib.sha1((root / FILES[0]).read_bytes()).hexdigest()
    return model.to(device).eval(), meta


# ----------------------------------------------------------------------------------------- data


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
    from audiodiff.data.kaldi import read_table

    if not (source / "wav.scp").is_file():
        raise FileNotFoundError(f"{source}: want a data dir with wav.scp + utt2label (or text), or images.npy")
    wavs = list_audio(source)
    label_file = source / "utt2label" if (source / "utt2label").is_file() else source / "text"
    if not label_file.is_file():
        raise FileNotFoundError(f"{source}: no utt2label or text file to take class labels from")
    raw = read_table(label_file)
    missing = sorted(set(wavs) - set(raw))
    if missing:
        raise ValueError(f"{label_file}: no label for {len(missing)} utterance(s), e.g. {missing[0]}")
    names = sorted(set(raw.values()), key=lambda s: (len(s), s))
    cfg = config or ClassifierConfig()
    clips = torch.stack([_fit(load_audio(wavs[u], cfg.sample_rate), cfg.samples) for u in wavs])
    index = {n: i for i, n in enumerate(cfg.labels or names)}
    unknown = sorted({raw[u] for u in wavs} - set(index))
    if unknown:
        raise ValueError(f"{label_file}: labels {unknown} are not among the classifier's {list(index)}")
    return clips, np.array([index[raw[u]] for u in wavs]), names


def _fit(wav: Tensor, samples: int) -> Tensor:
    """Centre crop or zero-pad to `samples` (the classifier sees whole clips)."""
    if wav.shape[-1] >= samples:
        start = (wav.shape[-1] - samples) // 2
        return wav[start : start + samples]
    pad = samples - wav.shape[-1]
    return F.pad(wav, (pad // 2, pad - pad // 2))


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
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(x_tr) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    best, best_state, t0 = -1.0, None, time.perf_counter()
    y_tr_t = torch.from_numpy(y_tr)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(_augment(x_tr[idx], cfg.kind, gen)), y_tr_t[idx], label_smoothing=0.05)
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


# ----------------------------------------------------------------------------------- embedding


class ClassifierEmbedder:
    """Penultimate features of a trained audio classifier, in the embedding registry's interface."""

    name = "classifier"

    def __init__(self, classifier: str | Path | None = None, device: str = "cpu") -> None:
        if not classifier:
            raise ValueError("the 'classifier' embedder needs --classifier DIR (from `audiodiff train-classifier`)")
        self.model, self.meta = load_classifier(classifier, device)
        if self.model.config.kind != "audio":
            raise ValueError(f"classifier {classifier} was trained on images, not audio")
        self.version = self.meta["weights_sha1"][:12]
        self.sample_rate = self.model.config.sample_rate
        self.dim = self.model.config.feature_dim
        self.device = device

    @torch.no_grad()
    def __call__(self, wavs) -> np.ndarray:
        x = torch.stack([_fit(w.float(), self.model.config.samples) for w in wavs]).to(self.device)
        return self.model.features(x).cpu().numpy()


@torch.no_grad()
def image_features(model: Classifier, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Penultimate features of uint8 images (N, C, H, W)."""
    if model.config.kind != "images":
        raise ValueError("this classifier was trained on audio, not images")
    if list(images.shape[1:]) != list(model.config.image_shape):
        raise ValueError(f"images {list(images.shape[1:])} do not match the classifier's {model.config.image_shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1
    dev = next(model.parameters()).device
    chunks = [model.features(x[i : i + batch_size].to(dev)).cpu().numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks)


def classifier_scores(model: Classifier, feats_ref: np.ndarray, feats_gen: np.ndarray) -> dict:
    """classifier-FID, IS, mIS and AM of a generated set against a reference set (features given)."""
    from audiodiff.eval.fad import fad

    dev = next(model.parameters()).device

    @torch.no_grad()
    def to_probs(feats: np.ndarray) -> np.ndarray:
        logits = model.logits_from_features(torch.from_numpy(np.asarray(feats, np.float32)).to(dev))
        return logits.softmax(1).double().cpu().numpy()

    p_ref, p_gen = to_probs(feats_ref), to_probs(feats_gen)
    return {
        "classifier_fid": fad(feats_ref, feats_gen),
        "inception_score": inception_score(p_gen),
        "modified_inception_score": modified_inception_score(p_gen),
        "am_score": am_score(p_ref, p_gen),
        "inception_score_ref": inception_score(p_ref),
        "gen_class_histogram": np.bincount(p_gen.argmax(1), minlength=p_gen.shape[1]).tolist(),
    }
