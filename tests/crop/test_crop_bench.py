"""bench/crop_quality.py's scoring, on boxes and pictures whose answer is known."""

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.crop.detectors import Box

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("crop_quality", ROOT / "bench" / "crop_quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_match_is_one_to_one_at_iou_threshold(bench):
    truth = [Box(0, 0, 100, 100), Box(200, 0, 100, 100)]
    assert bench.match([Box(5, 5, 100, 100), Box(0, 0, 95, 95)], truth) == 1  # two hits on one face count once
    assert bench.match([Box(60, 60, 100, 100)], truth) == 0                   # IoU 0.09
    assert bench.match([Box(30, 0, 100, 100), Box(190, 0, 100, 100)], truth) == 2
    assert bench.match([], truth) == 0 and bench.match([Box(0, 0, 1, 1)], []) == 0


def test_parse_spec(bench):
    assert bench.parse_spec("animeface@512") == ("animeface", 512)
    assert bench.parse_spec("lbpcascade@full") == ("lbpcascade", None)
    assert bench.parse_spec("animeface") == ("animeface", None)


def test_scores_only_complete_pictures(bench, tmp_path):
    """``none`` boxes the whole picture: right where the truth is the whole picture, wrong elsewhere."""
    for name, size in (("a.png", (64, 64)), ("b.png", (80, 60)), ("c.png", (50, 50))):
        Image.new("RGB", size).save(tmp_path / name)
    meta = {"a.png": {"complete": True, "verified_face_boxes": [[0, 0, 64, 64]]},
            "b.png": {"complete": True, "verified_face_boxes": [[10, 10, 20, 20], [50, 10, 20, 20]]},
            "c.png": {"complete": False, "verified_face_boxes": []}}  # speed only
    (tmp_path / "face_boxes.json").write_text(json.dumps({"images": meta}))
    (row,) = bench.run(tmp_path, ["none@full"], None)
    assert (row["tp"], row["fp"], row["fn"]) == (1, 1, 2)
    assert row["recall"] == pytest.approx(1 / 3) and row["precision"] == pytest.approx(0.5)
    assert row["images_per_s"] > 0
    assert "| none@full | 0.333 | 0.500 | 1 / 1 / 2 |" in bench.table([row])


def test_skips_with_a_message_where_the_data_is_absent(bench, tmp_path, capsys):
    assert bench.main(["--data", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().out
