"""Where raw images come from. A source yields ``Candidate`` items; the scrape stage checks,
dedupes and stores them, so every source gets the same guarantees."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass
class Candidate:
    data: bytes
    ext: str                     # lower-case, no dot
    origin: str                  # where it came from (a path, a URL), for lineage
    meta: dict[str, Any] = field(default_factory=dict)  # extra manifest columns (labels, post fields)


@dataclass
class Skip:
    """An item a source saw and rejected before it had bytes; counted by reason."""

    reason: str
    origin: str


def get_source(name: str) -> Callable[..., Iterator[Candidate | Skip]]:
    if name == "folder":
        from pipeline.sources.folder import iter_folder
        return iter_folder
    if name == "toy":
        from pipeline.sources.toy import iter_toy
        return iter_toy
    raise ValueError(f"unknown scrape.source {name!r}")
