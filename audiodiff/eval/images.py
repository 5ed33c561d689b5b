"""Image metrics: radially averaged power spectrum (the paper's Fig. 2) and pixel-histogram distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_images(source: str | Path, listed: dict[str, str] | None = None) -> np.ndarray:
    """uint8 images (N, C, H, W) from a dir with images.npy or a folder of PNGs (as `generate` writes).

    `listed`: {id: path} of a generated set's files (`eval.sets.generated_set(source)`, from its
    settings.json); exactly these are read, in this order. Without it every *.png but grid.png is read.

    Raises:
        FileNotFoundError: no images (no images.npy, no PNG, or a listing without a PNG), or a
            listed file is missing.
        ValueError: the listing mixes PNGs with other files.
    """
    source = Path(source)
    if listed is None and (source / "images.npy").is_file():
        return np.load(source / "images.npy")
    from PIL import Image

    if listed is not None:
        files = [Path(f) for f in listed.values() if Path(f).suffix.lower() == ".png"]
        if files and len(files) < len(listed):
            other = next(Path(f).name for f in listed.values() if Path(f).suffix.lower() != ".png")
            raise ValueError(
                f"{source}: its settings.json lists PNG images and other files ({other}); not an image set"
            )
        if missing := [f.name for f in files if not f.is_file()]:
            raise FileNotFoundError(f"{source}: {len(missing)} listed images are missing ({missing[0]}, ...)")
    else:
        files = sorted(source.glob("*.png"), key=lambda p: (len(p.stem), p.stem))
        files = [f for f in files if f.stem != "grid"]
    if not files:
        raise FileNotFoundError(f"no images in {source} (want images.npy or *.png)")
    arrays = [np.asarray(Image.open(f)) for f in files]
    return np.stack([a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in arrays])


def radial_power_spectrum(images: np.ndarray) -> np.ndarray:
    """Mean power spectrum over images and channels, averaged over rings of equal radius. -> (R,)

    Images are scaled to [-1, 1] and their mean removed; radius r covers integer frequency
    distances r <= |k| < r + 1 from DC, up to the largest full ring min(H, W) // 2.
    """
    x = images.astype(np.float64) / 127.5 - 1
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))) ** 2
    power = power.reshape(-1, *power.shape[-2:]).mean(0)
    h, w = power.shape
    yy, xx = np.indices((h, w))
    radius = np.hypot(yy - h // 2, xx - w // 2).astype(int)
    rmax = min(h, w) // 2
    sums = np.bincount(radius.ravel(), power.ravel(), minlength=rmax + 1)[: rmax + 1]
    counts = np.bincount(radius.ravel(), minlength=rmax + 1)[: rmax + 1]
    return sums / np.maximum(counts, 1)


def spectrum_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """Mean absolute difference of two log10 radially averaged power spectra (R,), over radius >= 1."""
    a, b = real[1:], generated[1:]
    return float(np.mean(np.abs(np.log10(a + 1e-12) - np.log10(b + 1e-12))))


# The signed per-band error of `spectrum_band_errors`: radii 1..rmax in three contiguous groups.
SPECTRUM_BANDS = ("low", "mid", "high")


def spectrum_band_errors(real: np.ndarray, generated: np.ndarray, shape: tuple[int, int]) -> list[dict]:
    """Signed error per band of two radially averaged power spectra (R,): generated minus reference, in dB.

    Radii 1..R-1 are split into three contiguous groups as equal as possible (np.array_split; 16 x 16
    images: radii 1-3, 4-6, 7-8); a band's error is the mean over its rings of 10 log10(P_gen / P_ref),
    so + means the generated images carry more power there, - less. Rings are in frequency-index units
    (`radial_power_spectrum`): ring r is r / H cycles per pixel along the height (vertical frequencies)
    and r / W along the width, so the edges in cycles per pixel are those along the shorter side, the
    axis the rings end on ("cycles_per_pixel_along": "height", "width", or "height and width" when square).

    Args:
        real, generated: `radial_power_spectrum` of the reference and the generated images, (R,).
        shape: (H, W) of the images, for the edges in cycles per pixel.

    Returns:
        [{"band": "low", "radii": [first, last], "cycles_per_pixel": [lo, hi], "cycles_per_pixel_along": axis,
        "error_db": e}, ...], low, mid, high; [] when there are fewer than three rings above DC (images
        smaller than 6 x 6): no bands to report, the overall distance (`spectrum_distance`) still holds.
    """
    rings = np.arange(1, len(real))
    if len(rings) < len(SPECTRUM_BANDS):
        return []
    h, w = shape
    size, along = min(h, w), "height and width" if h == w else ("height" if h < w else "width")
    db = 10 * np.log10((generated + 1e-12) / (real + 1e-12))
    bands = []
    for name, radii in zip(SPECTRUM_BANDS, np.array_split(rings, len(SPECTRUM_BANDS))):
        first, last = int(radii[0]), int(radii[-1])
        error = float(db[radii].mean())
        bands.append({"band": name, "radii": [first, last], "cycles_per_pixel": [first / size, (last + 1) / size],
                      "cycles_per_pixel_along": along, "error_db": error})  # fmt: skip
    return bands


def power_spectrum_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """`spectrum_distance` of the radially averaged power spectra of two image sets (N, C, H, W)."""
    return spectrum_distance(radial_power_spectrum(real), radial_power_spectrum(generated))


def pixel_histogram_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """Total variation distance between the 256-bin pixel-value histograms, in [0, 1]."""
    hr = np.bincount(real.ravel(), minlength=256) / real.size
    hg = np.bincount(generated.ravel(), minlength=256) / generated.size
    return float(0.5 * np.abs(hr - hg).sum())


INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def inception_fid(real: np.ndarray, generated: np.ndarray, weights: str | Path | None = None, device="cpu") -> float:
    """FID with torchmetrics' Inception-v3 (torch-fidelity's port of the TF FID network), 2048-d pool features.

    Grey images are repeated to 3 channels. Weights come from `weights`, else the torch hub cache
    (downloaded there by torch-fidelity when online).
    """
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except (ImportError, ModuleNotFoundError):
        raise ImportError("metric 'inception_fid' needs torchmetrics[image]: pip install 'audiodiff[eval]'") from None
    import torch

    kwargs = {"feature_extractor_weights_path": str(weights)} if weights else {}
    try:
        fid = FrechetInceptionDistance(feature=2048, **kwargs).to(device)
    except (OSError, RuntimeError, ValueError) as err:
        raise FileNotFoundError(
            f"metric 'inception_fid': cannot load the Inception weights ({str(err).splitlines()[0][:120]}); put "
            f"{INCEPTION_FILE} in ~/.cache/torch/hub/checkpoints or pass --embedder-weights PATH"
        ) from None

    def to3(x: np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
        return (t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t).to(device)

    for start in range(0, len(real), 256):
        fid.update(to3(real[start : start + 256]), real=True)
    for start in range(0, len(generated), 256):
        fid.update(to3(generated[start : start + 256]), real=False)
    return float(fid.compute())
