"""Bad and unusual raw files: each one is converted to 8-bit RGB or skipped with its reason."""

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.crop.rawimage import BadImage, load_rgb


def save(tmp_path, name, image, **kw) -> "Path":  # noqa: F821
    path = tmp_path / name
    image.save(path, **kw)
    return path


def face_like(size=64) -> Image.Image:
    a = np.zeros((size, size, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, size)[None, :]
    a[..., 1] = 128
    return Image.fromarray(a)


def test_rgb_passes_through(tmp_path):
    loaded = load_rgb(save(tmp_path, "a.png", face_like()))
    assert loaded.image.mode == "RGB" and loaded.converted == []
    assert np.array_equal(np.asarray(loaded.image), np.asarray(face_like()))


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    loaded = load_rgb(save(tmp_path, "c.jpg", face_like().convert("CMYK"), quality=95))
    assert loaded.image.mode == "RGB" and loaded.converted == ["cmyk"]
    assert np.abs(np.asarray(loaded.image).astype(int) - np.asarray(face_like()).astype(int)).mean() < 8


def test_16bit_gray_png_keeps_its_range(tmp_path):
    a = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = save(tmp_path, "g16.png", Image.fromarray(a))
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really 16 bits on disk
    loaded = load_rgb(path)
    out = np.asarray(loaded.image)
    assert loaded.image.mode == "RGB" and loaded.converted == ["16bit"]
    assert out.min() == 0 and out.max() == 255 and abs(int(out[32, 0, 0]) - 128) <= 2  # not clipped to white


def test_palette_png(tmp_path):
    loaded = load_rgb(save(tmp_path, "p.png", face_like().convert("P", palette=Image.Palette.ADAPTIVE)))
    assert loaded.image.mode == "RGB" and loaded.converted == ["palette"]


def test_palette_with_transparency_and_rgba_are_flattened_on_white(tmp_path):
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 16, 32))  # left half fully transparent (black underneath)
    loaded = load_rgb(save(tmp_path, "a.png", rgba))
    a = np.asarray(loaded.image)
    assert loaded.converted == ["alpha"] and tuple(a[0, 0]) == (255, 255, 255) and tuple(a[0, 31]) == (255, 0, 0)
    pal = rgba.convert("P")  # Pillow keeps the transparency in the palette / info
    assert "transparency" in pal.info or pal.palette.mode == "RGBA"
    loaded = load_rgb(save(tmp_path, "pa.png", pal))
    assert loaded.converted == ["palette", "alpha"] and tuple(np.asarray(loaded.image)[0, 0]) == (255, 255, 255)
    la = load_rgb(save(tmp_path, "la.png", rgba.convert("LA")))
    assert la.converted == ["alpha"] and la.image.mode == "RGB"


def test_gray_becomes_rgb(tmp_path):
    loaded = load_rgb(save(tmp_path, "l.jpg", face_like().convert("L")))
    assert loaded.image.mode == "RGB" and loaded.converted == ["gray"]


def test_animated_gif_is_skipped_but_a_single_frame_gif_is_read(tmp_path):
    frames = [face_like(), Image.new("RGB", (64, 64), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(BadImage) as e:
        load_rgb(path)
    assert e.value.reason == "animated"
    assert load_rgb(save(tmp_path, "still.gif", face_like())).image.size == (64, 64)


@pytest.mark.parametrize("fmt, ext", [("JPEG", "jpg"), ("PNG", "png")])
def test_truncated_files_are_skipped(tmp_path, fmt, ext):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8)).save(buf, fmt)
    path = tmp_path / f"t.{ext}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(BadImage) as e:
        load_rgb(path)
    assert e.value.reason == "truncated"


def test_garbage_missing_and_empty_files(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all" * 10)
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name, reason in (("junk.png", "unreadable"), ("empty.jpg", "unreadable"), ("absent.png", "missing")):
        with pytest.raises(BadImage) as e:
            load_rgb(tmp_path / name)
        assert e.value.reason == reason, name


def test_unsupported_float_mode_is_skipped_not_misread(tmp_path):
    path = save(tmp_path, "f.tiff", Image.fromarray(np.ones((8, 8), np.float32)))
    with pytest.raises(BadImage) as e:
        load_rgb(path)
    assert e.value.reason == "unsupported_mode"
