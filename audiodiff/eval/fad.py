"""Distances between sets of embeddings: Frechet distance (FAD), FAD-inf, kernel audio distance.

Frechet distance between Gaussians N(mu1, C1), N(mu2, C2) (Dowson & Landau 1982):
    d^2 = |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr( (C1^{1/2} C2 C1^{1/2})^{1/2} )
computed in float64 with symmetric eigendecompositions: C1^{1/2} from eigh(C1) with negative
eigenvalues (rounding) clipped to 0, then the trace term as the sum of square roots of the
(clipped) eigenvalues of the symmetric matrix C1^{1/2} C2 C1^{1/2}. It stays real and
non-negative on rank-deficient covariances (fewer samples than dimensions), where scipy's
`sqrtm` can return complex or negative results.
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of embeddings (N, D), float64."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] < 2:
        raise ValueError(f"embeddings must be (N >= 2, D), got shape {emb.shape}")
    return emb.mean(0), np.cov(emb, rowvar=False, ddof=1).reshape(emb.shape[1], emb.shape[1])


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, c1: np.ndarray, mu2: np.ndarray, c2: np.ndarray) -> float:
    """Squared Frechet distance between two Gaussians (the quantity FAD/FID report). >= 0."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    c1, c2 = np.asarray(c1, np.float64), np.asarray(c2, np.float64)
    if mu1.shape != mu2.shape or c1.shape != c2.shape or c1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} vs {mu2.shape}, cov {c1.shape} vs {c2.shape}")
    s1 = _psd_sqrt(c1)
    middle = s1 @ c2 @ s1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    d2 = float(np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt)
    return max(d2, 0.0)


def fad(real: np.ndarray, generated: np.ndarray) -> float:
    """Frechet distance between the Gaussian fits of two embedding sets (N1, D), (N2, D)."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(generated))


def fad_inf(
    real: np.ndarray, generated: np.ndarray, sizes: list[int] | None = None, repeats: int = 3, seed: int = 0
) -> dict:
    """FAD extrapolated to infinitely many generated samples (as fadtk; Chong & Forsyth 2020 for FID).

    FAD of random subsets of the generated set is fitted as a + b / N over subset sizes N; the
    intercept a is FAD-inf, comparable across generated-set sizes.

    Returns:
        {"fad_inf": a, "slope": b, "points": [[N, mean FAD], ...]}
    """
    generated = np.asarray(generated, np.float64)
    n = generated.shape[0]
    if sizes is None:
        lo = max(2, n // 5)
        sizes = sorted({int(round(x)) for x in np.linspace(lo, n, 8)})
    if min(sizes) < 2 or max(sizes) > n:
        raise ValueError(f"fad_inf: subset sizes must lie in 2..{n}, got {sizes}")
    rng = np.random.default_rng(seed)
    ref_stats = gaussian_stats(real)
    points = []
    for size in sizes:
        vals = [
            frechet_distance(*ref_stats, *gaussian_stats(generated[rng.choice(n, size, replace=False)]))
            for _ in range(1 if size == n else repeats)
        ]
        points.append([size, float(np.mean(vals))])
    x = np.array([[1.0, 1.0 / s] for s, _ in points])
    y = np.array([v for _, v in points])
    (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
    return {"fad_inf": float(a), "slope": float(b), "points": points}


def kernel_distance(real: np.ndarray, generated: np.ndarray, bandwidth: float | None = None) -> dict:
    """Kernel audio distance (KAD, arXiv 2502.15602): the unbiased MMD^2 estimate with a Gaussian kernel.

    k(x, y) = exp(-|x - y|^2 / (2 h^2)), with h the median pairwise distance of the pooled sets
    unless `bandwidth` is given. Unbiased: its expectation is 0 when both sets come from one
    distribution (so it can be slightly negative), and it needs no Gaussian assumption.

    Returns:
        {"kad": MMD^2, "bandwidth": h}
    """
    x, y = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    if x.shape[0] < 2 or y.shape[0] < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"kernel_distance needs two sets of >= 2 embeddings of one width, got {x.shape}, {y.shape}")

    def sqdist(a, b):
        return np.clip((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0, None)

    dxx, dyy, dxy = sqdist(x, x), sqdist(y, y), sqdist(x, y)
    if bandwidth is None:
        pooled = np.concatenate([dxx[np.triu_indices(len(x), 1)], dyy[np.triu_indices(len(y), 1)], dxy.ravel()])
        bandwidth = float(np.sqrt(np.median(pooled))) or 1.0
    g = 1 / (2 * bandwidth**2)
    kxx, kyy, kxy = np.exp(-g * dxx), np.exp(-g * dyy), np.exp(-g * dxy)
    m, n = len(x), len(y)
    mmd = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    return {"kad": float(mmd), "bandwidth": bandwidth}
