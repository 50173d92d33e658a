"""What a folder import learnt about each file, kept between runs: a rerun re-reads only files whose
(size, mtime, inode) changed, as make and rsync decide (a file rewritten in place with the same size
within the file system's time resolution is not noticed; touch it).

Kept in the user cache (``$BOORUGAN_CACHE/folder-scan/``), never in ``data/raw``, so DVC's hash of
the raw folder does not depend on it; losing it costs one full read.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)
COLUMNS = ["origin", "size", "mtime_ns", "ino", "md5", "width", "height", "reason"]


def scan_path(root: str | Path, max_pixels: int | None) -> Path:
    """One table per folder and decode limit (a cached refusal holds only under the limit it met)."""
    from pipeline.core.cache import cache_dir

    key = hashlib.sha1(f"{Path(root).expanduser().resolve()}|{max_pixels}".encode()).hexdigest()[:16]
    return cache_dir() / "folder-scan" / f"{key}.parquet"


def load_scan(root: str | Path, max_pixels: int | None):
    """origin -> (size, mtime_ns, ino, md5, width, height, reason) of the last run, as a frame indexed
    by origin (empty when there is none or it does not read)."""
    import pandas as pd

    path = scan_path(root, max_pixels)
    try:
        frame = pd.read_parquet(path, columns=COLUMNS) if path.is_file() else None
    except Exception as e:  # noqa: BLE001 - a damaged cache costs one full read
        log.warning("ignoring the folder scan cache %s (%s)", path, e)
        frame = None
    if frame is None:
        frame = pd.DataFrame(columns=COLUMNS)
    return frame.drop_duplicates("origin", keep="last").set_index("origin")


def save_scan(root: str | Path, max_pixels: int | None, rows: list[tuple]) -> None:
    """Replace the folder's table with this run's ``rows`` (one tuple of COLUMNS per file seen)."""
    import pandas as pd

    from pipeline.core.atomic import write_parquet

    path = scan_path(root, max_pixels)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, pd.DataFrame(rows, columns=COLUMNS))
    except OSError as e:  # a read-only or full cache: the next run reads every file again
        log.warning("cannot write the folder scan cache %s (%s)", path, e)
