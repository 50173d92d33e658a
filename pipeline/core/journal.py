"""An append-only JSON-lines journal, fsync'd per record: the durable state of a long, killable run.

A process killed while writing leaves at most one torn last line; reading ignores it and the next
append first cuts it off, so the journal always holds whole records, each one written once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn by a kill: never completed, never counted
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def _cut_torn_tail(path: Path) -> None:
    """Truncate to the end of the last complete record."""
    size = path.stat().st_size
    if size == 0:
        return
    good = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                json.loads(line)
            except json.JSONDecodeError:
                break
            good += len(line)
    if good != size:
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())


class Journal:
    """Append records; each ``append`` is on disk (fsync) when it returns. Single writer."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _cut_torn_tail(self.path)
        self._f = open(self.path, "ab")

    def append(self, record: dict[str, Any]) -> None:
        self.extend([record])

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        data = b"".join(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in records)
        if data:
            self._f.write(data)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
