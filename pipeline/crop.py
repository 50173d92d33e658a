"""Stage ``crop``: faces from raw images, as squares of ``margin`` x the face box, resized.

Writes ``data/faces/<face_id>.png`` and ``data/faces/index.parquet`` (face id, source id and md5,
box in source pixels, score, detector), built in a temporary directory and swapped in whole.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.detectors import Box
from pipeline.errors import StageError
from pipeline.params import CropParams

log = logging.getLogger(__name__)
INDEX = "index.parquet"


@dataclass
class CropResult:
    images: int = 0
    faces: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, int]:
        return {"images": self.images, "faces": self.faces, **{f"skipped_{k}": v for k, v in sorted(self.skipped.items())}}


def square_around(box: Box, margin: float) -> tuple[int, int, int]:
    """(left, top, side) of the square of side ``margin * max(w, h)`` centred on the box."""
    side = round(max(box.w, box.h) * margin)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    return round(cx - side / 2), round(cy - side / 2), side


def shift_inside(left: int, top: int, side: int, width: int, height: int) -> tuple[int, int, int]:
    """Move the square inside the image; shrink it only when the image is smaller than the square."""
    side = min(side, width, height)
    return min(max(left, 0), width - side), min(max(top, 0), height - side), side


def crop_faces(image, boxes: list[Box], params: CropParams):
    """Yield (box, face image) for the boxes that pass the size and score filters, best score first."""
    from PIL import Image

    w, h = image.size
    kept = [b for b in sorted(boxes, key=lambda b: -b.score)
            if b.score >= params.min_score and min(b.w, b.h) >= params.min_face][: params.max_faces]
    for b in kept:
        left, top, side = shift_inside(*square_around(b, params.margin), w, h)
        face = image.crop((left, top, left + side, top + side))
        yield b, face.resize((params.size, params.size), Image.Resampling.LANCZOS)


def crop(params: CropParams, raw_dir: str | Path, out_dir: str | Path) -> CropResult:
    import pandas as pd
    from PIL import Image
    from tqdm import tqdm

    from pipeline.atomic import atomic_dir, write_parquet
    from pipeline.detectors import get_detector
    from pipeline.scrape import MANIFEST

    raw = Path(raw_dir)
    manifest = pd.read_parquet(raw / MANIFEST)
    detect = get_detector(params.detector, params.detect_max_side)
    if params.detector == "none":  # the image is the face: no size/score filter applies
        params = params.model_copy(update={"min_face": 1, "min_score": 0.0})
    result = CropResult()
    rows = []
    with atomic_dir(out_dir) as tmp:
        for rec in tqdm(manifest.itertuples(index=False), total=len(manifest), desc=f"crop ({params.detector})", unit="img"):
            try:
                with Image.open(raw / rec.path) as im:
                    image = im.convert("RGB")
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the stage
                log.warning("skipping %s: %s", rec.path, e)
                result.skipped["unreadable"] += 1
                continue
            result.images += 1
            found = 0
            for k, (box, face) in enumerate(crop_faces(image, detect(image), params)):
                face_id = f"{rec.md5[:16]}_{k}"
                face.save(tmp / f"{face_id}.png", optimize=False)
                rows.append({"face_id": face_id, "source_id": str(rec.id), "md5": rec.md5,
                             "x": box.x, "y": box.y, "w": box.w, "h": box.h, "score": box.score,
                             "detector": params.detector, "size": params.size, "path": f"{face_id}.png"})
                found += 1
            if not found:
                result.skipped["no_face"] += 1
        if not rows:
            raise StageError(f"crop found no face in {result.images} images (detector {params.detector!r}); "
                               "for already-cropped faces use -S crop.detector=none")
        write_parquet(tmp / INDEX, pd.DataFrame(rows))
    result.faces = len(rows)
    return result


def run_crop(params) -> CropResult:
    """The stage as the CLI, DVC and Prefect run it: crop, then record the counts in MLflow."""
    from pipeline.tracking import stage_run

    with stage_run("crop", params, params.crop.model_dump()) as mlflow:
        result = crop(params.crop, params.paths.raw, params.paths.faces)
        if mlflow:
            mlflow.log_metrics({k: float(v) for k, v in result.summary().items()})
    return result
