"""nagadomi's lbpcascade_animeface.xml: not in OpenCV's wheels, so fetched once, verified, cached.

A pinned commit URL plus a sha256 makes the file reproducible; the download lands in the cache
atomically (never a half-written xml) and a failure says exactly where to put a copy by hand.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from pipeline.core.errors import StageError

log = logging.getLogger(__name__)
FILENAME = "lbpcascade_animeface.xml"
MAX_BYTES = 16 * 2**20  # the real file is 247 KB; anything far larger is not it


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_cascade(cache: Path | None = None) -> Path:
    """Where the downloaded cascade lives: ``<cache dir>/lbpcascade/lbpcascade_animeface.xml``."""
    from pipeline.core.cache import cache_dir

    return (cache or cache_dir()) / "lbpcascade" / FILENAME


def download(url: str, dest: Path, sha256: str, timeout: float = 30.0) -> Path:
    """GET ``url`` into ``dest`` atomically, refusing it unless its sha256 matches."""
    import requests

    from pipeline.core.atomic import atomic_path

    hint = (f"Offline? Download {url} by hand (sha256 {sha256}) and put it at {dest}, "
            f"or point -S crop.cascade_file=/path/to/{FILENAME} at a copy.")
    try:
        with requests.get(url, timeout=timeout, stream=True) as r:
            r.raise_for_status()
            with atomic_path(dest) as tmp:
                h, size = hashlib.sha256(), 0
                with open(tmp, "wb") as f:
                    for chunk in r.iter_content(1 << 16):
                        size += len(chunk)
                        if size > MAX_BYTES:
                            raise StageError(f"{url} sent more than {MAX_BYTES} bytes; that is not the cascade. {hint}")
                        h.update(chunk)
                        f.write(chunk)
                if h.hexdigest() != sha256:
                    raise StageError(f"{url} sent a file with sha256 {h.hexdigest()}, expected {sha256}. {hint}")
    except requests.RequestException as e:
        raise StageError(f"could not download the lbpcascade_animeface cascade from {url}: {e}. {hint}") from None
    log.info("downloaded %s to %s", url, dest)
    return dest


def ensure_cascade(url: str, sha256: str, local: str | Path | None = None, cache: Path | None = None,
                   timeout: float = 30.0) -> Path:
    """The cascade xml to load: ``local`` if given (the user's own copy, used as is), else the
    cached download when its sha256 still matches, else a fresh download."""
    if local is not None:
        path = Path(local).expanduser()
        if not path.is_file():
            raise StageError(f"crop.cascade_file {str(path)!r} does not exist; point it at {FILENAME} "
                             f"(download {url}) or unset it to download into the cache")
        return path
    dest = cached_cascade(cache)
    if dest.is_file():
        if sha256_file(dest) == sha256:
            return dest
        log.warning("%s does not match sha256 %s; downloading it again", dest, sha256)
    return download(url, dest, sha256, timeout)
