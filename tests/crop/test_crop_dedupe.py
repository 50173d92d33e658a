"""Near-duplicate faces: the perceptual hash, the banded search, and the stage keeping the best copy
(and bringing a duplicate back when the face it duplicated leaves)."""

import io
import random

import numpy as np
import pandas as pd
from PIL import Image
from test_crop_stage import none_params, write_raw  # tests/crop/ is on sys.path (no __init__.py)

from pipeline.core.layout import DUPLICATES, INDEX
from pipeline.crop.dedupe import bands, dhash, near_duplicates
from pipeline.crop.stage import crop


def art(seed: int, size: int = 96) -> Image.Image:
    """Smooth random 'art' (blurred blobs): the kind of picture a perceptual hash is for."""
    small = np.random.default_rng(seed).integers(0, 255, (6, 6, 3), np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_dhash_survives_rescaling_and_recompression_but_tells_art_apart():
    a = art(1)
    h = dhash(a)
    assert (h ^ dhash(jpeg(a.resize((61, 61)), 70))).bit_count() <= 4
    others = [(h ^ dhash(art(s))).bit_count() for s in range(2, 12)]
    assert min(others) > 8


def test_bands_split_64_bits():
    assert bands(0xFFFF_FFFF_FFFF_FFFF, 4) == [(i, 0xFFFF) for i in range(4)]
    assert bands(1 << 63, 2) == [(0, 0), (1, 1 << 31)]


def test_near_duplicates_matches_brute_force():
    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(40)]
    hashes = []
    for h in base:  # each base hash plus copies with 0-6 flipped bits
        hashes.append(h)
        for _ in range(2):
            hashes.append(h ^ sum(1 << b for b in rng.sample(range(64), rng.randint(0, 6))))
    for distance in (0, 3, 5):
        got = near_duplicates(hashes, distance)
        kept: list[int] = []
        for i, h in enumerate(hashes):
            hit = next((j for j in kept if (h ^ hashes[j]).bit_count() <= distance), None)
            assert (got[i] is None) == (hit is None), (distance, i)
            if got[i] is None:
                kept.append(i)
            else:
                assert (h ^ hashes[got[i]]).bit_count() <= distance and got[got[i]] is None


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_stage_keeps_the_larger_copy_and_restores_a_duplicate_when_its_original_leaves(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "faces"
    items = {"big": png(art(1, 128)), "small": png(jpeg(art(1, 80), 80)), "other": png(art(2, 96))}
    write_raw(raw, items)
    r = crop(none_params(dedupe_distance=4), raw, out)
    index, dups = pd.read_parquet(out / INDEX), pd.read_parquet(out / DUPLICATES)
    assert (r.faces, r.duplicates) == (2, 1)
    assert sorted(index["source_id"]) == ["big", "other"]
    assert list(dups["source_id"]) == ["small"] and dups["duplicate_of"][0] == index.set_index("source_id").loc["big", "face_id"]
    assert (out / dups["path"][0]).exists()  # kept on disk: it may be needed again

    write_raw(raw, {"small": items["small"], "other": items["other"]})  # the original is deleted
    r = crop(none_params(dedupe_distance=4), raw, out)
    assert (r.images, r.faces, r.duplicates) == (0, 2, 0)  # nothing re-read, the copy is back
    assert sorted(pd.read_parquet(out / INDEX)["source_id"]) == ["other", "small"]

    r = crop(none_params(), raw, out)  # dedupe off: no image re-read either
    assert (r.images, r.faces, r.duplicates) == (0, 2, 0)
