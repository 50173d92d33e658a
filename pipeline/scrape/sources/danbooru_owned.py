"""Which records of the Danbooru journal belong to the searches that own a folder.

A folder may hold several searches (``scrape --add``) and may change hands (``scrape --replace``):
a run reads only its folder's owners' records, and a replace drops the earlier owners' records once
the new manifest is in place, so a search added back later never sees posts whose files are gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.scrape.sources.danbooru_api import search_of_query


def searches_in(records: Iterable[dict[str, Any]]) -> list[str]:
    """The searches a journal holds records of, in the order it first met them."""
    seen: dict[str, None] = {}
    for r in records:
        if isinstance(r.get("q"), str):
            seen.setdefault(search_of_query(r["q"]), None)
    return list(seen)


def owned_records(records: Iterable[dict[str, Any]], searches: set[str]) -> list[dict[str, Any]]:
    """The records of ``searches``. A post one of them holds through another search ("also") gets
    that search's row as its own record, so it stays when the other search's records go."""
    rows: dict[int, dict] = {}  # the latest kept row per post, any search
    held: set[int] = set()      # posts the owned records hold with a row of their own
    out = []
    for r in records:
        q, t, pid = r.get("q"), r.get("t"), r.get("id")
        if t == "post":
            rows[pid] = r["row"]
        if not (isinstance(q, str) and search_of_query(q) in searches):
            continue
        if t == "post":
            held.add(pid)
        elif t == "also" and pid not in held and pid in rows:
            r = {"q": q, "t": "post", "id": pid, "row": rows[pid]}
            held.add(pid)
        out.append(r)
    return out


def compact_journal(path: str | Path, searches: set[str]) -> None:
    """Rewrite the journal with only ``searches``' records (a temporary file, then a rename)."""
    import json

    from pipeline.core.atomic import atomic_open
    from pipeline.core.journal import read_journal

    path = Path(path)
    if not path.exists():
        return
    records = read_journal(path)
    kept = owned_records(records, searches)
    if kept == records:
        return
    with atomic_open(path, "wb") as f:
        f.write(b"".join(json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in kept))
