"""The crop stage end to end on generated raw folders: lineage, incremental reruns, removed sources,
bad files, parallel workers, output formats."""

import hashlib
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.core.errors import StageError
from pipeline.core.layout import INDEX, MANIFEST, SOURCES
from pipeline.crop.stage import crop
from pipeline.params import CropParams

ROOT_COLUMNS = ["face_id", "source_id", "md5", "x", "y", "w", "h", "score", "detector", "size", "path"]


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def picture(seed: int, w: int = 48, h: int = 40) -> bytes:
    return encode(Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)))


def write_raw(raw, items: dict[str, bytes], ext: str = "png", missing: tuple[str, ...] = ()) -> dict[str, str]:
    """A raw folder as scrape leaves it (content-md5 names + manifest); returns post id -> md5."""
    raw.mkdir(parents=True, exist_ok=True)
    rows, ids = [], {}
    for post_id, data in items.items():
        md5 = hashlib.md5(data).hexdigest()
        name = f"{md5}.{ext}"
        if post_id not in missing:
            (raw / name).write_bytes(data)
        rows.append({"id": post_id, "md5": md5, "ext": ext, "path": name})
        ids[post_id] = md5
    pd.DataFrame(rows).to_parquet(raw / MANIFEST, index=False)
    return ids


def none_params(**kw) -> CropParams:
    return CropParams(**{"detector": "none", "size": 16, "workers": 1, **kw})


def test_faces_and_lineage(tmp_path):
    ids = write_raw(tmp_path / "raw", {"101": picture(1), "102": picture(2, 30, 50)})
    result = crop(none_params(), tmp_path / "raw", tmp_path / "faces")
    assert result.summary() == {"images": 2, "reused": 0, "removed": 0, "faces": 2, "new_faces": 2, "duplicates": 0}
    index = pd.read_parquet(tmp_path / "faces" / INDEX)
    assert list(index.columns[: len(ROOT_COLUMNS)]) == ROOT_COLUMNS
    row = index.set_index("source_id").loc["102"]
    assert row.md5 == ids["102"] and row.face_id == f"{ids['102'][:16]}_0" and row.detector == "none"
    assert (row.x, row.y, row.w, row.h, row["size"]) == (0, 0, 30, 50, 16)
    # the 75 px square (1.5 x 50) shrunk to the 30 px that fit, about the face centre (+-1 px rounding)
    assert (row.crop_left, row.crop_side) == (0, 30) and abs(row.crop_top - 10) <= 1
    for p in index["path"]:
        with Image.open(tmp_path / "faces" / p) as im:
            assert im.size == (16, 16) and im.format == "PNG"


def test_rerun_reads_only_new_images_and_removes_faces_of_removed_sources(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "faces"
    write_raw(raw, {"1": picture(1), "2": picture(2), "3": picture(3)})
    crop(none_params(), raw, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}

    write_raw(raw, {"1": picture(1), "2": picture(2), "3": picture(3), "4": picture(4)})
    r = crop(none_params(), raw, out)
    assert (r.images, r.reused, r.removed, r.faces, r.new_faces) == (1, 3, 0, 4, 1)
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in before.items())  # untouched

    write_raw(raw, {"1": picture(1), "3": picture(3), "4": picture(4)})  # post 2 removed
    r = crop(none_params(), raw, out)
    assert (r.images, r.reused, r.removed, r.faces) == (0, 3, 1, 3)
    index = pd.read_parquet(out / INDEX)
    assert sorted(index["source_id"]) == ["1", "3", "4"]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(index["path"])
    assert len(pd.read_parquet(out / SOURCES)) == 3

    r = crop(none_params(size=24), raw, out)  # a new config redoes everything
    assert (r.images, r.reused) == (3, 0)
    with Image.open(out / pd.read_parquet(out / INDEX)["path"][0]) as im:  # new faces, new names
        assert im.size == (24, 24)


def test_a_crash_before_the_state_is_written_only_costs_a_redo(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "faces"
    write_raw(raw, {"1": picture(1), "2": picture(2)})
    crop(none_params(), raw, out)
    (out / SOURCES).unlink()
    (out / "0123456789abcdef_0.png").write_bytes(b"half-written face of a crashed run")
    r = crop(none_params(), raw, out)
    assert (r.images, r.faces) == (2, 2)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(pd.read_parquet(out / INDEX)["path"])


def test_bad_files_are_skipped_or_converted_and_counted(tmp_path):
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 128))
    anim = io.BytesIO()
    Image.new("RGB", (40, 40)).save(anim, "GIF", save_all=True, append_images=[Image.new("RGB", (40, 40), (9, 9, 9))])
    good = picture(7)
    items = {
        "good": good,
        "truncated": encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")[:900],
        "junk": b"<html>Cloudflare says no</html>",
        "animated": anim.getvalue(),
        "gone": picture(8),
        "cmyk": encode(Image.new("CMYK", (40, 40), (0, 50, 50, 0)), "JPEG"),
        "sixteen": encode(Image.fromarray(np.full((40, 40), 40000, np.uint16))),
        "palette": encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 40, 3), np.uint8)).convert("P")),
        "alpha": encode(rgba),
    }
    write_raw(tmp_path / "raw", items, missing=("gone",))
    r = crop(none_params(), tmp_path / "raw", tmp_path / "faces")
    s = r.summary()
    assert {k: v for k, v in s.items() if k.startswith("skipped_")} == {
        "skipped_animated": 1, "skipped_missing": 1, "skipped_truncated": 1, "skipped_unreadable": 1}
    assert s["converted_cmyk"] == 1 and s["converted_16bit"] == 1 and s["converted_alpha"] == 1 and s["converted_palette"] == 1
    assert r.faces == 5
    sources = pd.read_parquet(tmp_path / "faces" / SOURCES).set_index("source_id")
    assert sources.loc["junk", "status"] == "unreadable" and sources.loc["good", "status"] == "ok"
    # a bad file is recorded, not retried on every run
    assert crop(none_params(), tmp_path / "raw", tmp_path / "faces").images == 0


def test_parallel_workers_give_the_same_faces(tmp_path):
    items = {str(i): picture(i, 40 + i, 36) for i in range(6)}
    write_raw(tmp_path / "raw", items)
    crop(none_params(workers=1), tmp_path / "raw", tmp_path / "one")
    r = crop(none_params(workers=2), tmp_path / "raw", tmp_path / "two")
    assert r.faces == 6
    one, two = pd.read_parquet(tmp_path / "one" / INDEX), pd.read_parquet(tmp_path / "two" / INDEX)
    pd.testing.assert_frame_equal(one, two)
    for p in one["path"]:
        assert (tmp_path / "one" / p).read_bytes() == (tmp_path / "two" / p).read_bytes()


@pytest.mark.parametrize("fmt, pil", [("webp", "WEBP"), ("jpg", "JPEG")])
def test_other_formats(tmp_path, fmt, pil):
    write_raw(tmp_path / "raw", {"1": picture(1)})
    crop(none_params(format=fmt), tmp_path / "raw", tmp_path / "faces")
    (path,) = pd.read_parquet(tmp_path / "faces" / INDEX)["path"]
    assert path.endswith(f".{fmt}")
    with Image.open(tmp_path / "faces" / path) as im:
        assert im.format == pil and im.size == (16, 16)


def test_no_face_at_all_is_an_error_that_says_what_to_do(tmp_path):
    write_raw(tmp_path / "raw", {"1": b"garbage"})
    with pytest.raises(StageError, match="crop.detector=none"):
        crop(none_params(), tmp_path / "raw", tmp_path / "faces")
    with pytest.raises(StageError, match="scrape"):
        crop(none_params(), tmp_path / "nothing", tmp_path / "faces")


def test_crop_modules_import_no_heavy_library():
    code = ("import sys, pipeline.crop.stage, pipeline.crop.detectors, pipeline.crop.cascade, pipeline.crop.geometry, pipeline.crop.rawimage;"
            "print([m for m in ('cv2', 'animeface', 'torch', 'requests', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.shared_data
@pytest.mark.parametrize("detector", ["animeface", "lbpcascade", "ensemble"])
def test_real_illustrations(shared_data, tmp_path, detector):
    """Both detectors through the whole stage: each verified face found, boxes in source pixels."""
    names = ["getchu_yuheng_00001.jpg", "grapeot_204032.jpg", "jonathonyan_detect_03.jpg"]
    ill = shared_data / "illustrations"
    truth = json.loads((ill / "face_boxes.json").read_text())["images"]
    write_raw(tmp_path / "raw", {n: (ill / n).read_bytes() for n in names}, ext="jpg")
    params = CropParams(detector=detector, workers=1, cascade_file=str(shared_data / "cascade" / "lbpcascade_animeface.xml"))
    r = crop(params, tmp_path / "raw", tmp_path / "faces")
    index = pd.read_parquet(tmp_path / "faces" / INDEX)
    from pipeline.crop.detectors import Box, iou

    for n in names:
        (gt,) = truth[n]["verified_face_boxes"]
        rows = index[index["source_id"] == n]
        assert max(iou(Box(*gt), Box(r.x, r.y, r.w, r.h)) for r in rows.itertuples()) >= 0.3, n
    assert set(index["detector"]) == {detector} and r.faces == len(index) >= 3


def test_config_digest_tracks_only_what_changes_the_faces():
    from pipeline.crop.stage import config_digest

    base = config_digest(CropParams(detector="animeface"))
    assert config_digest(CropParams(detector="animeface", workers=3, dedupe_distance=4, cascade_file="x.xml")) == base
    assert config_digest(CropParams(detector="animeface", margin=1.2)) != base
    assert config_digest(CropParams(detector="lbpcascade", cascade_file="x.xml")) != config_digest(CropParams(detector="lbpcascade"))
    assert config_digest(CropParams(detector="animeface", ensemble_iou=0.5)) == base
    assert config_digest(CropParams(detector="ensemble", ensemble_iou=0.5)) != config_digest(CropParams(detector="ensemble"))
    assert config_digest(CropParams(detector="animeface", retry_side=None)) != base
    assert config_digest(CropParams(detector="animeface", detect_min_side=256)) != base
