"""Distances between sets of embeddings: Frechet distance (FAD), FAD-inf, kernel audio distance (KAD, as kadtk).

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


# kadtk's SCALE_FACTOR: the MMD^2 is multiplied by 100 (github.com/YoonjinXD/kadtk, kadtk/kad.py).
KAD_SCALE = 100.0
KAD_EPS = 1e-8  # kadtk's eps in gamma = 1 / (2 h^2 + eps); keeps a zero bandwidth finite


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (N, M) between rows of a (N, D) and b (M, D), clipped at 0."""
    return np.clip((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0, None)


def median_pairwise_distance(emb: np.ndarray) -> float:
    """kadtk's bandwidth: the median Euclidean distance over the N (N - 1) / 2 pairs of rows of (N, D).

    As `torch.median(torch.pdist(x))` in kadtk: for an even number of pairs, the lower of the two
    middle values (not their mean).
    """
    emb = np.asarray(emb, np.float64)
    d2 = _sqdist(emb, emb)[np.triu_indices(len(emb), 1)]
    return float(np.sqrt(np.sort(d2)[(len(d2) - 1) // 2]))


def kernel_distance(real: np.ndarray, generated: np.ndarray, bandwidth: float | None = None) -> dict:
    """Kernel audio distance as kadtk computes it (Chung et al. 2025, "KAD: No More FAD!", arXiv 2502.15602).

    The definition of kadtk's `calc_kernel_audio_distance` (github.com/YoonjinXD/kadtk,
    kadtk/kad.py, commit 7ec65d7), with the reference set X (m, D) and the generated set Y (n, D):

        k(a, b) = exp(-|a - b|^2 / (2 h^2 + 1e-8)),  h = median pairwise distance of X (reference only)
        KAD = 100 * [ sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
                      - 2 sum_{i, j} k(x_i, y_j) / (m n) ]

    an unbiased MMD^2 estimate: its expectation is 0 when both sets come from one distribution (so
    it can be slightly negative), and it needs no Gaussian assumption. Because h comes from the
    reference set alone, every generated set is scored with the same kernel, and KAD(X, Y) is not
    symmetric. kadtk computes in float32; this is float64 (differences of order 1e-6 relative).

    Args:
        real: reference embeddings (m >= 2, D).
        generated: generated embeddings (n >= 2, D).
        bandwidth: h; default the median pairwise distance of `real`.

    Returns:
        {"kad": 100 * MMD^2, "bandwidth": h}
    """
    x, y = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] < 2 or y.shape[0] < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"kernel_distance needs two sets of >= 2 embeddings of one width, got {x.shape}, {y.shape}")
    if bandwidth is None:
        bandwidth = median_pairwise_distance(x)
    g = 1 / (2 * bandwidth**2 + KAD_EPS)
    kxx, kyy, kxy = np.exp(-g * _sqdist(x, x)), np.exp(-g * _sqdist(y, y)), np.exp(-g * _sqdist(x, y))
    m, n = len(x), len(y)
    mmd = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    return {"kad": float(KAD_SCALE * mmd), "bandwidth": float(bandwidth)}
