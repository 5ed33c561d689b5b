"""Audio embedders for FAD/KAD, and a per-file embedding cache.

Registry `EMBEDDERS`:
- "ge2e": the GE2E speaker encoder shipped in the `resemblyzer` wheel (pretrained.pt, 256-d),
  fully offline after `pip install 'audiodiff[ge2e]'` (or `pip install --no-deps resemblyzer`). We
  read only its weights file (found through the package metadata, without importing resemblyzer,
  whose import needs webrtcvad and pkg_resources) and run the network here: 40 mel power bands
  (25 ms windows, 10 ms steps, 16 kHz), a 3-layer LSTM of width 256, ReLU(linear) of the last
  hidden state, L2-normalised. Clips are embedded whole (no VAD, no 1.6 s partials), after
  resemblyzer's volume normalisation to -30 dBFS.
- "melstats": no weights at all: mean and standard deviation of 64 log-mel bands (128-d). A
  spectral-statistics baseline, not a perceptual embedding.
- "vggish", "pann", "encodec", "clap": the embeddings behind published FAD numbers, with weights
  from a path, the cache or the official URL (see `audiodiff.eval.pretrained`).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from audiodiff.audio.io import load_audio
from audiodiff.audio.mel import mel_filterbank
from audiodiff.checkpoint import atomic_write_bytes
from audiodiff.eval.pretrained import ClapEmbedder, EncodecEmbedder, PANNEmbedder, VGGishEmbedder
from audiodiff.extras import packaged_file
from audiodiff.runfiles import writable_dir


def resemblyzer_weights() -> Path:
    """Path of resemblyzer's pretrained.pt, from the installed package's file list (`audiodiff[ge2e]`)."""
    alternative = "pip install --no-deps resemblyzer==0.1.4 without a C compiler: only the weights are read"
    return packaged_file("resemblyzer", "pretrained.pt", "the 'ge2e' embedder", "ge2e", alternative)


class GE2E(nn.Module):
    """The GE2E encoder network: (B, frames, 40) mel power -> (B, 256) unit vectors."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(40, 256, num_layers=3, batch_first=True)
        self.linear = nn.Linear(256, 256)

    def forward(self, mels: Tensor) -> Tensor:
        _, (hidden, _) = self.lstm(mels)
        emb = torch.relu(self.linear(hidden[-1]))
        return emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-5)


class GE2EEmbedder:
    name, version, sample_rate, dim = "ge2e", "resemblyzer-0.1.4", 16000, 256

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        path = Path(weights) if weights else resemblyzer_weights()
        state = torch.load(path, map_location="cpu", weights_only=True)
        model_state = {k: v for k, v in state["model_state"].items() if not k.startswith("similarity")}
        self.net = GE2E()
        self.net.load_state_dict(model_state)
        self.net.to(device).eval()
        self.device = device
        self.window = torch.hann_window(400, dtype=torch.float64)
        self.fb = mel_filterbank(16000, 400, 40, dtype=torch.float64)  # librosa defaults: slaney

    def mels(self, wav: Tensor) -> Tensor:
        """(T,) at 16 kHz -> (frames, 40) mel power, as resemblyzer's wav_to_mel_spectrogram."""
        wav = wav.double()
        rms_db = 10 * torch.log10(wav.square().mean().clamp_min(1e-20))
        gain_db = (-30 - rms_db).clamp_min(0)  # increase only
        wav = wav * 10 ** (gain_db / 20)
        spec = torch.stft(wav, 400, 160, window=self.window, center=True, pad_mode="constant", return_complex=True)
        return (self.fb @ spec.abs().square()).T.float()

    @torch.no_grad()
    def __call__(self, wavs: Sequence[Tensor]) -> np.ndarray:
        mels = [self.mels(w) for w in wavs]
        lengths = {m.shape[0] for m in mels}
        if len(lengths) == 1:
            return self.net(torch.stack(mels).to(self.device)).cpu().numpy()
        return np.concatenate([self.net(m[None].to(self.device)).cpu().numpy() for m in mels])


class MelStatsEmbedder:
    name, version, sample_rate, dim = "melstats", "1", 16000, 128

    def __init__(self, weights: str | Path | None = None, device: str = "cpu") -> None:
        if weights:
            raise ValueError("embedder 'melstats' has no weights; drop --embedder-weights")
        self.window = torch.hann_window(512)
        self.fb = mel_filterbank(16000, 512, 64, 20.0, 7600.0)

    @torch.no_grad()
    def __call__(self, wavs: Sequence[Tensor]) -> np.ndarray:
        out = []
        for w in wavs:
            spec = torch.stft(w.float(), 512, 128, window=self.window, return_complex=True).abs()
            logmel = (self.fb @ spec).clamp_min(1e-5).log()
            out.append(torch.cat([logmel.mean(1), logmel.std(1)]).numpy())
        return np.stack(out)


EMBEDDERS = {
    "ge2e": GE2EEmbedder,
    "melstats": MelStatsEmbedder,
    "vggish": VGGishEmbedder,
    "pann": PANNEmbedder,
    "encodec": EncodecEmbedder,
    "clap": ClapEmbedder,
}

# What each embedding captures, said beside every score computed in it (console, metrics.md,
# report.html): a FAD in a speaker embedding measures voices, not words or audio quality.
ABOUT = {
    "ge2e": "GE2E speaker embedding (resemblyzer): how the voices sound, not the words or the audio quality",
    "melstats": "mean and spread of 64 log-mel bands: spectral balance only, no learned perception",
    "vggish": "VGGish AudioSet classifier, the original FAD (Kilgour et al. 2019): sound-event content and quality",
    "pann": "PANN CNN14 AudioSet tagger: sound-event content",
    "encodec": "EnCodec 24 kHz encoder latents, mean over frames: the acoustic detail a neural codec keeps",
    "clap": "LAION-CLAP audio embedding, 10 s windows: content as text describes it",
}


def build_embedder(name: str, device: str = "cpu", weights: str | Path | None = None):
    """An embedder by registry name; `weights` overrides where its weights file (or CLAP dir) is."""
    if name not in EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}")
    return EMBEDDERS[name](weights=weights, device=device)


def file_digest(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CacheWarning(UserWarning):
    """A bad embedding cache entry was found and recomputed."""


# One cache entry: a 0-d structured array in a .npy file (no pickle). Format 2 ("<sha1>.v2.npy");
# format 1 (a bare (D + 1,) float32 row, "<sha1>.npy") is ignored.
CACHE_FIELDS = ("source_sha1", "embedder", "duration", "embedding")
CACHE_SUFFIX = ".v2.npy"


class BadCacheEntry(ValueError):
    """A cache entry that cannot be used; the message says why."""


def _read_entry(entry: Path, digest: str, embedder) -> tuple[np.ndarray, float]:
    """A cache entry's embedding (D,) and clip duration (s). Raises BadCacheEntry saying what is wrong."""
    ident = f"{embedder.name}-{embedder.version}"
    if entry.stat().st_size == 0:
        raise BadCacheEntry("empty file")
    try:
        record = np.load(entry, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:  # truncated, not .npy, or pickled objects
        raise BadCacheEntry(f"unreadable ({type(err).__name__}: {str(err)[:120]})") from err
    if record.dtype.names != CACHE_FIELDS or record.shape != ():
        raise BadCacheEntry(f"not an embedding entry (dtype {record.dtype}, shape {record.shape})")
    source, owner = record["source_sha1"].item().decode(), record["embedder"].item().decode()
    emb, duration = record["embedding"], float(record["duration"])
    if source != digest:
        raise BadCacheEntry(f"written for another file (sha1 {source[:12]}; this file's is {digest[:12]})")
    if owner != ident:
        raise BadCacheEntry(f"written by embedder {owner!r}, not {ident!r}")
    if emb.shape != (embedder.dim,):
        raise BadCacheEntry(f"embedding of shape {emb.shape}, expected ({embedder.dim},)")
    if not (np.isfinite(emb).all() and np.isfinite(duration)):
        raise BadCacheEntry("non-finite values")
    return emb, duration


def _write_entry(entry: Path, digest: str, embedder, emb: np.ndarray, duration: float) -> None:
    """Save one entry atomically (temp file, fsync, rename): a crash never leaves a partial entry."""
    ident = f"{embedder.name}-{embedder.version}".encode()
    dtype = [("source_sha1", f"S{len(digest)}"), ("embedder", f"S{len(ident)}"), ("duration", "<f8")]
    dtype.append(("embedding", "<f4", emb.shape))
    buf = io.BytesIO()
    np.save(buf, np.array((digest.encode(), ident, duration, emb), dtype=dtype), allow_pickle=False)
    atomic_write_bytes(entry, buf.getvalue())


def embed_files(
    paths: Sequence[str | Path],
    embedder,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[np.ndarray, dict]:
    """Embeddings (N, D) of audio files, cached per file by (embedder, version, content hash).

    A cache entry is `<cache_dir>/<embedder>-<version>/<sha1 of the file>.v2.npy` holding the
    embedding, the clip's duration, the file's sha1 and the embedder's name-version; it is written
    atomically. On reading, an entry that is empty, truncated, not ours, of the wrong shape or
    written for another file is recomputed, with a `CacheWarning` naming it.

    Returns:
        (embeddings, {"cache_hits": h, "computed": c, "durations": [seconds per file],
                      "recomputed": [{"entry": path, "file": audio path, "reason": why}, ...]})
    """
    from tqdm import tqdm

    cache = Path(cache_dir) / f"{embedder.name}-{embedder.version}" if cache_dir else None
    if cache:
        writable_dir(cache, "embedding cache (--cache)")
    result: list[np.ndarray | None] = [None] * len(paths)
    durations = [0.0] * len(paths)
    todo, recomputed = [], []
    for i, p in enumerate(paths):
        digest = file_digest(p) if cache else ""
        entry = cache / f"{digest}{CACHE_SUFFIX}" if cache else None
        if entry is not None and entry.is_file():
            try:
                result[i], durations[i] = _read_entry(entry, digest, embedder)
                continue
            except BadCacheEntry as err:
                recomputed.append({"entry": str(entry), "file": str(p), "reason": str(err)})
                warnings.warn(f"embedding cache entry {entry} (for {p}): {err}; recomputed", CacheWarning, stacklevel=2)
        todo.append((i, digest, entry))
    for start in tqdm(range(0, len(todo), batch_size), desc=f"embed ({embedder.name})", disable=not progress):
        chunk = todo[start : start + batch_size]
        wavs = [load_audio(paths[i], embedder.sample_rate) for i, _, _ in chunk]
        embs = embedder(wavs)
        for (i, digest, entry), emb, wav in zip(chunk, embs, wavs):
            durations[i] = wav.shape[0] / embedder.sample_rate
            result[i] = emb.astype(np.float32)
            if entry is not None:
                _write_entry(entry, digest, embedder, result[i], durations[i])
    info = {"cache_hits": len(paths) - len(todo), "computed": len(todo), "durations": durations}
    return np.stack(result), info | {"recomputed": recomputed}
