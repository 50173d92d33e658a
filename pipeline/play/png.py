"""PNGs the page hands out: a file name and text chunks that say how to draw the same picture again."""

from __future__ import annotations

import base64
import io
import re
import shlex

import numpy as np


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-")


def tags_of(fixed: dict[str, str]) -> str:
    """{"hair_color": "blue"} -> "hair_color=blue" (what ``sample --tags`` takes)."""
    return ",".join(f"{a}={v}" for a, v in fixed.items())


def sample_command(model: str, seed: int, count: int, fixed: dict[str, str]) -> str:
    """The command that writes the same grid (same checkpoint: its step is in the file name)."""
    parts = ["python", "-m", "pipeline", "sample", model, "--n", str(count), "--seed", str(seed)]
    if fixed:
        parts += ["--tags", tags_of(fixed)]
    return " ".join(shlex.quote(p) for p in parts)


def file_name(model: str, step: int, seed: int | None, fixed: dict[str, str] | None = None, what: str = "") -> str:
    parts = [model, f"step{step}"]
    if seed is not None:
        parts.append(f"seed{seed}")
    if what:
        parts.append(what)
    parts += [f"{a}={v}" for a, v in (fixed or {}).items()]
    return _slug("_".join(parts))[:180] + ".png"


def png_bytes(image: np.ndarray, text: dict[str, str]) -> bytes:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, str(v))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def decode_data_url(text: str) -> bytes:
    """``data:image/...;base64,...`` (what a canvas or a file reader gives) -> the bytes."""
    head, sep, body = text.partition(",")
    if not sep or not head.startswith("data:image/") or ";base64" not in head:
        raise ValueError("the sketch must be a data:image/...;base64 URL (a canvas's toDataURL or a file reader's)")
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise ValueError("the sketch's base64 does not decode") from None
