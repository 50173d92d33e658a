"""losses.csv, one row per training step, only ever appended to.

A kill or a full disk must not cost the rows already written: the file is opened for appending and
flushed at every log point, and on resume the rows logged after the checkpoint (the resumed run
logs those steps again) are dropped by writing the rows kept to a temporary file and renaming it
over the log (pipeline/core/atomic.py), never by truncating it in place. A torn last line (a kill in
the middle of a write) is not a row.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path


def _step(row: list[str]) -> int | None:
    try:
        return int(row[0])
    except (IndexError, ValueError):
        return None


def kept_rows(path: Path, header: Sequence[str], upto: int) -> tuple[list[list[str]], bool]:
    """(the rows of steps 1..``upto`` in ``path``, whether the file holds exactly the header and those
    rows already). Lines that are not rows of this log (torn, garbled, another header) are dropped."""
    data = path.read_bytes() if path.exists() else b""
    whole = data.endswith(b"\n")
    lines = data[:data.rfind(b"\n") + 1].decode(errors="replace").splitlines()
    rows = list(csv.reader(lines))
    body = rows[1:]
    kept = [r for r in body if len(r) == len(header) and (s := _step(r)) is not None and s <= upto]
    exact = whole and rows[:1] == [list(header)] and kept == body
    return kept, exact


class LossLog:
    """The open log of one run; ``resume`` keeps the rows up to the checkpoint, ``start`` begins one."""

    def __init__(self, path: Path, header: Sequence[str]):
        self.path, self.header = path, tuple(header)
        new = not path.exists() or path.stat().st_size == 0
        self.f = open(path, "a", newline="")
        self.writer = csv.writer(self.f)
        if new:
            self.write([self.header])

    @classmethod
    def start(cls, path: Path, header: Sequence[str]) -> LossLog:
        """A new run's log at ``path`` (a fresh file: a run that starts over logs beside the earlier one)."""
        path.unlink(missing_ok=True)
        return cls(path, header)

    @classmethod
    def resume(cls, path: Path, header: Sequence[str], step: int) -> LossLog:
        """The log of a run resumed from the checkpoint of ``step``: rows after it go, atomically."""
        from pipeline.core.atomic import atomic_path

        kept, exact = kept_rows(path, header, step)
        if not exact:
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(kept)
        return cls(path, header)

    def write(self, rows: Iterable[Sequence]) -> None:
        self.writer.writerows(rows)
        self.f.flush()

    def sync(self) -> None:
        """On disk before the checkpoint that counts on it is written."""
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()
