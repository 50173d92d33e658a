"""Stage ``scrape``: bring raw images into ``data/raw`` with a manifest.

Whatever the source, every file is checked to decode (with a decompression-bomb limit), named by
its content md5 (so the same picture from two places is stored once, and nothing from outside
reaches a path), written atomically, and listed in ``manifest.parquet``.

``toy`` and ``folder`` are snapshots (the folder ends up holding exactly their images);
``danbooru`` accumulates and resumes (pipeline/scrape/sources/danbooru.py, its own loop and journal).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from pipeline.core.errors import StageError
from pipeline.core.layout import MANIFEST
from pipeline.params import ScrapeParams
from pipeline.scrape.probe import probe_image
from pipeline.scrape.result import ScrapeResult

log = logging.getLogger(__name__)


def scrape(params: ScrapeParams, out_dir: str | Path) -> ScrapeResult:
    import pandas as pd
    from tqdm import tqdm

    from pipeline.core.atomic import write_bytes, write_parquet
    from pipeline.scrape.sources.base import Skip
    from pipeline.scrape.sources.registry import get_source

    result = ScrapeResult()
    source = get_source(params.source)
    if source.accumulates:  # keeps what earlier runs stored and resumes: its own loop, same file guarantees
        return source.load()(params, out_dir, result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    seen: set[str] = set()
    for item in tqdm(source.load()(params), desc=f"scrape ({params.source})", unit="img"):
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
    from pipeline.core.tracking import stage_run

    with stage_run("scrape", params, params.scrape.model_dump()) as mlflow:
        result = scrape(params.scrape, params.paths.raw)
        if mlflow:
            mlflow.log_metrics({k: float(v) for k, v in result.summary().items()})
    return result
