"""Crop geometry: which boxes to keep, the square around each, what to do at image borders.

GAN face datasets (make.girls.moe, Danbooru portraits) crop a square 1.2-1.5x the detector's tight
box, centred on it, so hair and chin fit and every face sits at the same place and scale.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from pipeline.crop.detectors import Box
from pipeline.crop.params import CropParams


@dataclass(frozen=True)
class Square:
    """A square in source pixels; it may reach outside the image (padding policies)."""

    left: int
    top: int
    side: int

    def inside(self, width: int, height: int) -> bool:
        return self.left >= 0 and self.top >= 0 and self.left + self.side <= width and self.top + self.side <= height


def _round(v: float) -> int:
    """Half up, not Python's half-to-even: the same box always lands on the same pixel grid."""
    return math.floor(v + 0.5)


def square_around(box: Box, margin: float) -> Square:
    """The square of side ``margin * max(w, h)`` centred on the box centre."""
    side = max(1, _round(max(box.w, box.h) * margin))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    return Square(_round(cx - side / 2), _round(cy - side / 2), side)


def shift_inside(sq: Square, width: int, height: int) -> Square:
    """Move the square inside the image; when the image is smaller than the square, shrink it about
    the same centre first (so the face stays as central as the image allows)."""
    side = min(sq.side, width, height)
    left, top = sq.left + _round((sq.side - side) / 2), sq.top + _round((sq.side - side) / 2)
    return Square(min(max(left, 0), width - side), min(max(top, 0), height - side), side)


def select_boxes(boxes: list[Box], params: CropParams, width: int, height: int) -> tuple[list[tuple[Box, Square]], Counter]:
    """Boxes worth cropping, best score first, with their squares after the border policy;
    plus how many were dropped and why (low_score, small, border, max_faces)."""
    dropped: Counter = Counter()
    kept: list[tuple[Box, Square]] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if b.score < params.min_score:
            dropped["low_score"] += 1
            continue
        if min(b.w, b.h) < params.min_face:
            dropped["small"] += 1
            continue
        sq = square_around(b, params.margin)
        if not sq.inside(width, height):
            if params.border == "drop":
                dropped["border"] += 1
                continue
            if params.border == "shift":
                sq = shift_inside(sq, width, height)
        if len(kept) == params.max_faces:
            dropped["max_faces"] += 1
            continue
        kept.append((b, sq))
    return kept, dropped


def cut(image, sq: Square, border: str, pad_value: int = 0):
    """The square's pixels; parts outside the image mirrored (``pad_reflect``) or filled with
    ``pad_value`` (``pad_constant``). A square that is inside needs no padding whatever the policy."""
    from PIL import Image

    w, h = image.size
    if sq.inside(w, h):
        return image.crop((sq.left, sq.top, sq.left + sq.side, sq.top + sq.side))
    if border not in ("pad_reflect", "pad_constant"):
        raise ValueError(f"square {sq} reaches outside the {w}x{h} image; border {border!r} cannot cut it")
    import numpy as np

    # the part of the square that lies inside, then pad out to the full square
    x0, y0 = max(sq.left, 0), max(sq.top, 0)
    x1, y1 = min(sq.left + sq.side, w), min(sq.top + sq.side, h)
    pads = ((y0 - sq.top, sq.top + sq.side - y1), (x0 - sq.left, sq.left + sq.side - x1), (0, 0))
    if x1 <= x0 or y1 <= y0:  # entirely outside: nothing to mirror
        return Image.new("RGB", (sq.side, sq.side), (pad_value,) * 3)
    inner = np.asarray(image.crop((x0, y0, x1, y1)))
    if border == "pad_constant":
        out = np.pad(inner, pads, mode="constant", constant_values=pad_value)
    elif min(inner.shape[:2]) == 1:  # reflect needs two pixels to mirror; one pixel can only repeat
        out = np.pad(inner, pads, mode="edge")
    else:
        out = np.pad(inner, pads, mode="reflect")
    return Image.fromarray(out)


def resize(face, size: int):
    """To ``size`` x ``size`` with Lanczos: antialiased, so downscaled line art does not alias."""
    from PIL import Image

    if face.size == (size, size):
        return face
    return face.resize((size, size), Image.Resampling.LANCZOS)
