"""Which torch device a stage runs on, from its ``device`` knob (auto | cpu | cuda)."""

from __future__ import annotations

from pipeline.core.errors import StageError


def resolve_device(requested: str, knob: str = "train.device"):
    """``torch.device`` for ``requested``; ``auto`` takes CUDA when torch sees it. Asking for CUDA
    where there is none is the user's to fix, so it is a ``StageError`` naming the knob."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise StageError(f"{knob} is 'cuda' but torch sees no CUDA device; use -S {knob}=auto or cpu")
    return torch.device(requested)
