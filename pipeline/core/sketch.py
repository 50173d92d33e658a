"""Line sketches extracted from faces with XDoG (Winnemöller et al. 2012), the (sketch, face)
pairs that sketch2image trains on. numpy only and deterministic: the same face always gives the
same sketch, so pairs need no cache and a user's own sketch can be made the same way.
"""

from __future__ import annotations

import numpy as np

from pipeline.train.params import SketchParams


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian along the last two axes of N x H x W, reflected borders."""
    r = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-t ** 2 / (2 * sigma ** 2))
    w /= w.sum()
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        xp = np.pad(x, pad, mode="reflect")
        n = x.shape[axis]
        x = sum(wi * np.take(xp, np.arange(i, i + n), axis=axis) for i, wi in enumerate(w))
    return x


def xdog(images: np.ndarray, p: SketchParams | None = None) -> np.ndarray:
    """N x H x W x 3 uint8 faces -> N x H x W uint8 sketches (white paper, dark lines)."""
    p = p or SketchParams()
    gray = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    d = _blur(gray, p.sigma) - p.tau * _blur(gray, p.sigma * p.k)
    d /= np.abs(d).max(axis=(1, 2), keepdims=True) + 1e-12
    e = np.where(d >= p.eps, 1.0, 1.0 + np.tanh(p.phi * (d - p.eps)))
    return np.round(np.clip(e, 0, 1) * 255).astype(np.uint8)
