"""Procedural toy faces as a source: runs the pipeline with no data and no network."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np

from pipeline.core.toyfaces import draw_face, sample_labels
from pipeline.scrape.params import ScrapeParams
from pipeline.scrape.sources.base import Candidate


def iter_toy(params: ScrapeParams) -> Iterator[Candidate]:
    cfg = params.toy
    rng = np.random.default_rng(cfg.seed)
    hairs, eyes = sample_labels(rng, cfg.count)
    for i, (hair, eye) in enumerate(zip(hairs, eyes)):
        buf = io.BytesIO()
        draw_face(rng, cfg.size, hair, eye).save(buf, format="PNG")
        yield Candidate(buf.getvalue(), "png", f"toy:{cfg.seed}:{i}", {"hair_color": hair, "eye_color": eye})
