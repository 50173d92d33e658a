"""The faces folder as a transaction: a crop that dies at any point (kill -9, a full disk) leaves the
previous faces and index usable, and the next run finishes the work as if nothing had happened.

How:
- every face's pixels go to the packed store ``faces.u8`` (pipeline/core/facestore.py): appended in
  place after its committed rows when the config is unchanged, or written as a new generation
  ``.faces.u8.next`` that is moved into place after the commit (a config change, a compaction);
  the commit record names the store's generation and committed row count, so rows a killed run
  appended are cut off and a staged generation no commit names is removed;
- per-face files (``crop.pngs``) are written under config-addressed names (``<face_id>.<config digest[:8]>.<format>``), so a
  run with another config never overwrites a file the current index names (``face_id`` itself, the
  key of labels/manual.csv and the labelling page, does not change);
- ``sources.parquet`` and ``duplicates.parquet`` are staged beside their final names, then
  ``index.parquet`` is replaced: that one rename is the commit. The index records the config and the
  sha256 of the staged tables, so the next run moves staged tables into place (a kill after the
  commit) or sees that they belong to no commit (a kill before it) and ignores them;
- afterwards, files no index names are collected: only names this stage writes (face files, its
  tables, their staged copies and temporary files), never anything else in the folder.

Folders written before config-addressed names (``<face_id>.<format>``, no commit record) still work:
their faces are reused when each file exists and has the configured size, else the image is redone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import StageError
from pipeline.core.layout import CROP_RECORD, DUPLICATES, INDEX, SOURCES, STAGED, STORE

log = logging.getLogger(__name__)
INDEX_COLUMNS = ["face_id", "source_id", "md5", "x", "y", "w", "h", "score", "detector", "size", "path",
                 "crop_left", "crop_top", "crop_side", "border", "dhash", "row", "content"]
SOURCE_COLUMNS = ["md5", "source_id", "status", "faces", "config"]
# <md5[:16]>_<k>[.<config digest[:8]>].<format>; the form without the digest is the one before it
FACE_FILE = re.compile(r"^[0-9a-f]{16}_\d+(\.[0-9a-f]{8})?\.(png|webp|jpg)$")
TABLES = (SOURCES, DUPLICATES)           # staged, then moved in after the index (the commit)
RECORD = CROP_RECORD                     # key of the commit record in the index's Parquet metadata
# pipeline/core/atomic.py's temporary names: .<name>[.<pid>@<host>].<random>.tmp (older writers had no pid@host)
TMP = re.compile(r"^\.(?P<name>.+?)(?:\.\d+@[A-Za-z0-9-]+)?\.[A-Za-z0-9_]{8}\.tmp$")
FULL = (errno.ENOSPC, errno.EDQUOT)


def face_name(face_id: str, digest: str, fmt: str) -> str:
    """The file of one face at one config: a config change writes new names beside the old ones."""
    return f"{face_id}.{digest[:8]}.{fmt}"


def staged(out: Path, table: str) -> Path:
    return out / f".{table}{STAGED}"


def owned(name: str) -> bool:
    """A name this stage writes in the faces folder; nothing else there is ever removed."""
    return (bool(FACE_FILE.match(name)) or name in (INDEX, STORE, *TABLES)
            or name in {staged(Path(), t).name for t in (*TABLES, STORE)})


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def record_of(index: Path) -> dict | None:
    """The commit record of an index (None: an index written before there were records)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(index).metadata or {}
    return json.loads(meta[RECORD]) if RECORD in meta else None


def _write_index(path: Path, index, record: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.core.atomic import atomic_path

    table = pa.Table.from_pandas(index, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), RECORD: json.dumps(record, sort_keys=True)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def commit(out: Path, index, duplicates, sources, digest: str, store: dict) -> None:
    """Stage the two tables, replace the index (the commit), then move the tables (and a new store
    generation) into place. ``store``: {"gen", "rows"} of the store the rows are in (written and
    synced by the caller, at ``faces.u8`` or staged)."""
    from pipeline.core.atomic import write_parquet

    record = {"config": digest, "store": store}
    for table, frame in ((SOURCES, sources), (DUPLICATES, duplicates)):
        write_parquet(staged(out, table), frame)
        record[table] = _sha(staged(out, table))
    _sync_dir(out)  # the faces and staged tables reach the disk before the index names them
    _write_index(out / INDEX, index, record)
    finish(out, record)
    _sync_dir(out)


def _sync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a power cut, not only a kill, keeps the order)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finish(out: Path, record: dict) -> bool:
    """Move the staged tables of a committed index into place; False when a table matches neither
    copy (the folder was changed by hand or by an older version): its state cannot be trusted.
    The store: the generation the record names is moved into place and cut to its committed rows;
    a staged generation it does not name is removed."""
    if not _finish_store(out, record.get("store")):
        return False
    for table in TABLES:
        final, next_ = out / table, staged(out, table)
        if _sha(final) == record[table]:
            next_.unlink(missing_ok=True)
        elif _sha(next_) == record[table]:
            os.replace(next_, final)
        else:
            return False
    return True


def _finish_store(out: Path, store: dict | None) -> bool:
    from pipeline.core.facestore import read_header, truncate_to

    final, next_ = out / STORE, staged(out, STORE)
    if store is None:  # a commit from before the store: nothing of it to trust or finish
        next_.unlink(missing_ok=True)
        return True
    head, staged_head = read_header(final), read_header(next_)
    if staged_head is not None and staged_head.gen == store["gen"] and (head is None or head.gen != store["gen"]):
        os.replace(next_, final)
        head = staged_head
    else:
        next_.unlink(missing_ok=True)
    if head is None or head.gen != store["gen"]:
        return False
    truncate_to(final, head, int(store["rows"]))
    return True


def store_of(out: Path) -> dict | None:
    """{"gen", "rows"} of the committed store (after ``finish``), None when there is none."""
    index = out / INDEX
    record = record_of(index) if index.is_file() else None
    return (record or {}).get("store")


def load_state(out: Path, digest: str, size: int):
    """(every face, sources) of the previous run when it used the same config, else empty frames.
    Every face: the index plus the near-duplicates left out of it (one may be needed again). A source
    with a face file that is gone or (in a folder from before commit records) not ``size`` px is
    left out, so it is redone."""
    import pandas as pd

    empty = pd.DataFrame(columns=INDEX_COLUMNS), pd.DataFrame(columns=SOURCE_COLUMNS)
    if not (out / INDEX).is_file():
        return empty
    try:
        record = record_of(out / INDEX)
        if record is None:
            settle_staged(out)  # tables staged beside an index without a record belong to no commit
        elif not finish(out, record):
            log.warning("%s does not match %s or %s (changed since the last crop); redoing every image",
                        out / INDEX, SOURCES, DUPLICATES)
            return empty
        if not (out / SOURCES).is_file():
            return empty
        faces = pd.read_parquet(out / INDEX)
        if (out / DUPLICATES).is_file():
            faces = _concat(faces, pd.read_parquet(out / DUPLICATES).drop(columns="duplicate_of"))
        sources = pd.read_parquet(out / SOURCES)
    except Exception as e:  # noqa: BLE001 - a damaged state only costs a full rerun
        log.warning("cannot read the previous crop state in %s (%s); redoing every image", out, e)
        return empty
    sources = sources[sources["config"] == digest] if "config" in sources else sources.iloc[0:0]
    if len(sources) == 0 or "dhash" not in faces:
        return empty
    # an index written just before a crash may hold faces of sources not yet recorded: redo those
    faces = faces[faces["md5"].isin(set(sources["md5"]))]
    bad = unusable(out, faces, size, check_pixels=record is None)
    store = (record or {}).get("store")
    if store is None or "row" not in faces:  # from before the store: the caller packs the face files
        faces = faces.assign(row=-1, content="")
    else:  # a row the committed store does not hold (a hand-edited index) costs its image a redo
        rows = pd.to_numeric(faces["row"], errors="coerce")
        bad |= set(faces["md5"][~rows.between(0, int(store["rows"]) - 1)])
    if bad:
        log.warning("%d faces in %s are missing or not %d px; redoing their %d images",
                    int(faces["md5"].isin(bad).sum()), out, size, len(bad))
    return faces[~faces["md5"].isin(bad)], sources[~sources["md5"].isin(bad)]


def unusable(out: Path, faces, size: int, check_pixels: bool) -> set[str]:
    """md5s of sources with a face of another size or whose face file (when it has one: ``crop.pngs``)
    is gone; sizes are read from the files only for folders without commit records (a committed
    file's name says its config)."""
    from PIL import Image

    present = set(os.listdir(out))
    names = faces["path"].fillna("").astype(str).map(lambda p: Path(p).name if p else "")
    missing = (names != "") & ~names.isin(present)
    bad = set(faces["md5"][missing | (faces["size"].astype(int) != size)])
    if check_pixels:
        for md5, name in zip(faces["md5"], names):
            if md5 in bad or not name:
                continue
            try:
                with Image.open(out / name) as im:
                    if im.size != (size, size):
                        bad.add(md5)
            except OSError:
                bad.add(md5)
    return bad


def _concat(old, new):
    """Rows of both; pandas warns about (and mistypes) empty frames in concat, so leave them out."""
    import pandas as pd

    frames = [df for df in (old, new) if len(df)]
    return pd.concat(frames, ignore_index=True) if frames else new


def remove_orphans(out: Path, keep: set[str]) -> int:
    """Delete face files no index row names (faces of removed sources, of another config, of a
    killed run) and the temporary or staged files a killed run left; only names this stage writes."""
    n = 0
    for p in out.iterdir():
        if not p.is_file():
            continue
        tmp = TMP.match(p.name)
        if (FACE_FILE.match(p.name) and p.name not in keep) or (tmp and owned(tmp["name"])):
            p.unlink(missing_ok=True)
            n += 1
    return n


def remove_stale_tmp(out: Path) -> int:
    """Temporary files of a killed run (the caller holds the folder's lock: no live run writes them)."""
    n = 0
    for p in out.iterdir():
        tmp = TMP.match(p.name)
        if tmp and owned(tmp["name"]) and p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def named_by_disk_state(out: Path) -> set[str] | None:
    """Face files the tables on disk name (index, duplicates and their staged copies); None when
    the index cannot be read, so nothing is deleted on a guess."""
    import pandas as pd

    names: set[str] = set()
    try:
        if (out / INDEX).is_file():
            names |= set(pd.read_parquet(out / INDEX, columns=["path"])["path"])
    except Exception:  # noqa: BLE001
        return None
    for table in (out / DUPLICATES, staged(out, DUPLICATES)):
        with contextlib.suppress(Exception):
            names |= set(pd.read_parquet(table, columns=["path"])["path"])
    return {Path(str(n)).name for n in names}


def settle_staged(out: Path) -> None:
    """Staged tables either belong to the committed index (moved into place) or to no commit (removed)."""
    with contextlib.suppress(Exception):  # an unreadable index: leave everything for the next run to judge
        record = record_of(out / INDEX) if (out / INDEX).is_file() else None
        if record is not None:
            finish(out, record)
        else:
            for table in (*TABLES, STORE):
                staged(out, table).unlink(missing_ok=True)


def discard_uncommitted(out: Path) -> None:
    """After a failed run: remove the faces and tables it wrote that no commit names (space back on
    a full disk)."""
    settle_staged(out)
    keep = named_by_disk_state(out)
    if keep is not None:
        remove_orphans(out, keep)


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """One crop at a time per faces folder (an OS lock, released when its holder dies), so cleaning
    up after a killed run never touches a live run's files."""
    import fcntl

    from pipeline.core.cache import cache_dir

    key = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:16]
    path = cache_dir() / "locks" / f"crop-{key}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # a read-only or full cache: crop anyway, as before there was a lock
        log.warning("cannot create the lock %s (%s); not guarding %s against a second crop", path, e, out)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise StageError(f"another crop ({holder}) is writing {out}; wait for it to end, "
                             "or give this one another paths.faces") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def disk_full(out: Path, error: OSError) -> StageError:
    return StageError(f"the disk holding {out} is full ({error.strerror or error}); the previous faces and index are "
                      "unchanged and the faces this run had written were removed. Free some space there (or point "
                      "paths.faces at a larger disk) and run crop again")
