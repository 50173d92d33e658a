"""Taggers: a picture in, one probability per tag out.

A tagger is one module exposing ``load(params: TagParams, device: str) -> Tagger``; registering it
is one line in ``TAGGERS`` (and a name in ``TagParams.tagger``). A WD14 ONNX tagger, for example,
would be a module that reads its model and CSV of tag names and implements ``predict``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np

TAGGERS = {"i2v": "pipeline.tag.i2v"}


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
    return importlib.import_module(module).load(params, device)
