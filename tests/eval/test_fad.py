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


def test_real_and_non_negative_on_rank_deficient_covariances():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 128))  # N < D: singular covariance
    y = x + 1e-9 * rng.normal(size=x.shape)
    for value in (fad(x, x), fad(x, y), fad(x, rng.normal(size=(30, 128)))):
        assert isinstance(value, float) and np.isfinite(value) and value >= 0


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
