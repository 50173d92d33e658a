"""Open any raw file as 8-bit RGB, or say in one word why it cannot be used.

Danbooru serves CMYK JPEGs, 16-bit and palette PNGs, transparent cut-outs and animations; the
crop stage must neither crash on them nor feed detectors something they misread (animeface reads
Pillow's internal layout and silently finds nothing in the wrong mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class BadImage(Exception):
    """A file the crop stage skips; ``reason`` is the counter key (unreadable, truncated, ...)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Loaded:
    image: PIL.Image.Image  # noqa: F821 - RGB, 8 bits per channel
    converted: list[str] = field(default_factory=list)  # what was done to get there (cmyk, 16bit, ...)


def _flatten_alpha(im, background: tuple[int, int, int]):
    """Composite over a plain background: transparent pixels hold arbitrary colours underneath."""
    from PIL import Image

    rgba = im.convert("RGBA")
    base = Image.new("RGBA", rgba.size, background + (255,))
    return Image.alpha_composite(base, rgba).convert("RGB")


def _sixteen_bit_to_rgb(im):
    """16/32-bit grayscale (PNG ``I;16``/``I``) -> 8-bit, keeping the top byte of the 16-bit range."""
    import numpy as np
    from PIL import Image

    a = np.asarray(im).astype(np.float64)
    # I;16 is 16 bits by definition; 32-bit I is ambiguous, so only rescale values beyond 8 bits
    scale = 255.0 / 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 1.0
    return Image.fromarray(np.clip(a * scale + 0.5, 0, 255).astype(np.uint8)).convert("RGB")


def to_rgb(im, background: tuple[int, int, int] = (255, 255, 255)) -> Loaded:
    """A decoded image in any Pillow mode -> 8-bit RGB, recording the conversion."""
    mode = im.mode
    if mode == "RGB":
        return Loaded(im)
    if mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        if has_alpha:
            return Loaded(_flatten_alpha(im, background), ["palette", "alpha"])
        return Loaded(im.convert("RGB"), ["palette"])
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return Loaded(_flatten_alpha(im, background), ["alpha"])
    if mode == "CMYK":
        return Loaded(im.convert("RGB"), ["cmyk"])
    if mode.startswith("I;16") or mode == "I":
        return Loaded(_sixteen_bit_to_rgb(im), ["16bit"])
    if mode in ("L", "1"):
        return Loaded(im.convert("RGB"), ["gray"])
    if mode in ("YCbCr", "LAB", "HSV"):
        return Loaded(im.convert("RGB"), [mode.lower()])
    raise BadImage("unsupported_mode", mode)


def load_rgb(path: str | Path, background: tuple[int, int, int] = (255, 255, 255)) -> Loaded:
    """Fully decode ``path`` as RGB; raise BadImage(missing | unreadable | truncated | animated |
    too_many_pixels | unsupported_mode) instead of letting a decoder error escape."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(path)
    except FileNotFoundError:
        raise BadImage("missing", str(path)) from None
    except Image.DecompressionBombError as e:
        raise BadImage("too_many_pixels", str(e)) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadImage("unreadable", str(e)) from None
    with im:
        if getattr(im, "is_animated", False) and getattr(im, "n_frames", 1) > 1:
            # frames of GIFs/APNGs are low-colour, often mid-motion: not training material
            raise BadImage("animated", f"{im.n_frames} frames")
        try:
            im.load()
        except OSError as e:
            raise BadImage("truncated" if "truncated" in str(e).lower() else "unreadable", str(e)) from None
        except Exception as e:  # noqa: BLE001 - decoders raise anything (SyntaxError, struct.error, ...)
            raise BadImage("unreadable", f"{type(e).__name__}: {e}") from None
        return to_rgb(im, background)
