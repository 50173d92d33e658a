"""One message for every missing input: the stage that makes it and the command that runs it.

Every stage checks its upstream files with :func:`require` before reading them, so a user who runs
stages out of order reads the same sentence everywhere instead of a path or an ``[Errno 2]``.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import StageError


def command_for(made_by: str) -> str:
    """``crop`` -> ``python -m pipeline crop``; ``train@dcgan`` -> ``python -m pipeline train dcgan``."""
    stage, _, model = made_by.partition("@")
    return f"python -m pipeline {stage}" + (f" {model}" if model else "")


def missing_message(path: str | Path, made_by: str, hint: str = "") -> str:
    stage = made_by.partition("@")[0]
    return (f"{path} does not exist; run the {stage} stage first ({command_for(made_by)}, or dvc repro)"
            + (f". {hint}" if hint else ""))


def require(path: str | Path, made_by: str, hint: str = "") -> Path:
    """``path`` if it exists, else a StageError naming it and the stage (``made_by``, e.g. ``crop`` or
    ``train@dcgan``) that writes it; ``hint`` adds what else could be meant."""
    path = Path(path)
    if not path.exists():
        raise StageError(missing_message(path, made_by, hint))
    return path
