"""Procedural toy faces with known hair and eye colours.

They exist so the whole pipeline (and conditional models, whose labels here are known exactly) can
be run and checked on a machine with no data and no internet. ``hair_colour_of`` reads the colour
back from a picture, so a generator's obedience to a requested label can be measured.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "blonde": (240, 210, 90), "brown": (120, 70, 35), "black": (25, 25, 30), "blue": (50, 90, 220),
    "pink": (245, 140, 190), "red": (200, 30, 40), "green": (60, 170, 70), "white": (235, 235, 240),
}
EYE_COLOURS: dict[str, tuple[int, int, int]] = {
    "blue": (40, 80, 230), "red": (210, 30, 30), "green": (40, 170, 60), "brown": (110, 60, 20), "purple": (140, 60, 190),
}
SKIN = (250, 222, 200)


def draw_face(rng: np.random.Generator, size: int, hair: str, eyes: str) -> Image.Image:
    """One face: background, hair mass behind, skin oval, fringe, two eyes, a mouth; jittered."""
    s = size / 64.0
    bg = tuple(int(v) for v in rng.integers(150, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    hc, ec = HAIR_COLOURS[hair], EYE_COLOURS[eyes]
    cx = size / 2 + rng.uniform(-3, 3) * s
    cy = size / 2 + rng.uniform(-2, 3) * s
    fw, fh = rng.uniform(17, 21) * s, rng.uniform(20, 24) * s
    hair_len = rng.uniform(8, 28) * s
    d.rectangle([cx - fw - 6 * s, cy - fh, cx + fw + 6 * s, cy + hair_len], fill=hc)
    d.ellipse([cx - fw - 7 * s, cy - fh - 9 * s, cx + fw + 7 * s, cy + fh * 0.4], fill=hc)
    d.ellipse([cx - fw, cy - fh * 0.7, cx + fw, cy + fh], fill=SKIN)
    d.chord([cx - fw - 2 * s, cy - fh - 6 * s, cx + fw + 2 * s, cy - fh * 0.05], 180, 360, fill=hc)
    ey = cy + rng.uniform(1, 4) * s
    for side in (-1, 1):
        ex = cx + side * fw * 0.45
        ew, eh = 4.5 * s, 6 * s
        d.ellipse([ex - ew, ey - eh, ex + ew, ey + eh], fill=(255, 255, 255))
        d.ellipse([ex - ew * 0.8, ey - eh * 0.7, ex + ew * 0.8, ey + eh], fill=ec)
        d.ellipse([ex - 1.2 * s, ey - 2 * s, ex + 1.2 * s, ey + 1 * s], fill=(20, 20, 20))
    my = cy + fh * 0.65
    mw = rng.uniform(2, 5) * s
    d.arc([cx - mw, my - 2 * s, cx + mw, my + 2 * s], 0, 180, fill=(160, 60, 60), width=max(1, int(s)))
    return img


def sample_labels(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    hairs, eyes = list(HAIR_COLOURS), list(EYE_COLOURS)
    return [hairs[i] for i in rng.integers(0, len(hairs), n)], [eyes[i] for i in rng.integers(0, len(eyes), n)]


def nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    names = list(palette)
    cols = np.array([palette[n] for n in names], dtype=np.float32)
    return names[int(np.argmin(((cols - rgb[None, :]) ** 2).sum(1)))]


def hair_colour_of(image: np.ndarray) -> str:
    """Read the hair colour of a toy face (HxWx3 uint8): the median of the top band's non-background pixels.

    The band above the forehead is hair in every toy face; the median resists a few stray pixels.
    """
    h, w, _ = image.shape
    band = image[int(h * 0.08): int(h * 0.22), int(w * 0.3): int(w * 0.7)].reshape(-1, 3).astype(np.float32)
    return nearest(np.median(band, axis=0), HAIR_COLOURS)
