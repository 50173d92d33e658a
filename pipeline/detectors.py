"""Face detectors behind one interface: a PIL image in, boxes with scores out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


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


def whole_image(image) -> list[Box]:
    """``crop.detector: none``: the picture already is a face; keep all of it."""
    w, h = image.size
    return [Box(0, 0, w, h, 1.0)]


def downscaled(detect: Detector, max_side: int) -> Detector:
    """Run ``detect`` on a copy whose longest side is at most ``max_side``; map boxes back.

    Detection cost grows with area (animeface: ~0.3 s at 256 px, 8 s at 1024 px) while faces worth
    cropping stay detectable well below full size.
    """
    def run(image) -> list[Box]:
        w, h = image.size
        f = max_side / max(w, h)
        if f >= 1:
            return detect(image)
        from PIL import Image

        small = image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
        sx, sy = w / small.size[0], h / small.size[1]
        return [Box(b.x * sx, b.y * sy, b.w * sx, b.h * sy, b.score) for b in detect(small)]
    return run


def animeface_detect(image) -> list[Box]:
    import animeface

    return [Box(f.face.pos.x, f.face.pos.y, f.face.pos.width, f.face.pos.height, float(f.likelihood))
            for f in animeface.detect(image.convert("RGB"))]


def get_detector(name: str, detect_max_side: int) -> Detector:
    if name == "none":
        return whole_image
    if name == "animeface":
        return downscaled(animeface_detect, detect_max_side)
    raise ValueError(f"unknown crop.detector {name!r}")
