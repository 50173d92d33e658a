"""Reading a hand-made CSV the way people write them: every problem reported with its line, never
the first one alone, so a user fixes the file in one pass."""

from __future__ import annotations

import csv
from collections.abc import Iterator


def numbered_rows(rows: csv.reader, width: int, problems: list[str]) -> Iterator[tuple[int, list[str]]]:
    """The data rows after the header, each with the line it starts on (quoted fields can span lines).
    A row the csv module cannot parse, or with another number of fields than the header, becomes a
    line-numbered entry of ``problems`` instead; blank rows are skipped."""
    line = rows.line_num
    while True:
        start = line + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as e:
            problems.append(f"line {start}: {e}")
            line = rows.line_num
            continue
        line = rows.line_num
        if not any(f.strip() for f in row):
            continue
        if len(row) != width:
            problems.append(f"line {start}: {len(row)} fields, the header has {width}")
            continue
        yield start, row
