"""Face detectors on real illustrations: recall and precision against verified boxes, and speed.

    python bench/crop_quality.py [--data ../shared/data/illustrations] [--detectors animeface@full,...]

A detector spec is ``name@detect side[:up<side>][:retry<side>]``: ``animeface@512:up512:retry1024``
is the stage's default (crop.detect_max_side, crop.detect_min_side, crop.retry_side).

Recall and precision count one-to-one matches at IoU >= 0.3 on the pictures whose
``face_boxes.json`` entry is ``complete`` (every visible face boxed), after the stage's own
``min_score`` / ``min_face`` filters (CropParams defaults). Speed is images per CPU-second of
this single-threaded process (images/s per core) over every picture, decode excluded: the
detector as the stage calls it, downscaling included. Skips, with a message, where the data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.crop.detectors import Box, iou  # noqa: E402

DEFAULT_DETECTORS = "animeface@full,animeface@512,lbpcascade@full,lbpcascade@1024"


def default_data() -> Path:
    shared = os.environ.get("BOORUGAN_SHARED_DATA")
    return (Path(shared) if shared else ROOT.parent / "shared" / "data") / "illustrations"


def match(dets: list[Box], truth: list[Box], thr: float = 0.3) -> int:
    """True positives: greedy one-to-one pairing, highest IoU first, pairs below ``thr`` ignored."""
    pairs = sorted(((iou(d, t), i, j) for i, d in enumerate(dets) for j, t in enumerate(truth)), reverse=True)
    used_d, used_t = set(), set()
    for v, i, j in pairs:
        if v < thr:
            break
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
    return len(used_t)


def parse_spec(spec: str) -> tuple[str, int | None]:
    """``animeface@512`` -> ("animeface", 512); ``@full`` -> None (full resolution). Options after
    the side (see :func:`parse_options`) are not part of it."""
    name, _, rest = spec.partition("@")
    side = rest.split(":")[0]
    return name, None if side in ("", "full") else int(side)


def parse_options(spec: str) -> dict[str, int]:
    """``animeface@512:up512:retry1024`` -> {"min_side": 512, "retry_side": 1024}: upscale pictures
    smaller than 512 for detection, search again at 1024 where nothing was found."""
    out = {}
    for opt in spec.partition("@")[2].split(":")[1:]:
        for prefix, key in (("up", "min_side"), ("retry", "retry_side")):
            if opt.startswith(prefix) and opt[len(prefix):].isdigit():
                out[key] = int(opt[len(prefix):])
                break
        else:
            raise ValueError(f"unknown option {opt!r} in {spec!r}: use up<side> or retry<side>")
    return out


def run(data: Path, specs: list[str], cascade: Path | None) -> list[dict]:
    import cv2
    from PIL import Image

    from pipeline.crop.detectors import get_detector
    from pipeline.params import CropParams

    cv2.setNumThreads(1)  # per-core numbers: the stage runs one single-threaded detector per process
    p = CropParams()
    meta = json.loads((data / "face_boxes.json").read_text())["images"]
    images = {}
    for name in sorted(meta):
        with Image.open(data / name) as im:
            images[name] = im.convert("RGB")
    rows = []
    for spec in specs:
        name, side = parse_spec(spec)
        keep = lambda b: b.score >= p.min_score and min(b.w, b.h) >= p.min_face  # noqa: E731 - the stage's filters
        detect = get_detector(name, side, cascade, accept=keep, **parse_options(spec))
        detect(images[min(images, key=lambda n: images[n].size[0] * images[n].size[1])])  # warm up (model load)
        tp = fp = fn = 0
        cpu = 0.0
        for img_name, image in images.items():
            t = time.process_time()
            boxes = detect(image)
            cpu += time.process_time() - t
            if not meta[img_name]["complete"]:
                continue
            boxes = [b for b in boxes if b.score >= p.min_score and min(b.w, b.h) >= p.min_face]
            truth = [Box(*b) for b in meta[img_name]["verified_face_boxes"]]
            hit = match(boxes, truth)
            tp, fp, fn = tp + hit, fp + len(boxes) - hit, fn + len(truth) - hit
        rows.append({"detector": spec, "recall": tp / max(1, tp + fn), "precision": tp / max(1, tp + fp),
                     "tp": tp, "fp": fp, "fn": fn, "images_per_s": len(images) / cpu, "cpu_s": cpu})
    return rows


def table(rows: list[dict], baseline: str = "animeface@full") -> str:
    base = next((r["images_per_s"] for r in rows if r["detector"] == baseline), None)
    lines = ["| detector@detect side | recall | precision | TP / FP / FN | images/s per core | vs animeface@full |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['images_per_s'] / base:.1f}x" if base else "n/a"
        lines.append(f"| {r['detector']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['tp']} / {r['fp']} / {r['fn']} "
                     f"| {r['images_per_s']:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data(), help="folder with face_boxes.json (default: %(default)s)")
    ap.add_argument("--detectors", default=DEFAULT_DETECTORS, help="comma-separated name@max_side (default: %(default)s)")
    ap.add_argument("--cascade", type=Path, default=None,
                    help="lbpcascade_animeface.xml (default: <data>/../cascade/, else the stage's cached download)")
    args = ap.parse_args(argv)
    if not (args.data / "face_boxes.json").is_file():
        print(f"skipped: {args.data}/face_boxes.json is absent (internal data; pass --data)")
        return 0
    specs = [s.strip() for s in args.detectors.split(",") if s.strip()]
    cascade = args.cascade
    if cascade is None and any(parse_spec(s)[0] in ("lbpcascade", "ensemble") for s in specs):
        local = args.data.parent / "cascade" / "lbpcascade_animeface.xml"
        if local.is_file():
            cascade = local
        else:
            from pipeline.crop.cascade import ensure_cascade
            from pipeline.params import CropParams

            cascade = ensure_cascade(CropParams().cascade_url, CropParams().cascade_sha256)
    rows = run(args.data, specs, cascade)
    complete = sum(m["complete"] for m in json.loads((args.data / "face_boxes.json").read_text())["images"].values())
    print(f"{complete} complete pictures for recall/precision (IoU >= 0.3); speed over all pictures")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
