"""Precision/recall/density/coverage and memorisation, on features with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.metrics.memorization import memorization
from pipeline.evaluate.metrics.neighbours import kth_neighbour_radius, nearest
from pipeline.evaluate.metrics.prdc import prdc


def test_prdc_equals_the_authors_code():
    """clovaai/generative-evaluation-prdc (prdc/prdc.py, with scikit-learn's pairwise distances), run
    on this input outside the project, gave precision 0.278, recall 0.9583333, density 0.126,
    coverage 0.3616667."""
    rng = np.random.default_rng(7)
    real = rng.normal(size=(600, 32))
    fake = rng.normal(loc=0.3, size=(500, 32)) * 1.2
    got = prdc(real, fake, k=5)
    assert got == pytest.approx({"precision": 0.278, "recall": 0.9583333333333334, "density": 0.126,
                                 "coverage": 0.3616666666666667}, abs=1e-12)


def test_prdc_of_the_same_distribution_and_of_a_collapsed_one():
    rng = np.random.default_rng(0)
    real, same = rng.normal(size=(800, 16)), rng.normal(size=(800, 16))
    good = prdc(real, same)
    collapsed = prdc(real, rng.normal(scale=0.05, size=(800, 16)))  # every sample near the mean
    assert 0.75 < good["density"] < 1.25 and good["coverage"] > 0.9 and good["recall"] > 0.6
    assert collapsed["precision"] > 0.9 and collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.2


def test_blocks_give_the_full_matrix_answer():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5000, 8)), rng.normal(size=(300, 8))
    d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    dist, idx = nearest(a, b)
    assert np.array_equal(idx, d.argmin(1)) and np.allclose(dist, d.min(1))
    self_d = np.sqrt(((b[:, None] - b[None]) ** 2).sum(-1))
    np.fill_diagonal(self_d, np.inf)
    assert np.allclose(kth_neighbour_radius(b, 3), np.sort(self_d, 1)[:, 2])


def test_memorization_is_one_for_copies_and_the_quantile_for_new_faces():
    rng = np.random.default_rng(2)
    train, holdout, new = rng.normal(size=(3000, 32)), rng.normal(size=(600, 32)), rng.normal(size=(600, 32))
    copies, pairs = memorization(train, holdout, train[rng.permutation(3000)[:500]] + 1e-6)
    fresh, _ = memorization(train, holdout, new, quantile=0.01)
    assert copies["memorization_share"] == 1.0 and copies["memorization_ratio"] < 1e-3
    assert pairs[0][2] < 1e-3 and len(pairs) == 8
    assert fresh["memorization_share"] < 0.04 and 0.9 < fresh["memorization_ratio"] < 1.1
