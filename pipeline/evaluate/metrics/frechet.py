"""Fréchet distance between two Gaussians fitted to feature sets (the FID formula), in NumPy.

The matrix square root goes through symmetric eigendecompositions, which stay real and stable for
the near-singular covariances that small sample sets give (scipy's sqrtm can return complex noise).
"""

from __future__ import annotations

import numpy as np


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors as an (n, d) array, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)."""
    r1 = _sqrt_psd(s1)
    cross = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_cross = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_cross, 0.0))


def frechet_between(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian(a), *gaussian(b))
