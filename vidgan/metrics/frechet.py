"""Gaussian fits of feature sets and the Fréchet distance between them, in float64.

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)

S1 S2 is not symmetric, and a general matrix square root of it (scipy.linalg.sqrtm)
returns complex parts and loses digits when the covariances are rank-deficient (fewer
clips than feature dimensions) or ill-conditioned. Here tr sqrt(S1 S2) is computed as
the sum of the singular values of S2^1/2 S1^1/2 (both roots from symmetric
eigendecompositions), which equals tr sqrt(S1^1/2 S2 S1^1/2).
Eigenvalues at rounding level (|w| <= d * eps * max w, or negative), which
rank-deficient covariances produce by the hundred, are set to zero before the roots.

Statistics are accumulated batch by batch with the pairwise (Chan et al.) update of
mean and centred scatter, so memory does not grow with the number of samples and no
large raw second moments are subtracted.
"""
import contextlib
from typing import Tuple

import numpy as np
import torch

from vidgan.errors import InputError


def _clip_eigenvalues(w: np.ndarray) -> np.ndarray:
    """Eigenvalues at rounding level (below d * eps * max) or negative -> 0.

    A rank-deficient matrix has zero eigenvalues that eigh returns as +-eps * max; their
    square roots (~sqrt(eps)) would otherwise add up to a visible error."""
    top = float(np.max(np.abs(w))) if w.size else 0.0
    tol = w.shape[0] * np.finfo(np.float64).eps * top
    return np.where(w > tol, w, 0.0)


@contextlib.contextmanager
def _one_thread():
    """Multithreaded LAPACK eigensolvers slow down 10-50x when the cores are busy (measured:
    a 1024 x 1024 eigh took 25 s instead of 0.5 s); these matrices are small enough for one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues at rounding level -> 0)."""
    a = np.asarray(a, dtype=np.float64)
    with _one_thread():
        w, v = torch.linalg.eigh(torch.from_numpy((a + a.T) * 0.5))
        w = torch.from_numpy(_clip_eigenvalues(w.numpy()))
        return ((v * w.sqrt()) @ v.T).numpy()


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrt(S1 S2) for symmetric PSD S1, S2.

    = tr sqrt(S1^1/2 S2 S1^1/2) = the sum of the singular values of S2^1/2 S1^1/2. Taking
    singular values of the product of square roots, rather than square roots of the
    eigenvalues of S1^1/2 S2 S1^1/2, never takes the square root of a rounding error."""
    product = torch.from_numpy(sqrtm_psd(s2) @ sqrtm_psd(s1))
    with _one_thread():
        return float(torch.linalg.svdvals(product).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise InputError(f"Fréchet distance needs means of equal length d and d x d covariances, got "
                         f"{mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}.")
    for name, x in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.all(np.isfinite(x)):
            raise InputError(f"Fréchet distance: {name} has non-finite entries (NaN or inf features).")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    return max(value, 0.0)  # exact value is >= 0; rounding can leave a tiny negative


def gaussian_stats(x) -> Tuple[np.ndarray, np.ndarray]:
    """(mean [D], unbiased covariance [D, D]) of samples x [N, D], in float64."""
    acc = GaussianAccumulator()
    acc.update(x)
    return acc.stats()


class GaussianAccumulator:
    """Streaming float64 mean and covariance of D-dimensional samples."""

    def __init__(self, dim: int = None):
        self.n = 0
        self.mean = None if dim is None else np.zeros(dim)
        self.scatter = None if dim is None else np.zeros((dim, dim))  # sum of (x - mean)(x - mean)^T

    def update(self, x) -> "GaussianAccumulator":
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise InputError(f"features must be [N, D], got shape {x.shape}.")
        m = x.shape[0]
        if m == 0:
            return self
        mean_b = x.mean(axis=0)
        xc = x - mean_b
        scatter_b = xc.T @ xc
        if self.n == 0 or self.mean is None:
            self.n, self.mean, self.scatter = m, mean_b, scatter_b
            return self
        if mean_b.shape != self.mean.shape:
            raise InputError(f"feature size changed from {self.mean.shape[0]} to {mean_b.shape[0]}.")
        n = self.n + m
        delta = mean_b - self.mean
        self.scatter = self.scatter + scatter_b + np.outer(delta, delta) * (self.n * m / n)
        self.mean = self.mean + delta * (m / n)
        self.n = n
        return self

    def merge(self, other: "GaussianAccumulator") -> "GaussianAccumulator":
        """Adds the samples summarised by another accumulator."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.scatter = other.n, other.mean.copy(), other.scatter.copy()
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        self.mean = self.mean + delta * (other.n / n)
        self.n = n
        return self

    def stats(self) -> Tuple[np.ndarray, np.ndarray]:
        """(mean, unbiased covariance); needs at least two samples."""
        if self.n < 2:
            raise InputError(f"a Gaussian fit needs at least 2 samples, got {self.n}.")
        sigma = self.scatter / (self.n - 1)
        return self.mean.copy(), (sigma + sigma.T) * 0.5
