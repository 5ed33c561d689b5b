"""A small classifier trained by the recipes, and the metrics it gives: classifier-FID, IS, mIS, AM.

The SC09 protocol of DiffWave and SaShiMi scores unconditional digit generators with a digit
classifier: the Frechet distance of its penultimate features (classifier-FID), the inception score
IS = exp E_x KL(p(y|x) || p(y)), the modified IS mIS = exp E_{x,x'} KL(p(y|x) || p(y|x')) (also
rewards within-class diversity) and the AM score KL(p_ref(y) || p_gen(y)) + E_x H(p(y|x)) (lower
is better). We train our own classifier on the recipe's training split (no published SC09
classifier weights are loadable without their code), so numbers are comparable within this
toolkit, not with published tables.

`audiodiff.classifier_training.train_classifier` fits it (`audiodiff train-classifier`) and saves
it with `save_classifier` (`classifier.safetensors` + `classifier.json`, atomically);
`ClassifierEmbedder` gives its penultimate features of audio clips through the embedding cache,
`image_features` those of images, and `classifier_scores` the metrics.
"""

from __future__ import annotations

import hashlib
import json
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

    from audiodiff.checkpoint import atomic_write_bytes, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / FILES[0], save(state))
    meta = {"config": asdict(model.config), **info}
    write_json(out / FILES[1], meta)
    return out


def classifier_root(path: str | Path) -> Path:
    """The folder of a classifier given as its folder (whatever its name, e.g. clf.v2) or one of its files."""
    path = Path(path)
    return path.parent if path.is_file() else path


def weights_sha1(path: str | Path) -> str:
    """The sha1 of a classifier's classifier.safetensors (`path` as `load_classifier` takes it): what
    evaluate records as metrics.json's classifier.weights_sha1. FileNotFoundError without the file."""
    return hashlib.sha1((classifier_root(path) / FILES[0]).read_bytes()).hexdigest()


def load_classifier(path: str | Path, device: str = "cpu") -> tuple[Classifier, dict]:
    """A classifier directory (or its classifier.json / .safetensors) -> (model in eval mode, metadata).

    The weights file is read once: the model is loaded from the bytes that metadata's weights_sha1 hashes
    (a classifier saved over it meanwhile cannot give one file's weights under the other's sha1)."""
    from safetensors.torch import load

    path = Path(path)
    root = classifier_root(path)
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"classifier {path}: missing {', '.join(missing)} (train one with `audiodiff train-classifier`)"
        )
    meta = json.loads((root / FILES[1]).read_text())
    model = Classifier(ClassifierConfig(**meta["config"]))
    weights = (root / FILES[0]).read_bytes()
    model.load_state_dict(load(weights))
    meta["weights_sha1"] = hashlib.sha1(weights).hexdigest()  # as `weights_sha1` hashes the file
    return model.to(device).eval(), meta


# ----------------------------------------------------------------------------------------- input


def fit_samples(wav: Tensor, samples: int) -> Tensor:
    """Centre crop or zero-pad to `samples` (the classifier sees whole clips)."""
    if wav.shape[-1] >= samples:
        start = (wav.shape[-1] - samples) // 2
        return wav[start : start + samples]
    pad = samples - wav.shape[-1]
    return F.pad(wav, (pad // 2, pad - pad // 2))


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
        x = torch.stack([fit_samples(w.float(), self.model.config.samples) for w in wavs]).to(self.device)
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


@torch.no_grad()
def class_probs(model: Classifier, feats: np.ndarray) -> np.ndarray:
    """Class probabilities (N, classes) from penultimate features (N, feature_dim)."""
    dev = next(model.parameters()).device
    logits = model.logits_from_features(torch.from_numpy(np.asarray(feats, np.float32)).to(dev))
    return logits.softmax(1).double().cpu().numpy()


def conditional_accuracy(model: Classifier, feats_gen: np.ndarray, requested: list[str]) -> tuple[float, dict]:
    """How often the classifier names the class each generated item was asked for (a class-conditional set).

    Returns (accuracy over all items, {class name: accuracy over the items asked for it}).

    Raises:
        ValueError: a requested label that is not among the classifier's labels.
    """
    names = list(model.config.labels)
    unknown = sorted(set(requested) - set(names))
    if unknown:
        raise ValueError(f"requested labels {unknown} (settings.json) are not among the classifier's labels {names}")
    predicted = [names[i] for i in class_probs(model, feats_gen).argmax(1)]
    hits = np.array([p == r for p, r in zip(predicted, requested)])
    wanted = np.array(requested)
    per_class = {n: float(hits[wanted == n].mean()) for n in names if (wanted == n).any()}
    return float(hits.mean()), per_class


def classifier_scores(model: Classifier, feats_ref: np.ndarray, feats_gen: np.ndarray) -> dict:
    """classifier-FID, IS, mIS and AM of a generated set against a reference set (features given)."""
    from audiodiff.eval.fad import fad

    p_ref, p_gen = class_probs(model, feats_ref), class_probs(model, feats_gen)
    return {
        "classifier_fid": fad(feats_ref, feats_gen),
        "inception_score": inception_score(p_gen),
        "modified_inception_score": modified_inception_score(p_gen),
        "am_score": am_score(p_ref, p_gen),
        "inception_score_ref": inception_score(p_ref),
        "gen_class_histogram": np.bincount(p_gen.argmax(1), minlength=p_gen.shape[1]).tolist(),
    }
