"""Small image helpers that keep torchvision (5 s to import) off every stage's path."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_uint8(batch) -> np.ndarray:
    """Generator output in [-1, 1], NCHW tensor -> NHWC uint8 array."""
    x = batch.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to("cpu").numpy()
    return x.astype(np.uint8).transpose(0, 2, 3, 1)


def grid(images: np.ndarray, nrow: int = 8, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile NHWC uint8 images into one picture, ``nrow`` per row."""
    n, h, w, c = images.shape
    rows = -(-n // nrow)
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i, im in enumerate(images):
        r, q = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = im
    return out


def save_png(array: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    from pipeline.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return Path(path)
