"""The one check every scraped file passes before it is stored: it decodes, within a pixel limit."""

from __future__ import annotations

import io


def probe_image(data: bytes, max_pixels: int) -> tuple[int, int] | str:
    """(width, height) of a fully decodable image, else the reason it is not one."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                return "too_many_pixels"
            im.load()  # full decode: catches truncated files that open() alone accepts
    except Image.DecompressionBombError:
        return "too_many_pixels"
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image we can use"
        return "undecodable"
    return w, h
