"""Crop geometry on synthetic images with known boxes: centre, margin, border policies, filters,
and boxes mapped back from the downscaled copy the detector sees."""

import numpy as np
import pytest
from PIL import Image

from pipeline.crop.detectors import Box, downscaled, iou
from pipeline.crop.geometry import Square, cut, resize, select_boxes, shift_inside, square_around
from pipeline.params import CropParams


def test_square_is_centred_on_the_box_and_margin_times_its_longer_side():
    sq = square_around(Box(100, 50, 40, 60), margin=1.5)
    assert sq.side == 90
    assert (sq.left + sq.side / 2, sq.top + sq.side / 2) == (120, 80)  # the box centre
    assert square_around(Box(100, 50, 40, 60), margin=1.0) == Square(90, 50, 60)


def test_shift_moves_the_square_inside_and_shrinks_only_when_the_image_is_smaller():
    assert shift_inside(Square(-10, -5, 50), 200, 100) == Square(0, 0, 50)
    assert shift_inside(Square(180, 70, 50), 200, 100) == Square(150, 50, 50)
    assert shift_inside(Square(20, 20, 50), 200, 100) == Square(20, 20, 50)
    assert shift_inside(Square(-30, -30, 150), 200, 100) == Square(0, 0, 100)
    assert shift_inside(Square(25, -25, 150), 200, 100) == Square(50, 0, 100)  # shrunk about its centre


def gradient_image(w=120, h=80) -> Image.Image:
    """Every pixel unique-ish: red = x, green = y, so a crop's content tells where it came from."""
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    return Image.fromarray(np.stack([x, y, np.full_like(x, 7)], -1).astype(np.uint8))


def test_cut_inside_is_a_plain_crop_whatever_the_policy():
    im = gradient_image()
    for border in ("shift", "pad_reflect", "pad_constant", "drop"):
        a = np.asarray(cut(im, Square(10, 20, 30), border))
        assert a.shape == (30, 30, 3)
        assert a[0, 0, 0] == 10 and a[0, 0, 1] == 20 and a[-1, -1, 0] == 39 and a[-1, -1, 1] == 49


def test_pad_constant_fills_outside_with_pad_value():
    a = np.asarray(cut(gradient_image(), Square(-5, -3, 20), "pad_constant", pad_value=200))
    assert a.shape == (20, 20, 3)
    assert (a[:3] == 200).all() and (a[:, :5] == 200).all()
    assert tuple(a[3, 5]) == (0, 0, 7)  # image pixel (0, 0) lands at (5, 3)


def test_pad_reflect_mirrors_the_image_across_the_edge():
    a = np.asarray(cut(gradient_image(), Square(-4, 0, 20), "pad_reflect"))
    # columns -4..-1 mirror columns 4..1 (numpy "reflect": the edge pixel is not repeated)
    assert list(a[0, :6, 0]) == [4, 3, 2, 1, 0, 1]
    b = np.asarray(cut(gradient_image(), Square(110, 70, 20), "pad_reflect"))
    assert b[0, 9, 0] == 119 and b[0, 10, 0] == 118  # right edge at 119, then mirrored
    assert b[9, 0, 1] == 79 and b[10, 0, 1] == 78


def test_pad_handles_squares_far_outside_and_one_pixel_images():
    tall = Image.new("RGB", (1, 40), (9, 9, 9))
    assert np.asarray(cut(tall, Square(-20, 0, 41), "pad_reflect")).mean() == 9
    assert np.asarray(cut(gradient_image(), Square(500, 500, 10), "pad_constant", 3)).max() == 3
    with pytest.raises(ValueError, match="outside"):
        cut(gradient_image(), Square(-1, 0, 10), "shift")


def params(**kw) -> CropParams:
    return CropParams(**{"min_score": 0.5, "min_face": 24, "margin": 1.5, "max_faces": 8, **kw})


def test_select_filters_score_and_size_and_keeps_the_best_first():
    boxes = [Box(10, 10, 30, 30, 0.6), Box(50, 10, 30, 30, 0.9), Box(10, 50, 20, 20, 0.99), Box(60, 50, 30, 30, 0.4)]
    kept, dropped = select_boxes(boxes, params(), 200, 200)
    assert [b.score for b, _ in kept] == [0.9, 0.6]
    assert dropped == {"small": 1, "low_score": 1}


def test_select_caps_faces_per_image():
    boxes = [Box(40 * i, 10, 30, 30, 0.5 + i / 100) for i in range(5)]
    kept, dropped = select_boxes(boxes, params(max_faces=2), 400, 200)
    assert [round(b.score, 2) for b, _ in kept] == [0.54, 0.53] and dropped == {"max_faces": 3}


@pytest.mark.parametrize("border, expected", [
    ("shift", Square(0, 0, 45)),          # moved inside
    ("pad_reflect", Square(-3, -3, 45)),  # kept centred, padded when cut
    ("pad_constant", Square(-3, -3, 45)),
    ("drop", None),
])
def test_border_policies_on_a_face_at_the_corner(border, expected):
    kept, dropped = select_boxes([Box(4, 4, 30, 30, 1.0)], params(border=border), 100, 100)
    if expected is None:
        assert kept == [] and dropped == {"border": 1}
    else:
        assert [sq for _, sq in kept] == [expected] and not dropped


def test_resize_is_antialiased():
    checker = Image.fromarray(((np.indices((128, 128)).sum(0) % 2) * 255).astype(np.uint8)).convert("RGB")
    small = np.asarray(resize(checker, 16)).astype(float)
    assert small.shape == (16, 16, 3)
    assert abs(small.mean() - 127.5) < 3 and small.std() < 10  # averaged to grey, not aliased stripes


def square_finder(image) -> list[Box]:
    """A synthetic 'detector': the bounding box of the white pixels."""
    a = np.asarray(image.convert("L")) > 128
    ys, xs = np.nonzero(a)
    return [Box(xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, 0.9)]


def test_boxes_found_on_the_downscaled_copy_map_back_to_source_pixels():
    im = Image.new("RGB", (1600, 900), (0, 0, 0))
    im.paste((255, 255, 255), (1000, 300, 1240, 540))  # a 240x240 "face" at (1000, 300)
    seen = []

    def spy(image):
        seen.append(image.size)
        return square_finder(image)

    (box,) = downscaled(spy, 400)(im)
    assert seen == [(400, 225)]
    truth = Box(1000, 300, 240, 240)
    assert iou(box, truth) > 0.95
    assert abs(box.x - 1000) <= 4 and abs(box.y - 300) <= 4 and abs(box.w - 240) <= 8 and box.score == 0.9
    # an image already small enough is passed through untouched
    assert downscaled(spy, 4000)(im) == [Box(1000, 300, 240, 240, 0.9)] and seen[-1] == (1600, 900)


def test_iou():
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0
