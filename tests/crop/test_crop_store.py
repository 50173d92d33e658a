"""Crop's packed face store (faces.u8, pipeline/core/facestore.py): what it holds, how reruns append
to it, how readers map it, and the folders it must take over (from before the store, a killed
append, removed sources)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_crop_stage import none_params, picture, write_raw

from pipeline.core import facestore
from pipeline.core.datasets import Faces, load_faces
from pipeline.core.layout import INDEX, STORE
from pipeline.crop import state
from pipeline.crop.stage import crop


def pictures(n: int, start: int = 0) -> dict[str, bytes]:
    return {str(i): picture(i, 40 + i % 7, 36) for i in range(start, start + n)}


def decoded(faces_dir) -> np.ndarray:
    index = pd.read_parquet(faces_dir / INDEX)
    return np.stack([np.asarray(Image.open(faces_dir / p).convert("RGB")) for p in index["path"]])


def test_the_store_holds_the_faces_the_files_show_and_readers_map_it(tmp_path):
    write_raw(tmp_path / "raw", pictures(9))
    crop(none_params(), tmp_path / "raw", tmp_path / "faces")
    faces = load_faces(tmp_path / "faces")
    assert isinstance(faces.images, facestore.StoreView) and faces.images.shape == (9, 16, 16, 3)
    assert isinstance(faces.images.store, np.memmap)  # mapped, not read
    np.testing.assert_array_equal(np.asarray(faces.images), decoded(tmp_path / "faces"))
    np.testing.assert_array_equal(faces.images[[4, 0, 4]], decoded(tmp_path / "faces")[[4, 0, 4]])
    # the content id comes from the index alone, and equals that of the same pixels in memory
    assert faces.digest == Faces(decoded(tmp_path / "faces"), faces.ids).digest
    assert faces.digest != Faces(decoded(tmp_path / "faces")[::-1].copy(), faces.ids).digest
    assert load_faces(tmp_path / "faces", limit=3).images.shape == (3, 16, 16, 3)


def test_without_face_files_train_reads_the_same_faces(tmp_path):
    write_raw(tmp_path / "raw", pictures(5))
    crop(none_params(), tmp_path / "raw", tmp_path / "with")
    crop(none_params(pngs=False), tmp_path / "raw", tmp_path / "without")
    assert sorted(p.name for p in (tmp_path / "without").iterdir()) == sorted([INDEX, STORE, "sources.parquet",
                                                                              "duplicates.parquet"])
    a, b = load_faces(tmp_path / "with"), load_faces(tmp_path / "without")
    assert a.ids == b.ids and a.digest == b.digest
    assert (tmp_path / "with" / STORE).read_bytes() == (tmp_path / "without" / STORE).read_bytes()


def test_a_rerun_appends_in_place_and_a_killed_append_is_cut_off(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "faces"
    write_raw(raw, pictures(6))
    crop(none_params(), raw, out)
    before = (out / STORE).read_bytes()
    with open(out / STORE, "ab") as f:  # what a run killed while appending leaves: rows no index names
        f.write(b"\x07" * 16 * 16 * 3 * 2 + b"\x01")
    write_raw(raw, pictures(8))  # two new pictures
    r = crop(none_params(workers=2), raw, out)
    assert (r.images, r.reused) == (2, 6)
    after = (out / STORE).read_bytes()
    assert after[:len(before)] == before and len(after) == len(before) + 2 * 16 * 16 * 3  # appended, garbage gone
    np.testing.assert_array_equal(np.asarray(load_faces(out).images), decoded(out))
    crop(none_params(), raw, out)  # nothing new: the store is unchanged
    assert (out / STORE).read_bytes() == after


def test_the_store_does_not_depend_on_the_worker_count(tmp_path):
    write_raw(tmp_path / "raw", pictures(12))
    crop(none_params(workers=1), tmp_path / "raw", tmp_path / "one")
    crop(none_params(workers=2, window=1), tmp_path / "raw", tmp_path / "two")
    assert (tmp_path / "one" / STORE).read_bytes() == (tmp_path / "two" / STORE).read_bytes()


def test_removed_sources_are_compacted_away(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "faces"
    write_raw(raw, pictures(8))
    crop(none_params(), raw, out)
    write_raw(raw, pictures(7))  # one of 8 gone: an eighth of the rows dead, kept (appending is cheaper)
    crop(none_params(), raw, out)
    assert facestore.read_header(out / STORE) is not None and (out / STORE).stat().st_size == facestore.HEADER + 8 * 768
    write_raw(raw, pictures(4))  # half gone: a new, compact generation
    r = crop(none_params(), raw, out)
    assert (r.images, r.removed) == (0, 3)
    assert (out / STORE).stat().st_size == facestore.HEADER + 4 * 768
    assert not state.staged(out, STORE).exists()
    np.testing.assert_array_equal(np.asarray(load_faces(out).images), decoded(out))


def test_a_folder_from_before_the_store_is_packed_from_its_files(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "faces"
    write_raw(raw, pictures(5))
    crop(none_params(), raw, out)
    want = (out / STORE).read_bytes()
    index = pd.read_parquet(out / INDEX).drop(columns=["row", "content"])
    record = state.record_of(out / INDEX)
    del record["store"]
    state._write_index(out / INDEX, index, record)  # as the stage committed before there was a store
    (out / STORE).unlink()
    with pytest.raises(ValueError, match="mixed sizes"):  # readers still read the face files meanwhile
        Image.new("RGB", (8, 8)).save(out / index["path"][0])
        load_faces(out)
    r = crop(none_params(), raw, out)
    assert (r.images, r.reused) == (1, 4)  # the damaged file's image is redone, the others packed from their files
    np.testing.assert_array_equal(np.asarray(load_faces(out).images), decoded(out))
    assert facestore.committed_store(out) is not None and len(want) == (out / STORE).stat().st_size


def test_a_store_that_is_not_the_committed_one_is_refused_by_readers(tmp_path):
    write_raw(tmp_path / "raw", pictures(3))
    crop(none_params(), tmp_path / "raw", tmp_path / "faces")
    (tmp_path / "faces" / STORE).write_bytes(b"not a store")
    with pytest.raises(FileNotFoundError, match="run the crop stage again"):
        load_faces(tmp_path / "faces")
