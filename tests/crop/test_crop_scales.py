"""Detection at the scales faces come in: small pictures upscaled, a second larger pass where the
first found nothing, the animeface + lbpcascade ensemble; and the two kinds of miss the issue saw
(a 25 px face in a 256 px picture, a face that the 512 px detect side shrinks too far) rebuilt
from the shared illustrations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pipeline.crop.detectors import Box, at_side, ensemble, from_params, get_detector, iou, multiscale
from pipeline.params import CropParams


def white_box(image) -> list[Box]:
    """A synthetic 'detector' that sees only squares of at least 40 px, like AnimeFace."""
    a = np.asarray(image.convert("L")) > 128
    ys, xs = np.nonzero(a)
    if not len(xs) or xs.max() - xs.min() + 1 < 40:
        return []
    return [Box(xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, 0.9)]


def spy(detect, seen: list):
    def run(image):
        seen.append(image.size)
        return detect(image)
    return run


def picture(w: int, h: int, face: tuple[int, int, int]) -> Image.Image:
    im = Image.new("RGB", (w, h), (0, 0, 0))
    x, y, s = face
    im.paste((255, 255, 255), (x, y, x + s, y + s))
    return im


def test_a_small_picture_is_upscaled_for_detection_and_boxes_map_back():
    im = picture(256, 200, (100, 60, 25))  # 25 px: too small at its own size
    seen: list = []
    assert multiscale(spy(white_box, seen), 512)(im) == [] and seen == [(256, 200)]
    seen.clear()
    (box,) = multiscale(spy(white_box, seen), 512, min_side=512)(im)
    assert seen == [(512, 400)]
    assert iou(box, Box(100, 60, 25, 25)) > 0.85 and abs(box.x - 100) <= 1.5 and box.score == 0.9


def test_no_face_at_the_detect_side_gets_a_second_larger_pass():
    im = picture(1024, 640, (300, 300, 70))  # 35 px at a 512 px detect side
    seen: list = []
    (box,) = multiscale(spy(white_box, seen), 512, retry_side=1024)(im)
    assert seen == [(512, 320), (1024, 640)] and iou(box, Box(300, 300, 70, 70)) > 0.9
    # found at the first pass: no second one
    seen.clear()
    multiscale(spy(white_box, seen), 512, retry_side=1024)(picture(1024, 640, (300, 300, 200)))
    assert seen == [(512, 320)]
    # a retry side no larger than the first pass is no second pass
    seen.clear()
    assert multiscale(spy(white_box, seen), 512, retry_side=512)(im) == [] and seen == [(512, 320)]


def test_the_second_pass_looks_for_a_box_the_stage_would_keep():
    """Only boxes the stage would drop (score under crop.min_score) at the first pass: search again."""
    calls = []

    def weak_then_strong(image):
        calls.append(image.size)
        return [Box(1, 1, 50, 50, 0.2)] if len(calls) == 1 else [Box(2, 2, 60, 60, 0.9)]

    p = CropParams(detector="animeface", min_score=0.5)
    accept = lambda b: b.score >= p.min_score  # noqa: E731
    boxes = multiscale(weak_then_strong, 512, retry_side=1024, accept=accept)(Image.new("RGB", (2048, 1024)))
    assert calls == [(512, 256), (1024, 512)] and [b.score for b in boxes] == [0.9]


def test_at_side_keeps_a_picture_of_that_side_untouched():
    im = picture(300, 200, (10, 10, 50))
    seen: list = []
    assert at_side(spy(white_box, seen), im, 300) == white_box(im) and seen == [(300, 200)]


def test_ensemble_merges_overlapping_boxes_and_keeps_the_others():
    a = lambda im: [Box(0, 0, 100, 100, 0.6), Box(300, 0, 50, 50, 0.4)]  # noqa: E731
    b = lambda im: [Box(5, 5, 100, 100, 1.0), Box(600, 600, 80, 80, 1.0)]  # noqa: E731
    boxes = ensemble([a, b], 0.3)(None)
    assert boxes == [Box(0, 0, 100, 100, 1.0), Box(300, 0, 50, 50, 0.4), Box(600, 600, 80, 80, 1.0)]
    assert len(ensemble([a, b], 0.99)(None)) == 4  # nothing overlaps that much


def test_unknown_or_incomplete_detector_settings_are_refused():
    with pytest.raises(ValueError, match="cascade"):
        get_detector("ensemble", 512)
    with pytest.raises(ValueError, match="unknown crop.detector"):
        get_detector("yolo", 512)


# --- the misses, rebuilt from real pictures -----------------------------------------

def scene(shared, name: str, face_px: int, canvas: tuple[int, int], at=(0.5, 0.5)) -> tuple[Image.Image, Box]:
    """The picture ``name`` scaled so its face is ``face_px`` wide, on a plain canvas: (image, true box)."""
    ill = shared / "illustrations"
    (x, y, w, h), = json.loads((ill / "face_boxes.json").read_text())["images"][name]["verified_face_boxes"]
    with Image.open(ill / name) as im:
        f = face_px / w
        small = im.convert("RGB").resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS)
    out = Image.new("RGB", canvas, (235, 235, 235))
    ox, oy = round(canvas[0] * at[0] - small.width / 2), round(canvas[1] * at[1] - small.height / 2)
    out.paste(small, (ox, oy))
    return out, Box(ox + x * f, oy + y * f, w * f, h * f)


def found(detect, image, truth: Box, p: CropParams) -> bool:
    return any(iou(b, truth) >= 0.3 for b in detect(image) if b.score >= p.min_score and min(b.w, b.h) >= p.min_face)


@pytest.mark.shared_data
def test_a_25px_face_in_a_256px_picture_is_found_upscaled(shared_data):
    pytest.importorskip("animeface")
    image, truth = scene(shared_data, "getchu_yuheng_00001.jpg", 25, (256, 256))
    p = CropParams()
    assert not found(from_params(p.model_copy(update={"detect_min_side": None, "retry_side": None})), image, truth, p)
    assert found(from_params(p), image, truth, p)  # the defaults: upscaled to 512


@pytest.mark.shared_data
def test_a_face_the_detect_side_shrinks_too_far_is_found_by_the_second_pass(shared_data):
    pytest.importorskip("animeface")
    image, truth = scene(shared_data, "getchu_yuheng_00001.jpg", 70, (1024, 640), at=(0.3, 0.6))  # 35 px at 512
    p = CropParams()
    assert not found(from_params(p.model_copy(update={"retry_side": None})), image, truth, p)
    assert found(from_params(p), image, truth, p)  # the defaults: again at 1024
