"""Download a file into place: progress, resume of an interrupted transfer, optional checksum.

The bytes go to ``<dest>.part``; a retry asks the server for the rest (``Range: bytes=N-``) and
appends when it answers 206, starts over when it answers 200. Only a complete file whose sha256
matches (when one is known) is renamed to ``dest``, so a half file is never mistaken for weights.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
Progress = Callable[[int, int | None], None]


class DownloadError(RuntimeError):
    """The file could not be fetched; ``<dest>.part`` keeps what arrived, for the next try."""


class ChecksumError(DownloadError):
    """The file arrived whole but is not the expected one; the partial file is deleted."""


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _tqdm_progress(name: str) -> tuple[Progress, Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(desc=f"download {name}", unit="B", unit_scale=True, unit_divisor=1024)

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def _fetch_once(url: str, part: Path, timeout: float, progress: Progress, chunk: int) -> int | None:
    """One request; returns the expected total size (None when the server does not say)."""
    import requests

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416 and have:  # nothing left to send: the part file is already whole
            total = r.headers.get("Content-Range", "").rpartition("/")[2]
            return int(total) if total.isdigit() else have
        if r.status_code == 206:
            start = r.headers.get("Content-Range", "").removeprefix("bytes ").partition("-")[0]
            if start != str(have):
                raise DownloadError(f"{url}: asked for bytes from {have}, server sent Content-Range "
                                    f"{r.headers.get('Content-Range')!r}")
            mode = "ab"
        elif r.status_code == 200:
            have, mode = 0, "wb"  # no range support: start over
        else:
            raise DownloadError(f"{url}: HTTP {r.status_code}")
        length = r.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        progress(have, total)
        with open(part, mode) as f:
            for block in r.iter_content(chunk):
                f.write(block)
                have += len(block)
                progress(have, total)
            f.flush()
            os.fsync(f.fileno())
    return total


def download(url: str, dest: str | Path, *, sha256: str | None = None, retries: int = 3, timeout: float = 30.0,
             progress: Progress | None = None, chunk: int = 1 << 16, backoff: float = 1.0) -> Path:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``); raise DownloadError / ChecksumError.

    ``chunk`` bounds what an interruption loses: a partly received chunk is not written."""
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    close = None
    if progress is None:
        progress, close = _tqdm_progress(dest.name)
    try:
        for attempt in range(retries + 1):
            try:
                total = _fetch_once(url, part, timeout, progress, chunk)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                got = part.stat().st_size if part.exists() else 0
                if attempt == retries:
                    raise DownloadError(f"{url}: {type(e).__name__} after {got} bytes; run again to resume "
                                        f"from {part}") from None
                log.warning("%s: interrupted after %d bytes (%s); resuming", url, got, type(e).__name__)
                time.sleep(backoff * (attempt + 1))
                continue
            size = part.stat().st_size
            if total is not None and size != total:
                if attempt == retries:
                    raise DownloadError(f"{url}: got {size} of {total} bytes; run again to resume")
                continue
            break
    finally:
        if close:
            close()
    if sha256 is not None:
        got = sha256_of(part)
        if got != sha256.lower():
            part.unlink()
            raise ChecksumError(f"{url}: sha256 {got} does not match the expected {sha256}; "
                                "the download was deleted")
    os.replace(part, dest)
    return dest
