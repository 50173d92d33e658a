"""What a snapshot source yields: a file to store, or a reason it was left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Candidate:
    data: bytes | None           # None: unchanged since the last run (``known``); read only if needed
    ext: str                     # lower-case, no dot
    origin: str                  # where it came from (a path, a URL), for lineage
    meta: dict[str, Any] = field(default_factory=dict)  # extra manifest columns (labels, post fields)
    stat: tuple[int, int, int] | None = None  # a local file's (size, mtime_ns, inode): remembered for the next run
    known: dict[str, Any] | None = None       # what the last run learnt of it (md5, width, height, or reason)

    def read(self) -> bytes:
        if self.data is None:
            from pathlib import Path

            self.data = Path(self.origin).read_bytes()
        return self.data


@dataclass
class Skip:
    """An item a source saw and rejected before it had bytes; counted by reason."""

    reason: str
    origin: str
