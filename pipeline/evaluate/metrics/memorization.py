"""Does the model copy its training faces? Each sample's distance to its nearest training face, in
the evaluation features, read against the same distance for real faces the model never saw.

Held-out real faces are new drawings of the same distribution: their nearest training face is as
close as faces of this data set ever are to each other. A sample closer to a training face than
all but ``quantile`` of the held-out faces are (1% by default) is counted as a copy: a model that
draws like the data scores about ``quantile``, one that returns its training faces scores 1. The
ratio of medians says the same continuously (about 1 for new faces, towards 0 for copies). The
closest pairs are returned for the report to show.
"""

from __future__ import annotations

import numpy as np

from pipeline.evaluate.metrics.neighbours import nearest


def memorization(train: np.ndarray, holdout: np.ndarray, fake: np.ndarray, quantile: float = 0.01,
                 pairs: int = 8) -> tuple[dict[str, float], list[tuple[int, int, float]]]:
    """({memorization_share, memorization_ratio, memorization_threshold}, closest (sample, training
    face, distance) pairs, closest first)."""
    if len(holdout) < 2:
        raise ValueError(f"memorisation needs held-out real faces to compare with, got {len(holdout)}")
    held_d, _ = nearest(holdout, train)
    fake_d, fake_i = nearest(fake, train)
    threshold = float(np.quantile(held_d, quantile))
    order = np.argsort(fake_d, kind="stable")[:pairs]
    closest = [(int(s), int(fake_i[s]), float(fake_d[s])) for s in order]
    return {"memorization_share": float((fake_d < threshold).mean()),
            "memorization_ratio": float(np.median(fake_d) / max(np.median(held_d), 1e-12)),
            "memorization_threshold": threshold}, closest
