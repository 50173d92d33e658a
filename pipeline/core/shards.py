"""Splitting a stage's work list into shards for a cluster, without changing the results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def split(items: Sequence[T], shards: int, align: int = 1) -> list[list[T]]:
    """At most ``shards`` contiguous, non-empty, near-equal chunks whose sizes are multiples of
    ``align`` (except the last): a tagger batch never straddles two shards, so every batch is the
    one the single-process run sees."""
    if shards < 1 or align < 1:
        raise ValueError(f"shards ({shards}) and align ({align}) must be >= 1")
    blocks = [list(items[i:i + align]) for i in range(0, len(items), align)]
    n = min(shards, len(blocks))
    out: list[list[T]] = []
    start = 0
    for k in range(n):
        stop = start + len(blocks) // n + (1 if k < len(blocks) % n else 0)
        out.append([x for b in blocks[start:stop] for x in b])
        start = stop
    return out
