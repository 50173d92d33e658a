"""The offline metrics behave as their definitions promise on data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.metrics.c2st import c2st_accuracy
from pipeline.evaluate.metrics.diversity import diversity
from pipeline.evaluate.metrics.frechet import frechet_between
from pipeline.evaluate.metrics.kid import kid, mmd2_unbiased


def gauss(n, d=16, seed=0, shift=0.0):
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise():
    x = gauss(400)
    assert frechet_between(x, x) == pytest.approx(0, abs=1e-6)
    noise = np.random.default_rng(1).normal(size=x.shape)
    fids = [frechet_between(x, x + s * noise) for s in (0.1, 0.3, 0.6, 1.0, 2.0)]
    assert all(a < b for a, b in zip(fids, fids[1:])), fids
    assert fids[0] > 0


def test_kid_is_unbiased_on_equal_distributions_and_positive_when_apart():
    # many independent pairs from one distribution: the estimates straddle 0, their mean is ~0
    vals = [mmd2_unbiased(gauss(50, seed=2 * i), gauss(50, seed=2 * i + 1)) for i in range(200)]
    spread = np.std(vals) / np.sqrt(len(vals))
    assert abs(np.mean(vals)) < 3 * spread
    assert min(vals) < 0 < max(vals)  # an unbiased estimator goes negative; a biased one would not
    apart, _ = kid(gauss(200), gauss(200, seed=5, shift=0.5), subsets=20, subset_size=100)
    assert apart > 20 * spread


def test_kid_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same d"):
        kid(gauss(10, d=4), gauss(10, d=5))


def test_c2st_is_chance_on_one_distribution_and_perfect_on_two():
    same, _ = c2st_accuracy(gauss(600, seed=1), gauss(600, seed=2), seeds=[0, 1, 2], steps=150)
    apart, _ = c2st_accuracy(gauss(600, seed=1), gauss(600, seed=2, shift=3.0), seeds=[0, 1, 2], steps=150)
    assert 0.4 < same < 0.6
    assert apart > 0.97


def test_c2st_is_reproducible_with_fixed_seeds():
    a, b = gauss(200, seed=3), gauss(200, seed=4, shift=0.3)
    assert c2st_accuracy(a, b, seeds=[7], steps=50) == c2st_accuracy(a, b, seeds=[7], steps=50)


def test_diversity_flags_a_collapsed_generator():
    real = gauss(500, seed=1)
    healthy = diversity(real, gauss(500, seed=2), quantile=0.01)
    modes = gauss(5, seed=3)  # five modes repeated with tiny jitter
    collapsed = diversity(real, np.repeat(modes, 100, 0) + 1e-3 * gauss(500, seed=4), quantile=0.01)
    assert healthy["diversity_ratio"] == pytest.approx(1.0, abs=0.05)
    assert healthy["near_duplicate_share"] < 0.05
    assert collapsed["near_duplicate_share"] == 1.0
    assert collapsed["diversity_ratio"] < healthy["diversity_ratio"]
