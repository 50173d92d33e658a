"""Stage ``scrape``: bring raw images into ``data/raw`` with a manifest.

Whatever the source, every file is checked to decode (with a decompression-bomb limit), named by
its content md5 (so the same picture from two places is stored once, and nothing from outside
reaches a path), written atomically, and listed in ``manifest.parquet``.

``toy`` and ``folder`` are snapshots (the folder ends up holding exactly their images);
``danbooru`` accumulates and resumes (pipeline/sources/danbooru.py, its own loop and journal).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import StageError
from pipeline.params import ScrapeParams

log = logging.getLogger(__name__)
MANIFEST = "manifest.parquet"


@dataclass
class ScrapeResult:
    kept: int = 0                # images the manifest lists
    duplicates: int = 0
    skipped: Counter = field(default_factory=Counter)
    manifest: Path | None = None
    new: int | None = None       # accumulating sources (danbooru): posts added by this run
    failed: Counter = field(default_factory=Counter)  # downloads that gave up (retried next run)
    stats: dict = field(default_factory=dict)         # requests, bytes, rates

    def summary(self) -> dict[str, int]:
        out = {"kept": self.kept, "duplicates": self.duplicates, **{f"skipped_{k}": v for k, v in sorted(self.skipped.items())}}
        if self.new is not None:
            out["new"] = self.new
        out.update({f"failed_{k.replace(' ', '_')}": v for k, v in sorted(self.failed.items())})
        out.update(self.stats)
        return out


def probe_image(data: bytes, max_pixels: int) -> tuple[int, int] | str:
    """(width, height) of a fully decodable image, else the reason it is not one."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                return "too_many_pixels"
            im.load()  # full decode: catches truncated files that open() alone accepts
    except Image.DecompressionBombError:
        return "too_many_pixels"
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image we can use"
        return "undecodable"
    return w, h


def scrape(params: ScrapeParams, out_dir: str | Path) -> ScrapeResult:
    import pandas as pd
    from tqdm import tqdm

    from pipeline.atomic import write_bytes, write_parquet
    from pipeline.sources import Skip, get_source

    result = ScrapeResult()
    if params.source == "danbooru":  # accumulating and resumable: its own loop, same file guarantees
        from pipeline.sources.danbooru import scrape_danbooru

        return scrape_danbooru(params, out_dir, result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    seen: set[str] = set()
    for item in tqdm(get_source(params.source)(params), desc=f"scrape ({params.source})", unit="img"):
        if isinstance(item, Skip):
            result.skipped[item.reason] += 1
            continue
        probed = probe_image(item.data, params.max_pixels)
        if isinstance(probed, str):
            log.warning("skipping %s: %s", item.origin, probed)
            result.skipped[probed] += 1
            continue
        md5 = hashlib.md5(item.data).hexdigest()
        if md5 in seen:
            result.duplicates += 1
            continue
        seen.add(md5)
        name = f"{md5}.{item.ext}"
        if not (out / name).exists():
            write_bytes(out / name, item.data)
        rows.append({"id": md5, "md5": md5, "ext": item.ext, "width": probed[0], "height": probed[1],
                     "source": params.source, "origin": item.origin, "path": name, **item.meta})
    if not rows:
        raise StageError(f"scrape found no usable image (source {params.source!r}; skipped: {dict(result.skipped)})")
    write_parquet(out / MANIFEST, pd.DataFrame(rows))
    keep = {r["path"] for r in rows} | {MANIFEST}
    for stale in out.iterdir():  # a snapshot source: the folder holds exactly what the manifest lists
        if stale.is_file() and stale.name not in keep:
            stale.unlink()
    result.kept, result.manifest = len(rows), out / MANIFEST
    return result


def run_scrape(params) -> ScrapeResult:
    """The stage as the CLI, DVC and Prefect run it: scrape, then record the counts in MLflow."""
    from pipeline.tracking import stage_run

    with stage_run("scrape", params, params.scrape.model_dump()) as mlflow:
        result = scrape(params.scrape, params.paths.raw)
        if mlflow:
            mlflow.log_metrics({k: float(v) for k, v in result.summary().items()})
    return result
