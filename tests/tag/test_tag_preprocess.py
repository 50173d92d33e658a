"""Preprocessing against a direct, per-pixel implementation of the reference's steps:
caffe.io.resize_image (range-normalise, skimage order-1 warp with mode='constant', cval 0,
rescale), RGB -> BGR, mean subtraction, channels first."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.tag.i2v_preprocess import MEAN_BGR, preprocess, to_float_rgb


def skimage_bilinear_constant(im: np.ndarray, out_h: int, out_w: int, cval: float) -> np.ndarray:
    """What skimage's resize(order=1, mode='constant') computes, pixel by pixel (vectorised over
    pixels only): source coordinate (o + 0.5) * in/out - 0.5, the four neighbours, cval outside."""
    h, w, c = im.shape

    def pixel(r, q):
        inside = (r >= 0) & (r < h) & (q >= 0) & (q < w)
        vals = im[np.clip(r, 0, h - 1), np.clip(q, 0, w - 1)]
        return np.where(inside[..., None], vals, cval)

    rows = (np.arange(out_h) + 0.5) * (h / out_h) - 0.5
    cols = (np.arange(out_w) + 0.5) * (w / out_w) - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    r0, c0 = np.floor(rr).astype(int), np.floor(cc).astype(int)
    fr, fc = (rr - r0)[..., None], (cc - c0)[..., None]
    top = pixel(r0, c0) * (1 - fc) + pixel(r0, c0 + 1) * fc
    bottom = pixel(r0 + 1, c0) * (1 - fc) + pixel(r0 + 1, c0 + 1) * fc
    return top * (1 - fr) + bottom * fr


def reference_preprocess(image: Image.Image) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float64)
    arr = np.repeat(arr[:, :, None], 3, axis=2) if arr.ndim == 2 else arr[:, :, :3]
    lo, hi = arr.min(), arr.max()
    if hi > lo:
        std = (arr - lo) / (hi - lo)
        resized = skimage_bilinear_constant(std, 224, 224, cval=0.0) * (hi - lo) + lo
    else:
        resized = np.full((224, 224, 3), lo)
    resized = resized.astype(np.float32)[:, :, ::-1] - MEAN_BGR
    return resized.transpose(2, 0, 1)


def synthetic_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    rgb64 = Image.fromarray(rng.integers(30, 220, (64, 64, 3), dtype=np.uint8))  # upscaled, edges blend with min
    big = Image.fromarray(rng.integers(0, 256, (301, 250, 3), dtype=np.uint8))  # downscaled, not square
    grey = Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8))
    flat = Image.new("RGB", (32, 32), (90, 90, 90))
    return [rgb64, big, grey, rgba, flat]


def test_preprocess_matches_the_reference_steps():
    images = synthetic_images()
    ours = preprocess(images)
    assert ours.shape == (len(images), 3, 224, 224) and ours.dtype == np.float32
    for i, im in enumerate(images):
        np.testing.assert_allclose(ours[i], reference_preprocess(im), atol=2e-3, rtol=0, err_msg=f"image {i} ({im.mode} {im.size})")


def test_preprocess_on_real_faces(shared_data):
    paths = sorted((shared_data / "anime-faces-64").glob("*.jpg"))[:4]
    if not paths:
        pytest.skip("no faces in anime-faces-64")
    images = [Image.open(p).convert("RGB") for p in paths]
    ours = preprocess(images)
    for i, im in enumerate(images):
        np.testing.assert_allclose(ours[i], reference_preprocess(im), atol=2e-3, rtol=0)


def test_channel_order_and_mean():
    """A uniform red picture: channel 2 (R in BGR) is 255 - mean_R, the others 0 - mean; at the
    border R blends with the picture's minimum (0), as caffe.io.resize_image's constant mode does."""
    out = preprocess([Image.new("RGB", (10, 10), (255, 0, 0))])[0]
    np.testing.assert_allclose(out[:, 112, 112], [0 - MEAN_BGR[0], 0 - MEAN_BGR[1], 255 - MEAN_BGR[2]], atol=1e-4)
    assert out[2, 0, 0] + MEAN_BGR[2] < 255 * 0.8  # corner: the border constant weighs in
    assert np.asarray(to_float_rgb(Image.new("RGBA", (2, 2), (1, 2, 3, 0)))).tolist()[0][0] == [1, 2, 3]
