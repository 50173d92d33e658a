"""Conditional models: do the samples show the attributes they were asked for?

A reader maps a generated image to the value of one attribute (on toy faces the toy generator's own
hair-colour check; on real faces the tagger, once weights are present). Accuracy is per attribute,
plus the mean over the attributes that have a reader.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pipeline.metrics.errors import MetricUnavailable

Reader = Callable[[np.ndarray], str]  # one HxWx3 uint8 image -> attribute value


def toy_readers() -> dict[str, Reader]:
    from pipeline.toy import hair_colour_of

    return {"hair_color": hair_colour_of}


def attribute_accuracy(fake: np.ndarray, requested: dict[str, list[str | None]], readers: dict[str, Reader]) -> dict[str, float]:
    """``requested[attr][i]`` is the value sample ``i`` was conditioned on (None: not requested)."""
    out: dict[str, float] = {}
    for attr, wanted in requested.items():
        if attr not in readers:
            continue
        if len(wanted) != len(fake):
            raise ValueError(f"{len(wanted)} requested {attr} values for {len(fake)} samples")
        idx = [i for i, w in enumerate(wanted) if w is not None]
        if idx:
            out[f"attr_acc_{attr}"] = float(np.mean([readers[attr](fake[i]) == wanted[i] for i in idx]))
    if not out:
        raise MetricUnavailable(f"no attribute reader for the conditioned attributes {sorted(requested)} "
                                f"(readers exist for {sorted(readers)})")
    out["attr_acc"] = float(np.mean(list(out.values())))
    return out
