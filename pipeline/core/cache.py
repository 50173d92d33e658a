"""The one per-user cache directory (downloaded models, trained feature nets), shared by all stages."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$BOORUGAN_CACHE``, else ``~/.cache/boorugan``: outside the repo, so DVC never hashes it."""
    return Path(os.environ.get("BOORUGAN_CACHE", Path.home() / ".cache" / "boorugan"))
