"""Stage ``scrape``: bring raw images into ``data/raw`` with a manifest.

Whatever the source, every file is checked to decode (with a decompression-bomb limit), named by
its content md5 (so the same picture from two places is stored once, and nothing from outside
reaches a path), written atomically, and listed in ``manifest.parquet``.

``toy`` and ``folder`` are snapshots (their rows in the manifest are exactly their images);
``danbooru`` accumulates and resumes (pipeline/scrape/sources/danbooru.py, its own loop and journal).
Either way the folder belongs to the scrapes its record names (pipeline/scrape/workspace.py): another
source or search is refused before any work, and a run removes only files a manifest listed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from pipeline.core.errors import StageError
from pipeline.core.layout import MANIFEST
from pipeline.scrape.params import ScrapeParams
from pipeline.scrape.probe import probe_image
from pipeline.scrape.result import ScrapeResult
from pipeline.scrape.workspace import Mode

log = logging.getLogger(__name__)


def preflight(params: ScrapeParams, out_dir: str | Path, mode: Mode = "own"):
    """Every refusal that needs no work: the source's own checks of its params, then the folder's
    owners. Returns the workspace plan."""
    from pipeline.scrape import workspace
    from pipeline.scrape.sources.registry import get_source

    get_source(params.source).check(params)
    return workspace.plan(params, out_dir, mode)


def scrape(params: ScrapeParams, out_dir: str | Path, mode: Mode = "own") -> ScrapeResult:
    """``mode``: ``own`` (the folder is empty or already this search's), ``replace`` (it becomes
    this search's; what its manifest listed goes once this run's manifest is written) or ``add``
    (a Danbooru search joins the searches it holds)."""
    from pipeline.scrape import workspace
    from pipeline.scrape.sources.registry import get_source

    result = ScrapeResult()
    out = Path(out_dir)
    plan = preflight(params, out, mode)
    if plan.replacing:
        log.warning("scrape: %s becomes %s's; what it holds now (%s) goes once this run's manifest is written",
                    out, plan.claim.describe(), ", ".join(c.describe() for c in plan.before))
    workspace.begin(out)
    out.mkdir(parents=True, exist_ok=True)
    source = get_source(params.source)
    if source.accumulates:  # keeps what earlier runs stored and resumes: its own loop, same file guarantees
        return source.load()(params, out, result, plan)
    try:
        return _snapshot(params, out, result, plan, source)
    except BaseException:
        workspace.drop_staged(out)  # a kill leaves them to the next start
        raise


def _snapshot(params: ScrapeParams, out: Path, result: ScrapeResult, plan, source) -> ScrapeResult:
    """Files go to a staging folder, then the manifest and the files move in as one commit; other
    owners' rows (a Danbooru search added to a folder import) stay."""
    import pandas as pd
    from tqdm import tqdm

    from pipeline.scrape import workspace
    from pipeline.scrape.sources.base import Skip

    old = workspace.read_manifest(out)
    kept_sources = plan.kept_sources() - {params.source}
    others = [] if old is None else old[old["source"].isin(kept_sources)].to_dict("records")
    others = [r for r in others if (out / str(r["path"])).is_file()]
    rows: list[dict] = []
    staged: list[str] = []
    seen: set[str] = {r["md5"] for r in others}
    scanned: list[tuple] = []  # what was learnt of each local file, for the next run (pipeline/scrape/filescan.py)
    for item in tqdm(source.load()(params), desc=f"scrape ({params.source})", unit="img"):
        if isinstance(item, Skip):
            result.skipped[item.reason] += 1
            continue
        md5, probed = _examine(item, out, params)
        if item.stat is not None:
            scanned.append((item.origin, *item.stat, md5, *(probed if md5 else (None, None)), None if md5 else probed))
        if isinstance(probed, str):
            log.warning("skipping %s: %s", item.origin, probed)
            result.skipped[probed] += 1
            continue
        if md5 in seen:
            result.duplicates += 1
            continue
        seen.add(md5)
        name = f"{md5}.{item.ext}"
        if workspace.stage_file(out, name, item.read):  # an unchanged file already stored is not read
            staged.append(name)
        rows.append({"id": md5, "md5": md5, "ext": item.ext, "width": probed[0], "height": probed[1],
                     "source": params.source, "origin": item.origin, "path": name, **item.meta})
    if not rows:
        raise StageError(f"scrape found no usable image (source {params.source!r}; skipped: {dict(result.skipped)})")
    manifest = pd.DataFrame(rows + others)
    manifest["id"] = manifest["id"].astype(str)
    workspace.commit(out, manifest, plan, staged)
    if source.remember is not None:
        source.remember(params, scanned)
    result.kept, result.manifest = len(rows) + len(others), out / MANIFEST
    return result


def _examine(item, out: Path, params: ScrapeParams):
    """(md5, (width, height)) of a usable candidate, (None, reason) of one that does not decode. An
    unchanged local file the last run examined is taken at its word, unless its stored copy is gone."""
    from pipeline.core.layout import INCOMING

    k = item.known
    if k is not None and isinstance(k.get("reason"), str):
        return None, k["reason"]
    if k is not None and isinstance(k.get("md5"), str):
        name = f"{k['md5']}.{item.ext}"
        if (out / name).is_file() or (out / INCOMING / name).is_file():
            return k["md5"], (int(k["width"]), int(k["height"]))
    data = item.read()
    probed = probe_image(data, params.max_pixels)
    if isinstance(probed, str):
        return None, probed
    return hashlib.md5(data).hexdigest(), probed


def run_scrape(params, mode: Mode = "own") -> ScrapeResult:
    """The stage as the CLI, DVC and Prefect run it: scrape, then record the counts in MLflow. A
    refused run is refused before its MLflow run starts."""
    from pipeline.core.atomic import sweep_outputs
    from pipeline.core.tracking import stage_run

    preflight(params.scrape, params.paths.raw, mode)
    sweep_outputs(params.paths.raw)  # temporaries a killed run left (only names with a dead writer)
    with stage_run("scrape", params, params.scrape.model_dump()) as mlflow:
        result = scrape(params.scrape, params.paths.raw, mode)
        if mlflow:
            mlflow.log_metrics({k: float(v) for k, v in result.summary().items()})
    return result
