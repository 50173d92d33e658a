"""``boorugan init``: a starter ``params.yaml`` for a folder that has none.

An installed boorugan (a wheel, not this checkout) has no params.yaml next to the user's data; the
starter is the project's own params.yaml, shipped as package data (a symlink in the checkout, so
there is one copy), so a run from an empty folder behaves exactly as the repository's defaults.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

STARTER = "params.yaml"


def starter_text() -> str:
    """The project's params.yaml as shipped in the package."""
    return resources.files(__package__).joinpath(STARTER).read_text(encoding="utf-8")


def write_starter(folder: str | Path = ".", force: bool = False) -> Path:
    """Write ``<folder>/params.yaml``; an existing one is never overwritten silently (``force`` replaces it)."""
    from pipeline.core.atomic import write_bytes
    from pipeline.core.errors import StageError

    target = Path(folder) / STARTER
    if target.exists() and not force:
        raise StageError(f"{target} already exists; edit it, or pass --force to replace it with the starter")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(target, starter_text().encode("utf-8"))
    target.chmod(0o644)  # a file for the user to edit, not a private temporary
    return target
