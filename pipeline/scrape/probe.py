"""The one check every scraped file passes before it is stored: it decodes, within a pixel limit."""

from __future__ import annotations

import io
from dataclasses import dataclass


@dataclass(frozen=True)
class Probed:
    width: int
    height: int
    frames: int      # > 1: an animated GIF/PNG/WebP/AVIF


def probe(data: bytes, max_pixels: int) -> Probed | str:
    """Size and frame count of a fully decodable image, else the reason it is not one."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                return "too_many_pixels"
            frames = int(getattr(im, "n_frames", 1) or 1)
            im.load()  # full decode: catches truncated files that open() alone accepts
    except Image.DecompressionBombError:
        return "too_many_pixels"
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image we can use"
        return "undecodable"
    return Probed(w, h, frames)


def probe_image(data: bytes, max_pixels: int) -> tuple[int, int] | str:
    """(width, height) of a fully decodable image, else the reason it is not one."""
    p = probe(data, max_pixels)
    return p if isinstance(p, str) else (p.width, p.height)


def first_frame_png(data: bytes) -> bytes:
    """The first frame of an animated image as a still PNG (what the crop stage can use)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        frame = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
    buf = io.BytesIO()
    frame.save(buf, format="PNG")
    return buf.getvalue()
