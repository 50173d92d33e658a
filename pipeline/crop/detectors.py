"""Face detectors behind one interface: a PIL RGB image in, boxes (source pixels) with scores out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DETECTORS = ("animeface", "lbpcascade", "ensemble", "none")


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    def scaled(self, f: float) -> Box:
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
    return detect if max_side is None else multiscale(detect, max_side)


def at_side(detect: Detector, image, side: int) -> list[Box]:
    """``detect`` on a copy whose longest side is ``side`` (down or up), boxes in the image's pixels."""
    w, h = image.size
    if side == max(w, h):
        return detect(image)
    from PIL import Image

    f = side / max(w, h)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    # down: reducing_gap shrinks by whole factors first, then filters (fast, antialiased); up: bicubic
    copy = (image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0) if f < 1
            else image.resize(size, Image.Resampling.BICUBIC))
    sx, sy = w / size[0], h / size[1]
    return [Box(b.x * sx, b.y * sy, b.w * sx, b.h * sy, b.score) for b in detect(copy)]


def multiscale(detect: Detector, max_side: int | None, min_side: int | None = None, retry_side: int | None = None,
               accept: Callable[[Box], bool] | None = None) -> Detector:
    """Detect at the side faces are seen at, and again larger where that finds none.

    First pass: the picture with its longest side brought to at most ``max_side`` (``None``: full
    size) and, when it is smaller than ``min_side``, upscaled to it: AnimeFace sees no face below
    about 40 px, so a 25 px face in a 256 px picture is found only upscaled. Second pass, only for
    a picture with no face ``accept``-ed by the first (default: any box): at ``retry_side``, for
    faces that the downscale made too small (a 110 px face in a 1024 px picture is 55 px at 512).
    """
    def first_side(w: int, h: int) -> int:
        side = max(w, h) if max_side is None else min(max(w, h), max_side)
        return max(side, min_side) if min_side else side

    def run(image) -> list[Box]:
        side = first_side(*image.size)
        boxes = at_side(detect, image, side)
        if retry_side is None or retry_side <= side or any(map(accept, boxes) if accept else boxes):
            return boxes
        return at_side(detect, image, retry_side) or boxes
    return run


def ensemble(detectors: list[Detector], iou_threshold: float = 0.3) -> Detector:
    """Every detector on the same copy, boxes merged: a box overlapping (IoU >= ``iou_threshold``)
    one already kept adds no face, only its score (the higher counts); the first detector's box is kept."""
    def run(image) -> list[Box]:
        kept: list[Box] = []
        for detect in detectors:
            for b in detect(image):
                match = max(range(len(kept)), key=lambda i: iou(kept[i], b), default=None)
                if match is not None and iou(kept[match], b) >= iou_threshold:
                    k = kept[match]
                    kept[match] = Box(k.x, k.y, k.w, k.h, max(k.score, b.score))
                else:
                    kept.append(b)
        return kept
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


def get_detector(name: str, detect_max_side: int | None, cascade: str | Path | None = None, *,
                 min_side: int | None = None, retry_side: int | None = None, ensemble_iou: float = 0.3,
                 accept: Callable[[Box], bool] | None = None) -> Detector:
    """Build a detector by ``crop.detector`` name, at the scales of :func:`multiscale`; ``lbpcascade``
    and ``ensemble`` need the xml path (see cascade.py)."""
    if name == "none":
        return whole_image
    if name not in DETECTORS:
        raise ValueError(f"unknown crop.detector {name!r}; known: {list(DETECTORS)}")
    if name != "animeface" and cascade is None:
        raise ValueError(f"the {name} detector needs the cascade xml path")
    base = {"animeface": animeface_detect, "lbpcascade": lambda: lbpcascade_detector(cascade),
            "ensemble": lambda: ensemble([animeface_detect, lbpcascade_detector(cascade)], ensemble_iou)}[name]
    detect = base if name == "animeface" else base()
    return multiscale(detect, detect_max_side, min_side, retry_side, accept)


def from_params(params, cascade: str | Path | None = None) -> Detector:
    """The detector ``crop.*`` describes (CropParams); the retry looks for a box the stage would keep."""
    def accept(b: Box) -> bool:
        return b.score >= params.min_score and min(b.w, b.h) >= params.min_face

    return get_detector(params.detector, params.detect_max_side, cascade, min_side=params.detect_min_side,
                        retry_side=params.retry_side, ensemble_iou=params.ensemble_iou, accept=accept)
