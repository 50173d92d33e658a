"""Kernel distance (KID, Binkowski et al. 2018): unbiased squared MMD with the cubic polynomial kernel.

Unlike the Fréchet distance it has an unbiased estimator, so small sample sets neither inflate it
nor make two equal distributions look apart (it averages to 0 there and can go slightly negative).
"""

from __future__ import annotations

import numpy as np


def poly_kernel(x, y):
    """(x.y / d + 1)^3 for numpy arrays or torch tensors."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y) -> float:
    m, n = len(x), len(y)
    kxx, kyy, kxy = poly_kernel(x, x), poly_kernel(y, y), poly_kernel(x, y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        device: str = "cpu") -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over random subsets (size clamped to the smaller set); the
    kernels run in float64 torch on ``device`` (the subsets are the cost: 3 x subset^2 x d each)."""
    import torch

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"KID needs two (n, d) feature arrays of the same d, got {a.shape} and {b.shape}")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    ta, tb = torch.as_tensor(a, device=device), torch.as_tensor(b, device=device)
    vals = [mmd2_unbiased(ta[rng.choice(len(a), size, replace=False)], tb[rng.choice(len(b), size, replace=False)])
            for _ in range(subsets)]
    return float(np.mean(vals)), float(np.std(vals))
