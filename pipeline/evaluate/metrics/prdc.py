"""Precision, recall, density and coverage (Naeem, Oh, Uh, Choi and Yoo, ICML 2020) on any features.

Quality and variety apart: precision is the share of samples inside the real manifold (the union
of k-NN balls around real points), recall the share of real points inside the samples' manifold;
density counts how many real balls hold each sample (1 when samples are distributed like the data,
robust to real outliers that inflate precision), coverage the share of real points whose ball holds
at least one sample (robust to sample outliers that inflate recall). Strict inequalities and k-NN
radii that exclude the point itself, as the authors' code; their README's check (10,000 real and
10,000 generated N(0, I) points in 1,000 dimensions, k = 5: precision 0.477, recall 0.471, density
1.056, coverage 0.974) is a test here.
"""

from __future__ import annotations

import numpy as np

from pipeline.evaluate.metrics.neighbours import distance_blocks, kth_neighbour_radius


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    real_r = kth_neighbour_radius(real, k)
    fake_r = kth_neighbour_radius(fake, k)
    inside_real = np.zeros(len(fake))           # per sample: real balls that hold it
    covered = np.zeros(len(real), bool)         # per real point: some sample inside its ball
    recalled = np.zeros(len(real), bool)        # per real point: inside some sample's ball
    for i, d in distance_blocks(real, fake):    # rows: real points, columns: samples
        in_ball = d < real_r[i:i + len(d), None]
        inside_real += in_ball.sum(0)
        covered[i:i + len(d)] = in_ball.any(1)
        recalled[i:i + len(d)] = (d < fake_r[None, :]).any(1)
    return {"precision": float((inside_real > 0).mean()), "recall": float(recalled.mean()),
            "density": float(inside_real.sum() / (k * len(fake))), "coverage": float(covered.mean())}
