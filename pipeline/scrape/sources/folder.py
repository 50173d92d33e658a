"""Import every image under a local folder, recursively (the seeds' "create local dataset")."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pipeline.params import ScrapeParams
from pipeline.scrape.sources.base import Candidate, Skip


def iter_folder(params: ScrapeParams) -> Iterator[Candidate | Skip]:
    root = Path(params.folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"scrape.folder {str(root)!r} is not a directory; point -S scrape.folder=... at a folder of images")
    allowed = {e.lower() for e in params.extensions}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        ext = path.suffix.lower().lstrip(".")
        if ext not in allowed:
            yield Skip("extension", str(path))
            continue
        yield Candidate(path.read_bytes(), "jpg" if ext == "jpeg" else ext, str(path))
