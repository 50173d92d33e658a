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


def unreadable_message(path: str | Path, made_by: str, error: Exception) -> str:
    stage = made_by.partition("@")[0]
    why = str(error).splitlines()[0] if str(error) else type(error).__name__
    return (f"{path} cannot be read ({why}); it is an output of the {stage} stage: run it again "
            f"({command_for(made_by)}, or dvc repro)")


def read_parquet(path: str | Path, made_by: str, **kw):
    """The table at ``path`` (pandas); missing or unreadable (truncated, not Parquet): a StageError
    naming the file and the stage that writes it."""
    import pandas as pd

    try:
        return pd.read_parquet(require(path, made_by), **kw)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise StageError(unreadable_message(path, made_by, e)) from None


def read_json(path: str | Path, made_by: str):
    """The JSON document at ``path``; missing or not JSON: a StageError as :func:`read_parquet`'s."""
    import json

    try:
        return json.loads(require(path, made_by).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StageError(unreadable_message(path, made_by, e)) from None
