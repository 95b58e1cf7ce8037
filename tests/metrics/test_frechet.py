"""Fréchet distance and Gaussian fits: float64, careful matrix square root, streaming statistics."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings, strategies as st

from vidgan.errors import InputError
from vidgan.metrics.frechet import (GaussianAccumulator, frechet_distance, gaussian_stats, sqrtm_psd,
                                    trace_sqrt_product)


def _random_cov(rng, d, n=None, scale=1.0):
    n = n or 3 * d
    x = rng.standard_normal((n, d)) * scale
    return np.cov(x, rowvar=False)


def _scipy_trace_sqrt(s1, s2):
    r = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.trace(r).real)


def test_sqrtm_psd_squares_back_and_matches_scipy():
    rng = np.random.default_rng(0)
    s = _random_cov(rng, 40)
    r = sqrtm_psd(s)
    np.testing.assert_allclose(r @ r, s, atol=1e-12)
    np.testing.assert_allclose(r, r.T, atol=0)
    np.testing.assert_allclose(r, scipy.linalg.sqrtm(s).real, atol=1e-10)


def test_sqrtm_psd_rank_deficient_stays_real_and_psd():
    rng = np.random.default_rng(1)
    s = _random_cov(rng, 50, n=10)  # rank 9
    r = sqrtm_psd(s)
    assert np.isrealobj(r)
    assert np.linalg.eigvalsh(r).min() > -1e-12
    np.testing.assert_allclose(r @ r, s, atol=1e-12)


def test_trace_sqrt_matches_scipy_on_well_conditioned():
    rng = np.random.default_rng(2)
    for d in (3, 32, 128):
        s1, s2 = _random_cov(rng, d), _random_cov(rng, d, scale=2.0)
        assert trace_sqrt_product(s1, s2) == pytest.approx(_scipy_trace_sqrt(s1, s2), rel=1e-10)
        assert trace_sqrt_product(s1, s2) == pytest.approx(trace_sqrt_product(s2, s1), rel=1e-12)


def _commuting_pair(aligned: bool):
    # Shared eigenbasis: tr sqrt(S1 S2) = sum sqrt(a_i b_i) exactly. S1's spectrum spans 1e-14 .. 1e4 with zeros.
    rng = np.random.default_rng(3)
    d = 64
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a = np.logspace(-14, 4, d)
    b = (np.logspace(-10, 3, d) if aligned else np.logspace(4, -14, d)) * rng.uniform(0.5, 2.0, d)
    a[:5] = 0.0
    return (q * a) @ q.T, (q * b) @ q.T, float(np.sqrt(a * b).sum())


def test_trace_sqrt_ill_conditioned_beats_scipy():
    s1, s2, exact = _commuting_pair(aligned=True)  # condition numbers ~1e18 and ~1e13
    ours = trace_sqrt_product(s1, s2)
    assert ours == pytest.approx(exact, rel=1e-10)
    assert abs(_scipy_trace_sqrt(s1, s2) - exact) > 10 * abs(ours - exact)


def test_trace_sqrt_opposed_spectra_within_rounding_of_the_scale():
    # Large eigenvalues of S1 meet small ones of S2: the exact term (~6e-4) is below what float64
    # resolves next to tr S ~ 1e4; both methods must stay within rounding of that scale.
    s1, s2, exact = _commuting_pair(aligned=False)
    scale = np.sqrt(np.trace(s1) * np.trace(s2))
    assert abs(trace_sqrt_product(s1, s2) - exact) < 1e-7 * scale
    assert abs(_scipy_trace_sqrt(s1, s2) - exact) < 1e-7 * scale


@pytest.mark.parametrize("n,m,d", [(12, 9, 400), (50, 70, 400), (5, 300, 64)])
def test_trace_sqrt_rank_deficient_against_small_svd(n, m, d):
    # Covariances from fewer samples than dimensions (FVD with few clips). With centred samples
    # X [n, d], Y [m, d]: tr sqrt(S1 S2) = nuclear norm of X Y^T / sqrt((n-1)(m-1)), an SVD of an n x m
    # matrix, which is an accurate independent reference.
    rng = np.random.default_rng(n + m + d)
    x = rng.standard_normal((n, d)) * rng.uniform(0.1, 10.0, d)
    y = rng.standard_normal((m, d)) + 0.3 * rng.standard_normal(d)
    xc, yc = x - x.mean(0), y - y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    exact = float(np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1)))
    ours = trace_sqrt_product(s1, s2)
    assert ours == pytest.approx(exact, rel=1e-12)
    scipy_value = _scipy_trace_sqrt(s1, s2)  # loses ~7 digits on these singular products
    assert abs(scipy_value - exact) > 10 * abs(ours - exact)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(4)
    s = _random_cov(rng, 20)
    mu = rng.standard_normal(20)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    shift = rng.standard_normal(20)
    assert frechet_distance(mu, s, mu + shift, s) == pytest.approx(float(shift @ shift), rel=1e-9)
    # 1-D: (m1 - m2)^2 + (sqrt(v1) - sqrt(v2))^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # scaled covariances: tr(S) (1 + c - 2 sqrt(c))
    assert frechet_distance(mu, s, mu, 4.0 * s) == pytest.approx(np.trace(s) * (1 + 4 - 4), rel=1e-9)


def test_frechet_distance_symmetric_and_matches_scipy_formula():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((300, 30)), rng.standard_normal((200, 30)) * 1.5 + 0.2
    (m1, s1), (m2, s2) = gaussian_stats(x), gaussian_stats(y)
    d12, d21 = frechet_distance(m1, s1, m2, s2), frechet_distance(m2, s2, m1, s1)
    assert d12 == pytest.approx(d21, rel=1e-12)
    ref = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * _scipy_trace_sqrt(s1, s2))
    assert d12 == pytest.approx(ref, rel=1e-10)


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(InputError, match="d x d"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(InputError, match="non-finite"):
        frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))


def test_gaussian_stats_float64_and_unbiased():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((100, 7)).astype(np.float32)
    mu, sigma = gaussian_stats(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-14)
    with pytest.raises(InputError, match="at least 2 samples"):
        gaussian_stats(x[:1])


def test_accumulator_large_offset_keeps_precision():
    # mean 1e6, spread 1e-2: the naive E[xx^T] - mu mu^T loses every digit in float64
    rng = np.random.default_rng(7)
    x = 1e6 + 1e-2 * rng.standard_normal((4000, 3))
    acc = GaussianAccumulator()
    for a in range(0, 4000, 256):
        acc.update(x[a:a + 256])
    _, sigma = acc.stats()
    ref = np.cov(x - 1e6, rowvar=False)
    np.testing.assert_allclose(sigma, ref, rtol=1e-6, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 17), min_size=1, max_size=8), st.integers(0, 2 ** 31 - 1))
def test_accumulator_any_chunking_and_merge_equal_batch(sizes, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sum(sizes) + 2, 5)) * 3 + 1
    ref_mu, ref_sigma = np.mean(x, 0), np.cov(x, rowvar=False)
    acc, parts, a = GaussianAccumulator(), [], 0
    for size in sizes + [2]:
        acc.update(x[a:a + size])
        parts.append(GaussianAccumulator().update(x[a:a + size]))
        a += size
    merged = GaussianAccumulator()
    for p in reversed(parts):
        merged.merge(p)
    for got in (acc.stats(), merged.stats()):
        np.testing.assert_allclose(got[0], ref_mu, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[1], ref_sigma, rtol=1e-9, atol=1e-12)
