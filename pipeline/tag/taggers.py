"""Taggers: a picture in, one probability per tag out.

A tagger is one module exposing ``load(params: TagParams, device: str) -> Tagger``; registering it
is one import and one line in ``TAGGERS`` (and a name in ``TagParams.tagger``). A WD14 ONNX tagger, for example,
would be a module that reads its model and CSV of tag names and implements ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Protocol

import numpy as np

from pipeline.tag import i2v

TAGGERS: dict[str, ModuleType] = {"i2v": i2v}  # i2v imports torch only when a tagger loads


class Tagger(Protocol):
    tags: list[str]          # output names, in output order
    general: list[int]       # outputs that are general tags (listed when above tag.threshold)
    fingerprint: str         # changes whenever the outputs could: weights, preprocessing version

    def predict(self, images: Sequence) -> np.ndarray:
        """PIL images -> float32 (N, len(tags)) probabilities."""


def load_tagger(params, device: str) -> Tagger:
    try:
        module = TAGGERS[params.tagger]
    except KeyError:
        raise ValueError(f"unknown tagger {params.tagger!r}; known: {sorted(TAGGERS)}") from None
    return module.load(params, device)
