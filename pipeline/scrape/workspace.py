"""Who owns ``paths.raw``, so that a scrape never deletes or renames a file it did not write.

The folder's record (``layout.WORKSPACE``) names its owners, a source and a search each: toy (the
toy source), folder (the resolved folder) or danbooru (the site and the sorted tags; ratings and
sizes refine the same search, and the journal handles them). A scrape that is not an owner is
refused before any work unless it is asked to ``replace`` the owners or, a Danbooru search, to
``add`` itself; a folder holding toy faces only is taken without asking (they are regenerated from
params). Folders scraped before the record existed have their owners read from the manifest's
``source`` column and the Danbooru journal's searches.

A run ends with a commit that a kill at any point leaves recoverable: the record first notes the
intent (the new owners, the files to remove, the files moved in, a digest of the new manifest's
listing), then files move in, the manifest is replaced, the files that left it are removed and the
record is written without the intent. The next start finishes the intent when the manifest in place
is the new one and undoes it otherwise. Only files that a manifest listed, or that a run staged,
are ever removed, and only under the md5 names a scrape writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.core.errors import StageError
from pipeline.core.layout import DANBOORU_JOURNAL, INCOMING, MANIFEST, WORKSPACE
from pipeline.scrape.params import ScrapeParams

log = logging.getLogger(__name__)
Mode = Literal["own", "replace", "add"]
MODES: tuple[str, ...] = ("own", "replace", "add")
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]{2,5}$")  # the only names a scrape writes images under


@dataclass(frozen=True)
class Claim:
    """One owner of a raw folder: a source and its search (None: toy, or unknown)."""

    source: str
    search: str | None = None
    inferred: bool = field(default=False, compare=False)  # read from a folder older than the record

    def matches(self, run: Claim) -> bool:
        if self.source != run.source:
            return False
        if self.source == "toy" or self.search == run.search:
            return True
        # a folder import read from an old manifest: the files' common folder is the root or below it
        return (self.source == "folder" and self.inferred and None not in (self.search, run.search)
                and Path(self.search).is_relative_to(run.search))

    def describe(self) -> str:
        if self.source == "toy":
            return "toy faces (scrape.source=toy)"
        if self.source == "folder":
            return f"a folder import of {self.search}" if self.search else "a folder import"
        if self.search is None:
            return "a Danbooru search (its journal is gone)"
        host, _, tags = self.search.partition("|")
        return f"the Danbooru search {tags!r} on {host}" if tags else f"the Danbooru search for every post on {host}"

    def to_json(self) -> dict:
        return {"source": self.source, "search": self.search, **({"inferred": True} if self.inferred else {})}

    @classmethod
    def from_json(cls, d: dict) -> Claim:
        return cls(str(d["source"]), d.get("search"), bool(d.get("inferred", False)))


def claim_of(params: ScrapeParams) -> Claim:
    """What a run with these params would own."""
    if params.source == "folder":
        return Claim("folder", str(Path(params.folder).expanduser().resolve()))
    if params.source == "danbooru":
        from pipeline.scrape.sources.danbooru_api import search_key

        return Claim("danbooru", search_key(params.danbooru))
    return Claim(params.source)


# -- what the folder holds ------------------------------------------------------------------------

def read_manifest(out: Path, columns: list[str] | None = None):
    """The manifest in place (pandas), None without one; unreadable: a StageError that says what to do."""
    import pandas as pd

    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, ValueError, KeyError) as e:  # pyarrow's ArrowInvalid is a ValueError
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StageError(f"{path} cannot be read ({why}); a scrape reads it to know which files in {out} are its own. "
                         f"Move it aside (e.g. to {MANIFEST}.damaged) and run the scrape again: files no manifest "
                         "lists are never removed.") from None


def listing(out: Path) -> dict[str, str]:
    """path -> source of every row of the manifest in place (empty without one)."""
    m = read_manifest(out, ["path", "source"])
    return {} if m is None else dict(zip(m["path"].astype(str), m["source"].astype(str)))


def listing_digest(rows: dict[str, str]) -> str:
    """Names one manifest by what it lists: which files, from which source."""
    return hashlib.sha256("\n".join(f"{s}\t{p}" for p, s in sorted(rows.items())).encode()).hexdigest()


def infer_owners(out: Path) -> list[Claim]:
    """The owners of a folder scraped before the record existed: the manifest's sources, the
    journal's searches (a first Danbooru run killed before its manifest has only the journal)."""
    from pipeline.core.journal import read_journal
    from pipeline.scrape.sources.danbooru_owned import searches_in

    claims: list[Claim] = []
    sources: list[str] = []
    m = read_manifest(out)
    if m is not None:
        sources = list(dict.fromkeys(m["source"].astype(str)))
        if "folder" in sources and "origin" in m.columns:
            origins = [str(Path(o).parent) for o in m.loc[m["source"] == "folder", "origin"].dropna()]
            claims.append(Claim("folder", os.path.commonpath(origins) if origins else None, inferred=True))
        if "toy" in sources:
            claims.append(Claim("toy", inferred=True))
    searches = searches_in(read_journal(out / DANBOORU_JOURNAL)) if (out / DANBOORU_JOURNAL).is_file() else []
    claims += [Claim("danbooru", s, inferred=True) for s in searches]
    if "danbooru" in sources and not searches:
        claims.append(Claim("danbooru", None, inferred=True))
    return claims


@dataclass
class State:
    owners: list[Claim]
    intent: dict | None = None   # a commit a kill cut short
    done: bool = False           # its manifest is in place: finish it (else undo it)


def read_state(out: Path) -> State:
    """The folder's owners as the record says, an interrupted commit resolved (nothing is written)."""
    path = out / WORKSPACE
    if not path.is_file():
        return State(infer_owners(out) if out.is_dir() else [])
    try:
        record = json.loads(path.read_text())
        owners = [Claim.from_json(d) for d in record["owners"]]
        intent = record.get("intent")
        if intent:
            after = [Claim.from_json(d) for d in intent["owners"]]
            want, _, _ = intent["listing"], intent["remove"], intent["added"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("%s is damaged (%s); its owners are read from the manifest and the journal instead", path, e)
        return State(infer_owners(out))
    if not intent:
        return State(owners)
    done = listing_digest(listing(out)) == want
    return State(after if done else owners, intent, done)


def write_record(out: Path, owners: list[Claim], intent: dict | None = None) -> None:
    from pipeline.core.atomic import write_json

    record = {"about": "the scrapes that own this folder (pipeline/scrape/workspace.py); "
                       "boorugan scrape --replace or --add changes them",
              "owners": [c.to_json() for c in owners]}
    if intent is not None:
        record["intent"] = intent
    write_json(out / WORKSPACE, record)


# -- the decision, before any work ------------------------------------------------------------------

@dataclass
class Plan:
    claim: Claim
    before: list[Claim]
    after: list[Claim]
    replacing: bool      # the earlier owners' rows and files go once this run's manifest is in place

    def danbooru_searches(self) -> set[str]:
        return {c.search for c in self.after if c.source == "danbooru" and c.search is not None}

    def kept_sources(self) -> set[str]:
        """Sources whose rows in the manifest in place stay in the new one (toy faces never do)."""
        return set() if self.replacing else {c.source for c in self.after} - {"toy"}


def check_paths(params: ScrapeParams, out: Path) -> None:
    """A folder import never writes into the folder it reads, nor reads the folder it writes."""
    if params.source != "folder":
        return
    raw, folder = out.expanduser().resolve(), Path(params.folder).expanduser().resolve()
    if raw == folder:
        how = "is"
    elif raw.is_relative_to(folder):
        how = "is inside"
    elif folder.is_relative_to(raw):
        how = "contains"
    else:
        return
    elsewhere = Path("data/raw")
    if elsewhere.resolve().is_relative_to(folder) or folder.is_relative_to(elsewhere.resolve()):
        elsewhere = folder.with_name(f"{folder.name}-raw")
    raise StageError(f"paths.raw {str(out)!r} {how} scrape.folder {params.folder!r} ({folder}): a scrape stores md5-named "
                     "copies and a manifest in paths.raw, so it must not be your own folder. Nothing was touched. "
                     f"Give the scrape a folder of its own, e.g. -S paths.raw={elsewhere}")


def plan(params: ScrapeParams, out_dir: str | Path, mode: Mode = "own") -> Plan:
    """What this run may do to ``out_dir``, or a StageError saying why not and the ways forward.
    Reads only: a refused run has touched nothing."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}; one of {MODES}")
    out = Path(out_dir)
    check_paths(params, out)
    claim = claim_of(params)
    if mode == "add" and claim.source != "danbooru":
        raise StageError(f"scrape --add adds a Danbooru search to a folder; scrape.source={claim.source} is a snapshot "
                         f"(its rows in the manifest are exactly its images). Nothing was touched. "
                         "Use another paths.raw (-S paths.raw=...), or `boorugan scrape --replace`.")
    before = read_state(out).owners
    matched = [c for c in before if c.matches(claim)]
    toy_only = bool(before) and all(c.source == "toy" for c in before)
    if not before or (matched and mode != "replace"):
        after = [claim if c.matches(claim) else c for c in before] or [claim]
        return Plan(claim, before, after, replacing=False)
    if mode == "replace" or toy_only:
        return Plan(claim, before, [claim], replacing=any(not c.matches(claim) for c in before))
    if mode == "add":
        return Plan(claim, before, [*before, claim], replacing=False)
    raise StageError(refusal(out, claim, before))


def refusal(out: Path, claim: Claim, owners: list[Claim]) -> str:
    rows = listing(out)
    parts = []
    for source in dict.fromkeys(c.source for c in owners):
        names = " and ".join(c.describe() for c in owners if c.source == source)
        n = sum(1 for v in rows.values() if v == source)
        parts.append(f"{names} ({n} files in its manifest)" if rows else f"{names} (no manifest yet: a run was cut short)")
    journal = f", and {DANBOORU_JOURNAL}," if (out / DANBOORU_JOURNAL).is_file() else ""
    ways = [f"scrape into a folder of its own (-S paths.raw={out}-{claim.source})",
            f"make {out} this run's with `boorugan scrape --replace` and the same -S flags (the files its manifest lists"
            f"{journal} go once this run has written its manifest; files no manifest lists stay)"]
    if claim.source == "danbooru" and all(c.source in ("danbooru", "folder") for c in owners):
        ways.insert(1, "add this search to it with `boorugan scrape --add` (one manifest for both, each file stored once)")
    return (f"paths.raw {out} holds {'; '.join(parts)}; this run is {claim.describe()}. Nothing was touched. Either "
            + ", ".join(ways[:-1]) + ", or " + ways[-1] + ".")


# -- the run: start, commit, recover --------------------------------------------------------------

def begin(out: Path) -> None:
    """Before a permitted run writes: finish or undo a commit a kill cut short, and remove what a
    killed run left half-done (temporary files of atomic writes, staged files)."""
    if not out.is_dir():
        return
    state = read_state(out)
    if state.intent is not None:
        if state.done:
            log.info("scrape: finishing the commit a killed run left in %s", out)
            _finish(out, state.intent)
        else:
            log.info("scrape: undoing the commit a killed run left in %s (its manifest never came)", out)
            _undo(out, state.owners, state.intent)
    shutil.rmtree(out / INCOMING, ignore_errors=True)
    for p in out.iterdir():
        if p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp"):
            p.unlink()


def stage_file(out: Path, name: str, data) -> bool:
    """Store a new file of a snapshot run where no manifest looks; False if ``name`` is in place already.
    ``data``: the bytes, or a function that reads them (called only when the file is new)."""
    from pipeline.core.atomic import write_bytes

    if (out / name).exists() or (out / INCOMING / name).exists():
        return False
    write_bytes(out / INCOMING / name, data() if callable(data) else data)
    return True


def drop_staged(out: Path) -> None:
    shutil.rmtree(out / INCOMING, ignore_errors=True)


def commit(out: Path, manifest, plan: Plan, staged: list[str] = (), compact: bool = False) -> None:
    """Make ``manifest`` (a DataFrame) the folder's, with ``plan.after`` its owners: files staged
    move in, files the manifest in place listed and the new one does not are removed, and (replacing,
    or ``compact``) the journal keeps only the owners' records."""
    from pipeline.core.atomic import write_parquet

    old = listing(out)
    new = dict(zip(manifest["path"].astype(str), manifest["source"].astype(str)))
    intent = {"owners": [c.to_json() for c in plan.after], "remove": sorted(set(old) - set(new)),
              "added": sorted(staged), "listing": listing_digest(new),
              "compact": (plan.replacing or compact) and (out / DANBOORU_JOURNAL).is_file()}
    write_record(out, plan.before, intent)
    for name in staged:
        os.replace(out / INCOMING / name, out / name)
    write_parquet(out / MANIFEST, manifest)
    _finish(out, intent)


def _remove_unlisted(out: Path, names: list[str]) -> int:
    listed = set(listing(out))
    gone = 0
    for name in names:
        if STORED_NAME.match(name) and name not in listed and (out / name).is_file():
            (out / name).unlink()
            gone += 1
    return gone


def _finish(out: Path, intent: dict) -> None:
    owners = [Claim.from_json(d) for d in intent["owners"]]
    gone = _remove_unlisted(out, [*intent["remove"], *intent["added"]])
    if gone:
        log.info("scrape: removed %d files that left the manifest of %s", gone, out)
    if intent.get("compact"):  # the replaced searches' records go with their files
        from pipeline.scrape.sources.danbooru_owned import compact_journal

        searches = {c.search for c in owners if c.source == "danbooru"}
        if searches:
            compact_journal(out / DANBOORU_JOURNAL, searches)
        else:
            (out / DANBOORU_JOURNAL).unlink(missing_ok=True)
    write_record(out, owners)
    drop_staged(out)


def _undo(out: Path, owners: list[Claim], intent: dict) -> None:
    _remove_unlisted(out, intent["added"])  # moved in for a manifest that never came
    write_record(out, owners)
