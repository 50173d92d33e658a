"""What a snapshot source yields: a file to store, or a reason it was left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
