"""Mode collapse in numbers: how spread the samples are compared with real faces, and how many are
near-copies of another sample.

- ``diversity_ratio``: mean pairwise distance among samples / the same among real faces (1 = as
  varied as the data, well below 1 = collapsing).
- ``near_duplicate_share``: samples whose nearest other sample is closer than the ``q`` quantile of
  real faces' nearest-neighbour distances; a generator as varied as the data scores about ``q``.
"""

from __future__ import annotations

import numpy as np

from pipeline.evaluate.metrics.neighbours import distance_blocks, kth_neighbour_radius


def mean_pairwise(x: np.ndarray) -> float:
    n = len(x)
    return float(sum(d.sum() for _, d in distance_blocks(x, x)) / (n * (n - 1)))


def nearest_other(x: np.ndarray) -> np.ndarray:
    return kth_neighbour_radius(x, 1)


def diversity(real: np.ndarray, fake: np.ndarray, quantile: float = 0.01, max_samples: int = 2000,
              seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float64)[rng.permutation(len(real))[:max_samples]]
    fake = np.asarray(fake, np.float64)[rng.permutation(len(fake))[:max_samples]]
    if min(len(real), len(fake)) < 2:
        raise ValueError(f"diversity needs at least 2 real and 2 generated samples, got {len(real)} and {len(fake)}")
    threshold = float(np.quantile(nearest_other(real), quantile))
    return {"diversity_ratio": mean_pairwise(fake) / max(mean_pairwise(real), 1e-12),
            "near_duplicate_share": float((nearest_other(fake) < threshold).mean())}
