import numpy as np
import pytest
import scipy.linalg

from audiodiff.eval.fad import fad, fad_inf, frechet_distance, gaussian_stats, kernel_distance


def test_zero_on_identical_sets_and_symmetric():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 16)), rng.normal(1.0, 2.0, size=(200, 16))
    assert fad(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fad(x, y) == pytest.approx(fad(y, x), rel=1e-9)


def test_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    a, b = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_general_case_matches_the_scipy_formula_when_well_conditioned():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(500, 10)), rng.normal(size=(400, 10)) @ rng.normal(size=(10, 10))
    (m1, c1), (m2, c2) = gaussian_stats(x), gaussian_stats(y)
    ref = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-6)


def frechet_oracle(x, y):
    """Frechet distance of two sets without any matrix square root of a singular covariance.

    With C1 = A A^T, A = (x - mean)^T / sqrt(N1 - 1) (D, N1), and C2 = B B^T likewise, the
    nonzero eigenvalues of C1^{1/2} C2 C1^{1/2} are those of (A^T B)(A^T B)^T, so the trace
    term is the sum of the singular values of the small matrix A^T B (N1, N2).
    """
    a = (x - x.mean(0)).T / np.sqrt(len(x) - 1)
    b = (y - y.mean(0)).T / np.sqrt(len(y) - 1)
    mean_term = ((x.mean(0) - y.mean(0)) ** 2).sum()
    return mean_term + (a**2).sum() + (b**2).sum() - 2 * np.linalg.svd(a.T @ b, compute_uv=False).sum()


def test_values_on_rank_deficient_covariances():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 128))  # N < D: singular covariance (rank 19)
    z = rng.normal(size=(30, 128))
    # the ~109 null directions each add a sqrt(rounding) ~ 1e-7 term to the trace: errors ~1e-5, so rel=1e-6
    assert fad(x, x) == pytest.approx(0.0, abs=1e-9)
    assert fad(x, x + 1e-9 * rng.normal(size=x.shape)) == pytest.approx(0.0, abs=1e-9)
    assert fad(x, x + 0.5) == pytest.approx(128 * 0.25, rel=1e-6)  # equal covariances: the mean term only
    # C2 = 4 C1: tr C1 + 4 tr C1 - 2 tr(2 C1) = tr C1, plus |mu1 - 2 mu1|^2
    _, c1 = gaussian_stats(x)
    assert fad(x, 2 * x) == pytest.approx(np.trace(c1) + (x.mean(0) ** 2).sum(), rel=1e-6)
    assert fad(x, z) == pytest.approx(frechet_oracle(x, z), rel=1e-6)  # 181.693
    assert fad(x, z) == pytest.approx(fad(z, x), rel=1e-6) and isinstance(fad(x, z), float)


def test_fad_inf_recovers_the_intercept():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(40000, 8))
    gen = rng.normal(0.5, 1.0, size=(200000, 8))  # a large pool: subsets ~ iid; true FD = 8 * 0.25 = 2
    out = fad_inf(ref, gen, sizes=[200, 400, 800, 1600, 4000], repeats=4)
    assert out["fad_inf"] == pytest.approx(2.0, abs=0.08)
    assert out["slope"] > 0 and out["points"][0][1] > out["points"][-1][1]  # small sets are biased upward
    with pytest.raises(ValueError, match="subset sizes must lie in"):
        fad_inf(ref, gen, sizes=[1, 10])


def test_kad_is_unbiased_and_separates_distributions():
    rng = np.random.default_rng(5)
    same = [kernel_distance(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)))["kad"] for _ in range(60)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    assert min(same) < 0 < max(same)  # an unbiased estimate goes below zero
    far = kernel_distance(rng.normal(size=(60, 4)), rng.normal(1.0, 1.0, size=(60, 4)))["kad"]
    assert far > max(same)


def _kad_by_the_formula(x, y, h):
    """KAD from its definition with plain loops (kadtk: 100 * unbiased MMD^2, Gaussian RBF)."""

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * h**2 + 1e-8))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return 100 * (xx + yy - 2 * xy)


def test_kad_is_kadtks_definition_with_the_reference_set_bandwidth():
    rng = np.random.default_rng(6)
    ref, gen = rng.normal(size=(21, 5)), rng.normal(0.3, 2.5, size=(17, 5))  # gen spread wider than ref
    pairs = sorted(np.linalg.norm(ref[i] - ref[j]) for i in range(21) for j in range(i + 1, 21))
    h_ref = pairs[(len(pairs) - 1) // 2]  # torch.median: the lower middle value (210 pairs)
    pooled = np.concatenate([ref, gen])
    all_pairs = [np.linalg.norm(pooled[i] - pooled[j]) for i in range(38) for j in range(i + 1, 38)]
    h_pooled = float(np.median(all_pairs))
    assert h_pooled > 1.5 * h_ref  # the wide generated set would widen a pooled kernel
    out = kernel_distance(ref, gen)
    assert out["bandwidth"] == pytest.approx(h_ref, rel=1e-12)
    expected = _kad_by_the_formula(ref, gen, h_ref)
    assert out["kad"] == pytest.approx(expected, rel=1e-9)
    assert abs(expected - _kad_by_the_formula(ref, gen, h_pooled)) > 0.2 * abs(expected)  # the old kernel
    assert kernel_distance(gen, ref)["bandwidth"] != pytest.approx(h_ref)  # not symmetric: refs set h
    assert kernel_distance(ref, gen, bandwidth=h_pooled)["kad"] == pytest.approx(
        _kad_by_the_formula(ref, gen, h_pooled), rel=1e-9
    )


def test_kad_with_identical_reference_embeddings_stays_finite():
    same = np.ones((4, 3))
    out = kernel_distance(same, same + np.arange(3.0))
    assert out["bandwidth"] == 0 and np.isfinite(out["kad"]) and out["kad"] == pytest.approx(200.0)  # 100 * (1 + 1 - 0)
