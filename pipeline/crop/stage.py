"""Stage ``crop``: faces from raw images, as squares of ``margin`` x the face box, resized.

Writes ``data/faces/faces.u8`` (every face's pixels, packed: pipeline/core/facestore.py),
``data/faces/<face_id>.<config digest[:8]>.<format>`` (when ``crop.pngs``), ``data/faces/index.parquet``
(one row per face: face id, source id and md5, box in source pixels, score, detector, crop square,
size, path, its row in the store and its content hash)
and ``data/faces/sources.parquet`` (one row per raw image processed, with its outcome and the crop
config that produced it). A rerun reads only raw images that are new (or every image, when the
crop config changed) and deletes the faces of images no longer in the raw manifest. The folder is
changed as one transaction (pipeline/crop/state.py): a run killed at any point leaves the previous
faces and index, and the next run ends where an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import StageError
from pipeline.crop.params import CropParams
from pipeline.crop.state import FULL, INDEX_COLUMNS, SOURCE_COLUMNS, _concat, face_name

log = logging.getLogger(__name__)
# Bump when the code changes what one config produces, so old faces are redone, not trusted.
CROP_VERSION = 3  # 3: small pictures upscaled, a second pass where none was found


@dataclass
class CropResult:
    images: int = 0      # raw images read this run
    reused: int = 0      # raw images whose faces were kept from an earlier run
    removed: int = 0     # sources gone from the manifest whose faces were deleted
    faces: int = 0       # faces in the index after the run
    new_faces: int = 0
    duplicates: int = 0  # faces left out of the index as near-duplicates of a better one
    skipped: Counter = field(default_factory=Counter)    # images, by reason (no_face, truncated, ...)
    converted: Counter = field(default_factory=Counter)  # images read after a conversion (cmyk, alpha, ...)
    dropped: Counter = field(default_factory=Counter)    # detected faces not cropped, by reason

    def summary(self) -> dict[str, int]:
        out = {"images": self.images, "reused": self.reused, "removed": self.removed,
               "faces": self.faces, "new_faces": self.new_faces, "duplicates": self.duplicates}
        for prefix, counts in (("skipped", self.skipped), ("converted", self.converted), ("dropped", self.dropped)):
            out.update({f"{prefix}_{k}": v for k, v in sorted(counts.items())})
        return out


@dataclass
class Outcome:
    """What processing one raw image produced (returned from a worker process)."""

    md5: str
    source_id: str
    status: str  # ok, no_face, or the reason it was skipped
    rows: list[dict] = field(default_factory=list)
    pixels: list = field(default_factory=list)  # H x W x 3 uint8 per row, for the store
    converted: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)


def effective(params: CropParams) -> CropParams:
    """``detector: none`` means the image is the face: no size or score filter applies."""
    if params.detector == "none":
        return params.model_copy(update={"min_face": 1, "min_score": 0.0})
    return params


def config_digest(params: CropParams) -> str:
    """Identifies everything that decides each image's faces: a change redoes all images. Not
    ``workers``, nor ``dedupe_distance`` (deduplication reruns over all faces every time), nor
    the cascade settings unless the cascade is the detector."""
    exclude = {"workers", "dedupe_distance", "pngs", "window"}
    if params.detector not in ("lbpcascade", "ensemble"):
        exclude |= {"cascade_file", "cascade_url", "cascade_sha256", "ensemble_iou"}
    elif params.detector == "lbpcascade":
        exclude.add("ensemble_iou")
    blob = json.dumps({"v": CROP_VERSION, **params.model_dump(exclude=exclude)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def worker_count(params: CropParams, tasks: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(params.workers or cores, tasks))


def save_face(face, path: Path, params: CropParams) -> None:
    from pipeline.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        if params.format == "png":
            face.save(tmp, format="PNG")
        elif params.format == "webp":
            face.save(tmp, format="WEBP", lossless=True)
        else:
            face.save(tmp, format="JPEG", quality=params.jpg_quality)


def process_source(md5: str, source_id: str, path: Path, detect, params: CropParams, out: Path,
                   digest: str | None = None) -> Outcome:
    """Read one raw image, detect, crop and save its faces under names of this config (``digest``,
    by default that of ``params``). Never raises for a bad image."""
    import numpy as np

    from pipeline.core.facestore import face_content
    from pipeline.crop.dedupe import dhash
    from pipeline.crop.geometry import cut, resize, select_boxes
    from pipeline.crop.rawimage import BadImage, load_rgb

    try:
        loaded = load_rgb(path)
    except BadImage as e:
        log.warning("skipping %s: %s", path, e)
        return Outcome(md5, source_id, e.reason)
    image = loaded.image
    try:
        boxes = detect(image)
    except Exception as e:  # noqa: BLE001 - one image a detector chokes on must not stop the stage
        log.warning("detector failed on %s: %s", path, e)
        return Outcome(md5, source_id, "detector_error", converted=loaded.converted)
    kept, dropped = select_boxes(boxes, params, *image.size)
    digest = digest or config_digest(params)
    rows, pixels = [], []
    for k, (box, sq) in enumerate(kept):
        face_id = f"{md5[:16]}_{k}"
        name = face_name(face_id, digest, params.format) if params.pngs else ""
        face = resize(cut(image, sq, params.border, params.pad_value), params.size)
        if params.pngs:
            save_face(face, out / name, params)
        pixels.append(np.asarray(face.convert("RGB"), dtype=np.uint8))
        rows.append({"face_id": face_id, "source_id": source_id, "md5": md5,
                     "x": float(box.x), "y": float(box.y), "w": float(box.w), "h": float(box.h),
                     "score": float(box.score), "detector": params.detector, "size": params.size, "path": name,
                     "crop_left": sq.left, "crop_top": sq.top, "crop_side": sq.side, "border": params.border,
                     "dhash": f"{dhash(face):016x}", "row": -1, "content": face_content(pixels[-1])})
    return Outcome(md5, source_id, "ok" if rows else "no_face", rows, pixels, loaded.converted, dict(dropped))


# --- worker processes: each builds its detector once, then takes (md5, id, path) tasks ---------
_WORKER: dict = {}


def _init_worker(params: dict, cascade: str | None, out: str) -> None:
    from pipeline.crop.detectors import from_params

    p = CropParams.model_validate(params)
    _WORKER.update(params=p, out=Path(out), detect=from_params(p, cascade), digest=config_digest(p))


def _init_pool_worker(params: dict, cascade: str | None, out: str) -> None:
    if params["detector"] in ("lbpcascade", "ensemble"):
        import cv2

        cv2.setNumThreads(1)  # one process per core already; OpenCV threads would oversubscribe
    _init_worker(params, cascade, out)


def _work(task: tuple[str, str, str]) -> Outcome:
    md5, source_id, path = task
    w = _WORKER
    return process_source(md5, source_id, Path(path), w["detect"], w["params"], w["out"], w["digest"])


def _crashed(task: tuple[str, str, str]) -> Outcome:
    md5, source_id, _ = task
    return Outcome(md5, source_id, "crashed")


def run_tasks(tasks: list[tuple[str, str, str]], params: CropParams, cascade: Path | None, out: Path):
    """Yield an Outcome per task, from ``crop.workers`` processes (inline when one is enough)."""
    from pipeline.core.pool import process_map

    n = worker_count(params, len(tasks))
    args = (params.model_dump(), str(cascade) if cascade else None, str(out))
    if n == 1:
        _init_worker(*args)
        yield from map(_work, tasks)
        return
    yield from process_map(_work, tasks, n, _crashed, initializer=_init_pool_worker, initargs=args,
                           window=params.window * n)


# --- shards: the same per-image work, split for a cluster (flows/dask.py maps them) ----------

def crop_shard(params: dict, cascade: str | None, out: str, tasks: list[tuple[str, str, str]]) -> list[Outcome]:
    """Process one shard of images in this thread with its own detector (no shared worker state,
    so several shards can run in one Dask worker process)."""
    from pipeline.crop.detectors import from_params

    p = CropParams.model_validate(params)
    detect, digest = from_params(p, cascade), config_digest(p)
    return [process_source(md5, sid, Path(path), detect, p, Path(out), digest) for md5, sid, path in tasks]


def run_sharded(tasks, params: CropParams, cascade: Path | None, out: Path, map_shards, shards: int):
    """Outcomes of every task, computed as ``shards`` shards through ``map_shards(fn, argument tuples)``."""
    from pipeline.core.shards import split

    args = [(params.model_dump(), str(cascade) if cascade else None, str(out), chunk) for chunk in split(tasks, shards)]
    for outcomes in map_shards(crop_shard, args):
        yield from outcomes


# --- incremental state (the folder's transaction: pipeline/crop/state.py) ---------------------

def split_duplicates(faces, distance: int | None):
    """(index, duplicates): with ``distance`` set, each face whose dHash is within ``distance`` bits
    of a better face (higher score, then larger source square, then id) moves to duplicates."""
    from pipeline.crop.dedupe import near_duplicates

    faces = faces.sort_values(["score", "crop_side", "face_id"], ascending=[False, False, True], kind="stable")
    faces = faces.reset_index(drop=True)
    if distance is None or not len(faces):
        return faces, faces.iloc[0:0].assign(duplicate_of=[])
    dup = near_duplicates([int(h, 16) for h in faces["dhash"]], distance)
    ids = faces["face_id"].tolist()
    is_dup = [d is not None for d in dup]
    duplicates = faces[is_dup].assign(duplicate_of=[ids[d] for d in dup if d is not None])
    return faces[[not d for d in is_dup]], duplicates


def crop(params: CropParams, raw_dir: str | Path, out_dir: str | Path, map_shards=None, shards: int = 1) -> CropResult:
    """Crop the new raw images. ``map_shards`` (fn, [args]) -> [results] runs the per-image work
    as ``shards`` shards elsewhere (a Dask cluster); the bookkeeping stays here, so the outputs
    are the same either way. A failed run removes the faces it wrote; a full disk is a StageError."""
    from pipeline.core.inputs import read_parquet
    from pipeline.core.layout import MANIFEST
    from pipeline.crop import state

    raw, out = Path(raw_dir), Path(out_dir)
    manifest = read_parquet(raw / MANIFEST, made_by="scrape").drop_duplicates("md5")
    out.mkdir(parents=True, exist_ok=True)
    with state.folder_lock(out):
        state.remove_stale_tmp(out)
        try:
            return _crop(effective(params), manifest, raw, out, map_shards, shards)
        except BaseException as e:
            state.discard_uncommitted(out)
            if isinstance(e, OSError) and e.errno in FULL:
                raise state.disk_full(out, e) from None
            raise


def _crop(params: CropParams, manifest, raw: Path, out: Path, map_shards, shards: int) -> CropResult:
    import pandas as pd
    from tqdm import tqdm

    from pipeline.crop import state

    digest = config_digest(params)
    old_faces, old_sources = state.load_state(out, digest, params.size)
    ids = dict(zip(manifest["md5"], manifest["id"].astype(str)))
    result = CropResult()

    gone = old_sources[~old_sources["md5"].isin(ids)]
    old_sources = old_sources[old_sources["md5"].isin(ids)]
    old_faces = old_faces[old_faces["md5"].isin(ids)]
    writer, old_faces, unreadable = open_store(out, old_faces, params.size)
    old_sources = old_sources[~old_sources["md5"].isin(unreadable)]
    result.removed, result.reused = len(gone), len(old_sources)
    done = set(old_sources["md5"])
    # by content, not manifest order (a concurrent scrape's order varies): the store's rows then do not
    # depend on how the pictures arrived, and a sharded crop writes the bytes a single process writes
    tasks = sorted((r.md5, str(r.id), str(raw / r.path)) for r in manifest.itertuples(index=False) if r.md5 not in done)

    cascade = None
    if params.detector in ("lbpcascade", "ensemble") and tasks:
        from pipeline.crop.cascade import ensure_cascade

        cascade = ensure_cascade(params.cascade_url, params.cascade_sha256, params.cascade_file)
    try:
        rows, sources = [], []
        outcomes = (run_sharded(tasks, params, cascade, out, map_shards, shards) if map_shards and tasks
                    else run_tasks(tasks, params, cascade, out))
        for o in tqdm(outcomes, total=len(tasks), unit="img",
                      desc=f"crop ({params.detector})", disable=not tasks):
            result.images += 1
            for row, pixels in zip(o.rows, o.pixels):  # in task order: the store's bytes do not depend on the workers
                row["row"] = writer.append(pixels)
            rows.extend(o.rows)
            sources.append({"md5": o.md5, "source_id": o.source_id, "status": o.status, "faces": len(o.rows), "config": digest})
            if o.status != "ok":
                result.skipped[o.status] += 1
            result.converted.update(o.converted)
            result.dropped.update(o.dropped)
        writer.close()  # synced: the rows reach the disk before the index names them
    finally:
        writer.close(sync=False)

    new = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    faces = _concat(old_faces, new)
    faces["row"] = faces["row"].astype("int64")
    faces["source_id"] = faces["md5"].map(ids)  # a re-scraped post keeps its faces under its current id
    index, duplicates = split_duplicates(faces, params.dedupe_distance)
    index = index.sort_values("face_id", kind="stable").reset_index(drop=True)
    if not len(index):
        raise StageError(f"crop found no face in {len(manifest)} images (detector {params.detector!r}; "
                         f"skipped: {dict(result.skipped)}); for already-cropped faces use -S crop.detector=none")
    all_sources = _concat(old_sources, pd.DataFrame(sources, columns=SOURCE_COLUMNS))
    state.commit(out, index, duplicates.sort_values("face_id").reset_index(drop=True),
                 all_sources.sort_values("md5").reset_index(drop=True), digest,
                 {"gen": writer.header.gen, "rows": writer.rows})
    state.remove_orphans(out, {Path(str(p)).name for p in faces["path"] if p})
    result.duplicates = len(duplicates)
    result.faces, result.new_faces = len(index), len(new)
    return result


def open_store(out: Path, old_faces, size: int):
    """(writer, old faces with their rows in it, md5s of sources to redo): the committed store to
    append to when every kept face is in it and at most a quarter of its rows are dead (faces of
    removed sources), else a new generation (staged) holding the kept faces, copied from the old
    store or, in a folder from before the store, read from their face files (a file that does not
    read as a ``size`` px face gets its source redone)."""
    import numpy as np
    from PIL import Image

    from pipeline.core import facestore
    from pipeline.core.layout import STORE
    from pipeline.crop import state

    committed, head = state.store_of(out), facestore.read_header(out / STORE)
    usable = (committed is not None and head is not None and head.gen == committed["gen"]
              and (head.height, head.width) == (size, size) and len(old_faces) and (old_faces["row"] >= 0).all())
    if usable and int(committed["rows"]) - len(old_faces) <= int(committed["rows"]) // 4:
        return facestore.StoreWriter(out / STORE, size, size, rows=int(committed["rows"]), fresh=False), old_faces, set()
    writer = facestore.StoreWriter(state.staged(out, STORE), size, size)
    old_faces = old_faces.sort_values(["row", "face_id"], kind="stable").reset_index(drop=True)
    old = facestore.open_store(out / STORE, int(committed["rows"])) if usable else None
    bad = set()
    if old is None:  # from face files: the sources whose files are not ``size`` px faces are redone
        for md5, path in zip(old_faces["md5"], old_faces["path"]):
            try:
                with Image.open(out / Path(str(path)).name) as im:
                    ok = im.size == (size, size)  # the header only: pixels are read once, below
            except OSError:
                ok = False
            if not ok:
                bad.add(md5)
        old_faces = old_faces[~old_faces["md5"].isin(bad)].reset_index(drop=True)
    rows, contents = [], []
    for row, path in zip(old_faces["row"], old_faces["path"]):
        if old is not None:
            face = np.asarray(old[int(row)])
        else:
            try:
                with Image.open(out / Path(str(path)).name) as im:
                    face = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except OSError as e:
                raise StageError(f"{out / Path(str(path)).name} is damaged ({e}); delete it and run crop again "
                                 "(its picture is redone)") from None
        contents.append(facestore.face_content(face))
        rows.append(writer.append(face))
    return writer, old_faces.assign(row=np.asarray(rows, dtype=np.int64), content=contents), bad


def run_crop(params, map_shards=None, shards: int = 1) -> CropResult:
    """The stage as the CLI, DVC and Prefect run it: crop, then record the counts in MLflow."""
    from pipeline.core.atomic import sweep_outputs
    from pipeline.core.tracking import stage_run

    sweep_outputs(params.paths.faces)  # temporaries a killed run left
    with stage_run("crop", params, params.crop.model_dump()) as mlflow:
        result = crop(params.crop, params.paths.raw, params.paths.faces, map_shards, shards)
        if mlflow:
            mlflow.log_metrics({k: float(v) for k, v in result.summary().items()})
    return result
