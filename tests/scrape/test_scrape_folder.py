"""scrape.source=folder: every decodable image once, by content; everything else counted by reason."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.core.layout import MANIFEST, WORKSPACE
from pipeline.params import ScrapeParams
from pipeline.scrape.stage import scrape


def save(path, fmt, size=(40, 30), seed=0, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt, **kw)
    return path


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "src"
    save(src / "a.png", "PNG", seed=1)
    (src / "nested" / "deeper").mkdir(parents=True)
    (src / "nested" / "deeper" / "a_again.PNG").write_bytes((src / "a.png").read_bytes())
    save(src / "b.jpeg", "JPEG", seed=2)
    save(src / "c.webp", "WEBP", seed=3)
    frames = [Image.new("RGB", (20, 20), c) for c in ("red", "blue")]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    good = save(tmp_path / "tmp.jpg", "JPEG", size=(200, 200), seed=4).read_bytes()
    (src / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (src / "not_an_image.png").write_text("hello")
    (src / "notes.txt").write_text("not an image")
    return src


def test_folder_import(folder, tmp_path):
    out = tmp_path / "raw"
    result = scrape(ScrapeParams(source="folder", folder=str(folder)), out)
    assert result.kept == 4 and result.duplicates == 1
    assert dict(result.skipped) == {"extension": 1, "undecodable": 2}
    manifest = pd.read_parquet(out / MANIFEST)
    assert sorted(manifest["ext"]) == ["gif", "jpg", "png", "webp"]
    for row in manifest.itertuples():
        data = (out / row.path).read_bytes()
        assert hashlib.md5(data).hexdigest() == row.md5 and row.path == f"{row.md5}.{row.ext}"
    gif = manifest[manifest.ext == "gif"].iloc[0]
    assert (gif.width, gif.height) == (20, 20) and gif.origin.endswith("anim.gif")
    assert sorted(p.name for p in out.iterdir()) == sorted([*manifest["path"], MANIFEST, WORKSPACE])


def test_folder_reimport_mirrors_the_folder(folder, tmp_path):
    out = tmp_path / "raw"
    params = ScrapeParams(source="folder", folder=str(folder))
    scrape(params, out)
    (folder / "c.webp").unlink()
    scrape(params, out)
    manifest = pd.read_parquet(out / MANIFEST)
    assert "webp" not in set(manifest["ext"]) and not list(out.glob("*.webp"))


def test_decompression_bomb_limit(folder, tmp_path):
    result = scrape(ScrapeParams(source="folder", folder=str(folder), max_pixels=1000), tmp_path / "raw")
    # the size check comes before decoding: even the duplicate and the truncated 200x200 jpg count here
    assert result.kept == 1 and result.skipped["too_many_pixels"] == 5  # only the 20x20 gif fits


def test_empty_folder_is_an_error_that_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    from pipeline.core.errors import StageError

    with pytest.raises(StageError, match="no usable image"):
        scrape(ScrapeParams(source="folder", folder=str(tmp_path / "empty")), tmp_path / "raw")
    assert not (tmp_path / "raw" / MANIFEST).exists()


def test_a_rerun_reads_only_files_whose_size_mtime_or_inode_changed(folder, tmp_path):
    """Files unchanged by (size, mtime, inode) are taken from the last run's scan, not read: one
    rewritten behind the stat's back (same size, mtime put back) keeps its old md5, which proves
    it was not read; touching it, or any real change, is noticed."""
    import os

    out = tmp_path / "raw"
    params = ScrapeParams(source="folder", folder=str(folder))
    first = scrape(params, out)
    before = pd.read_parquet(out / MANIFEST).sort_values("origin").reset_index(drop=True)
    b = folder / "b.jpeg"
    st = b.stat()
    save(folder / "d.png", "PNG", seed=5)  # a new file
    again = scrape(params, out)
    assert (again.kept, again.duplicates, dict(again.skipped)) == (first.kept + 1, 1, dict(first.skipped))
    after = pd.read_parquet(out / MANIFEST).sort_values("origin").reset_index(drop=True)
    pd.testing.assert_frame_equal(after[~after["origin"].str.endswith("d.png")].reset_index(drop=True), before)

    data = bytearray(b.read_bytes())
    data[-3] ^= 0x55  # the same size, other content; mtime put back: not noticed (documented)
    b.write_bytes(bytes(data))
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    scrape(params, out)
    row = pd.read_parquet(out / MANIFEST).set_index("origin").loc[str(b)]
    assert row["md5"] == before.set_index("origin").loc[str(b), "md5"]  # not read
    os.utime(b)  # touched: read again
    scrape(params, out)
    row = pd.read_parquet(out / MANIFEST).set_index("origin").loc[str(b)]
    assert row["md5"] == hashlib.md5(bytes(data)).hexdigest()


def test_a_stored_copy_that_is_gone_is_read_again(folder, tmp_path):
    out = tmp_path / "raw"
    params = ScrapeParams(source="folder", folder=str(folder))
    scrape(params, out)
    manifest = pd.read_parquet(out / MANIFEST)
    (out / manifest["path"].iloc[0]).unlink()
    scrape(params, out)
    assert (out / manifest["path"].iloc[0]).is_file()
