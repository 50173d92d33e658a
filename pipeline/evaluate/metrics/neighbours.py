"""Nearest-neighbour distances between feature sets, in blocks so 10^4 x 10^4 pairs never sit in
memory at once (float64 accumulation of float32 products; exact enough for ranks and radii)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK = 2048  # rows per block: a 2048 x 10^4 float64 block is 160 MB


def _sq(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def distance_blocks(a: np.ndarray, b: np.ndarray, block: int = BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, Euclidean distances of rows a[first:first+block] to every row of b)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    bb = _sq(b)
    for i in range(0, len(a), block):
        rows = a[i:i + block]
        d2 = _sq(rows)[:, None] + bb[None, :] - 2.0 * rows @ b.T
        yield i, np.sqrt(np.clip(d2, 0.0, None))


def kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of ``x`` (itself excluded)."""
    if len(x) <= k:
        raise ValueError(f"{k}-nearest-neighbour radii need more than {k} points, got {len(x)}")
    out = np.empty(len(x))
    for i, d in distance_blocks(x, x):
        d[np.arange(len(d)), np.arange(i, i + len(d))] = np.inf  # not its own neighbour
        out[i:i + len(d)] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each row of ``a``'s nearest row of ``b``."""
    dist, idx = np.empty(len(a)), np.empty(len(a), np.int64)
    for i, d in distance_blocks(a, b):
        j = d.argmin(1)
        idx[i:i + len(d)] = j
        dist[i:i + len(d)] = d[np.arange(len(d)), j]
    return dist, idx
