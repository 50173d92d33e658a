"""Write outputs so a crash never leaves a half-written file: temp name in the same dir, fsync, rename.

A temporary name carries its writer, ``.<name>.<pid>@<host>.<random>.tmp``, so the next start of the
stage that owns the folder can remove what a killed run left (:func:`sweep_stale_tmp`) without
touching a write that is still going on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from pipeline.core.procs import this_host, writer_gone

FULL = (errno.ENOSPC, errno.EDQUOT)
NEARLY_FULL_BYTES = 1 << 20  # a write that failed with less than this left free ran out of space
# .<name>.<pid>@<host>.<random>.tmp and .<name>.old-<pid>@<host>: only names of this shape are ever swept, so a
# file someone else left (another program's .tmp, a temporary of a writer before names carried one) stays
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[A-Za-z0-9_]+\.tmp$")
_OLD = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)$")
FOREIGN_AGE = 6 * 3600.0  # s: a temporary written from another host (shared storage) older than this is dead


class DiskFull(OSError):
    """A write ran out of space (also when the library that wrote said so in its own words)."""


def _owner() -> str:
    return f"{os.getpid()}@{this_host()}"


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Errors of a write into ``path`` name ``path``: a full disk says which file it was writing,
    also when the writer (torch, pyarrow) reported it as its own error without an errno."""
    try:
        yield
    except OSError as e:
        temporary = e.filename is not None and Path(str(e.filename)).name.startswith(f".{path.name}.")
        if e.errno in FULL or temporary:  # the output's name, not its temporary's, is what the user knows
            e.filename = str(path)
        elif e.errno is None and _nearly_full(path.parent):
            raise DiskFull(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise
    except RuntimeError as e:  # torch.save: "PytorchStreamWriter failed writing file ..."
        if _nearly_full(path.parent):
            raise DiskFull(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    with _naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent)
            tmp_path = Path(tmp)
            os.close(fd)
            yield tmp_path
            with open(tmp_path, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, path)
        finally:  # (a Ctrl-C inside mkstemp can still leave one: the next start sweeps it)
            if tmp_path is not None:
                tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: str | Path, obj) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_parquet(path: str | Path, df) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a whole directory under a temporary name, then swap it in (the old one is removed)."""
    path = Path(path)
    with _naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent))
        try:
            yield tmp
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old-{_owner()}")
                os.replace(path, old)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _stale(host: str, pid: str, mtime: float, older_than: float) -> bool:
    """A writer on this host that has ended is stale at once; one on another host (which cannot be
    asked) only after ``older_than`` s."""
    if host == this_host():
        return writer_gone(host, int(pid))
    return time.time() - mtime > older_than


def sweep_stale_tmp(folder: str | Path, names: Iterable[str] | None = None, recursive: bool = False,
                    older_than: float = FOREIGN_AGE) -> list[Path]:
    """Remove what killed writes left in ``folder``: temporary files and folders of :func:`atomic_path` /
    :func:`atomic_dir` whose writer has died (its pid on this host), or, written from another host
    (shared storage), older than ``older_than`` s. A directory swap cut between its two renames is
    finished backwards: the previous output comes back.

    ``names``: only the temporaries of these outputs (a folder shared with other stages), else every
    one; ``recursive``: also in subfolders (a run folder's samples/ and checkpoints/). A write that is
    still going on is never touched. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = None if names is None else set(names)
    removed: list[Path] = []
    entries = folder.rglob(".*") if recursive else folder.glob(".*")
    for p in sorted(entries, key=lambda q: len(q.parts), reverse=True):
        m = _TMP.match(p.name) or _OLD.match(p.name)
        if m is None or (wanted is not None and m["name"] not in wanted):
            continue
        try:
            mtime = p.lstat().st_mtime
        except FileNotFoundError:
            continue
        if not _stale(m["host"], m["pid"], mtime, older_than):
            continue
        target = p.with_name(m["name"])
        if m.re is _OLD and not target.exists():
            os.replace(p, target)  # killed between the swap's renames: the previous output is whole
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def sweep_outputs(*outputs: str | Path, recursive: bool = False) -> list[Path]:
    """:func:`sweep_stale_tmp` for a stage's own outputs, at its start: each output's temporaries
    beside it (the folder may be shared: only those names), and everything in an output folder."""
    import logging

    removed: list[Path] = []
    for out in map(Path, outputs):
        removed += sweep_stale_tmp(out.parent, names=[out.name])
        if out.is_dir():
            removed += sweep_stale_tmp(out, recursive=recursive)
    if removed:
        logging.getLogger(__name__).info("removed %d temporary file(s) of a killed run: %s", len(removed),
                                         ", ".join(str(p) for p in removed[:5]) + (", ..." if len(removed) > 5 else ""))
    return removed
