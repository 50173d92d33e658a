"""Face detectors behind one interface: a PIL RGB image in, boxes (source pixels) with scores out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DETECTORS = ("animeface", "lbpcascade", "none")


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    def scaled(self, f: float) -> "Box":
        return Box(self.x * f, self.y * f, self.w * f, self.h * f, self.score)


Detector = Callable[["PIL.Image.Image"], list[Box]]  # noqa: F821


def iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    ih = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = iw * ih
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def whole_image(image) -> list[Box]:
    """``crop.detector: none``: the picture already is a face; keep all of it."""
    w, h = image.size
    return [Box(0, 0, w, h, 1.0)]


def downscaled(detect: Detector, max_side: int | None) -> Detector:
    """Run ``detect`` on a copy whose longest side is at most ``max_side``; map boxes back.

    Detection cost grows with area (animeface: ~0.3 s at 256 px, 8 s at 1024 px) while faces worth
    cropping stay detectable well below full size. ``None`` means full resolution.
    """
    if max_side is None:
        return detect

    def run(image) -> list[Box]:
        w, h = image.size
        f = max_side / max(w, h)
        if f >= 1:
            return detect(image)
        from PIL import Image

        # reducing_gap: Pillow shrinks by whole factors first, then filters: fast and antialiased.
        small = image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR, reducing_gap=2.0)
        sx, sy = w / small.size[0], h / small.size[1]
        return [Box(b.x * sx, b.y * sy, b.w * sx, b.h * sy, b.score) for b in detect(small)]
    return run


def animeface_detect(image) -> list[Box]:
    """AnimeFace 2009 via the ``animeface`` wheel (model compiled in: offline); score = likelihood."""
    import animeface

    return [Box(f.face.pos.x, f.face.pos.y, f.face.pos.width, f.face.pos.height, float(f.likelihood))
            for f in animeface.detect(image.convert("RGB"))]


def lbpcascade_detector(xml: str | Path, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24) -> Detector:
    """nagadomi's recipe: ``detectMultiScale(equalizeHist(gray))``. The cascade gives no calibrated
    confidence, so every kept box scores 1.0 (``crop.min_score`` filters animeface only)."""
    import cv2
    import numpy as np

    from pipeline.core.errors import StageError

    try:
        cascade = cv2.CascadeClassifier(str(xml))
        ok = not cascade.empty()
    except (cv2.error, SystemError):  # OpenCV raises on malformed XML, returns empty on a wrong one
        ok = False
    if not ok:
        raise StageError(f"OpenCV could not load a cascade from {xml}; is it lbpcascade_animeface.xml?")

    def detect(image) -> list[Box]:
        gray = cv2.equalizeHist(cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY))
        rects = cascade.detectMultiScale(gray, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                         minSize=(min_size, min_size))
        return [Box(float(x), float(y), float(w), float(h), 1.0) for x, y, w, h in rects]
    return detect


def get_detector(name: str, detect_max_side: int | None, cascade: str | Path | None = None) -> Detector:
    """Build a detector by ``crop.detector`` name; ``lbpcascade`` needs the xml path (see cascade.py)."""
    if name == "none":
        return whole_image
    if name == "animeface":
        return downscaled(animeface_detect, detect_max_side)
    if name == "lbpcascade":
        if cascade is None:
            raise ValueError("the lbpcascade detector needs the cascade xml path")
        return downscaled(lbpcascade_detector(cascade), detect_max_side)
    raise ValueError(f"unknown crop.detector {name!r}; known: {list(DETECTORS)}")
