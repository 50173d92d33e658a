"""The faces folder as a transaction (pipeline/crop/state.py), one state at a time: each on-disk
state a killed crop can leave is built here exactly (the fault suite, tests/faults/test_crop_kill.py,
reaches them with real kills at random points), then the rerun must give an uninterrupted run's
folder. Also: folders from before config-addressed names, files the stage does not own, the lock,
and the shard path."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from PIL import Image
from test_crop_stage import none_params, picture, write_raw

from pipeline.core.atomic import write_parquet
from pipeline.core.errors import StageError
from pipeline.core.layout import DUPLICATES, INDEX, SOURCES, STORE
from pipeline.crop import state
from pipeline.crop.stage import config_digest, crop, effective


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def world(tmp_path):
    """Raw images, and the folders uninterrupted crops at 16 and 24 px write."""
    raw = tmp_path / "raw"
    write_raw(raw, {str(i): picture(i, 40 + i, 36) for i in range(6)})
    ref = {}
    for size in (16, 24):
        ref[size] = tmp_path / f"ref{size}"
        crop(none_params(size=size), raw, ref[size])
    return raw, ref, tmp_path


def assert_as(folder, ref) -> None:
    """``folder`` is byte for byte the folder of an uninterrupted run, every face at the index's size."""
    assert files(folder) == files(ref)
    index = pd.read_parquet(folder / INDEX)
    for p, size in zip(index["path"], index["size"]):
        with Image.open(folder / p) as im:
            assert im.size == (size, size)


def committed_but_not_finished(raw, out, size: int) -> None:
    """The state a kill between the index's rename and moving the tables into place leaves: new
    faces, new index, both tables and the new store generation still staged (what ``state.commit``
    does, stopped before ``finish``)."""
    tmp = out.parent / "scratch"
    crop(none_params(size=size), raw, tmp)
    for p in tmp.iterdir():
        if p.name not in (INDEX, SOURCES, DUPLICATES, STORE):
            shutil.copy2(p, out / p.name)
    shutil.copy2(tmp / STORE, state.staged(out, STORE))
    record = {"config": config_digest(effective(none_params(size=size))), "store": state.store_of(tmp)}
    for table in state.TABLES:
        shutil.copy2(tmp / table, state.staged(out, table))
        record[table] = state._sha(state.staged(out, table))
    state._write_index(out / INDEX, pd.read_parquet(tmp / INDEX), record)


@pytest.mark.parametrize("rerun", [16, 24])
def test_a_kill_after_the_commit_is_finished_by_the_rerun(world, rerun):
    raw, ref, tmp_path = world
    out = tmp_path / "faces"
    shutil.copytree(ref[16], out)
    committed_but_not_finished(raw, out, 24)
    # what train reads is already whole: the new index names only new faces, all 24 px
    for p in pd.read_parquet(out / INDEX)["path"]:
        with Image.open(out / p) as im:
            assert im.size == (24, 24)
    r = crop(none_params(size=rerun), raw, out)
    assert (r.images, r.reused) == ((0, 6) if rerun == 24 else (6, 0))  # rolled forward, not redone
    assert_as(out, ref[rerun])


def test_a_kill_before_the_commit_leaves_the_previous_state(world):
    raw, ref, tmp_path = world
    out = tmp_path / "faces"
    shutil.copytree(ref[16], out)
    committed_but_not_finished(raw, out, 24)
    shutil.copy2(ref[16] / INDEX, out / INDEX)  # the index was never replaced: tables staged, faces written
    r = crop(none_params(size=16), raw, out)
    assert (r.images, r.reused) == (0, 6)  # the previous state is whole: nothing redone
    assert_as(out, ref[16])


def test_tables_that_match_no_commit_redo_every_image(world):
    raw, ref, tmp_path = world
    out = tmp_path / "faces"
    shutil.copytree(ref[16], out)
    write_parquet(out / SOURCES, pd.read_parquet(out / SOURCES).iloc[:3])  # changed by hand
    r = crop(none_params(size=16), raw, out)
    assert (r.images, r.reused) == (6, 0)
    assert_as(out, ref[16])


def test_a_folder_from_before_config_addressed_names(world):
    """Faces under the old names (``<face_id>.png``, no commit record): a same-config rerun reuses
    those of the right size and redoes those a killed size change had overwritten in place."""
    raw, ref, tmp_path = world
    out = tmp_path / "faces"
    shutil.copytree(ref[16], out)
    index = pd.read_parquet(out / INDEX)
    for fid, path in zip(index["face_id"], index["path"]):
        (out / path).rename(out / f"{fid}.png")
    index["path"] = index["face_id"] + ".png"
    index.to_parquet(out / INDEX, index=False)  # as the stage wrote it before: no commit record
    (fid, *_), bad = index["face_id"], index["face_id"][1]
    Image.new("RGB", (24, 24)).save(out / f"{bad}.png")  # the old in-place overwrite a kill left behind

    r = crop(none_params(size=16), raw, out)
    assert (r.images, r.reused) == (1, 5)
    now = pd.read_parquet(out / INDEX).set_index("face_id")
    assert now.loc[fid, "path"] == f"{fid}.png" and now.loc[bad, "path"] != f"{bad}.png"
    assert not (out / f"{bad}.png").exists()
    for p in now["path"]:
        with Image.open(out / p) as im:
            assert im.size == (16, 16)
        assert (out / p).read_bytes() == (ref[16] / pd.read_parquet(ref[16] / INDEX).set_index("face_id").loc[
            p.split(".")[0], "path"]).read_bytes()
    assert state.record_of(out / INDEX) is not None  # committed from now on

    r = crop(none_params(size=24), raw, out)  # a size change writes new names; the old ones go after
    assert (r.images, r.reused) == (6, 0)
    assert_as(out, ref[24])


def test_files_the_stage_did_not_write_are_never_touched(world):
    raw, ref, tmp_path = world
    out = tmp_path / "faces"
    shutil.copytree(ref[16], out)
    mine = {"notes.txt": b"mine", "0123456789abcdef_0.png.bak": b"a copy", "portrait.png": b"not a crop",
            ".notes.txt.abcdefgh.tmp": b"another program's temporary file", "0123456789abcdef.png": b"x"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    stale = [".0123456789abcdef_0.01234567.png.k2j3h4g5.tmp", ".index.parquet.zzzzzzzz.tmp",
             "..sources.parquet.next.a_b1c2d3.tmp"]
    for name in stale:
        (out / name).write_bytes(b"left by a killed crop")
    crop(none_params(size=24), raw, out)
    crop(none_params(size=16), raw, out)
    assert {n: (out / n).read_bytes() for n in mine} == mine
    assert not [n for n in stale if (out / n).exists()]
    assert {n: d for n, d in files(out).items() if n not in mine} == files(ref[16])


def test_a_second_crop_on_the_same_folder_is_refused(world):
    raw, ref, tmp_path = world
    out = tmp_path / "faces"
    with state.folder_lock(out.resolve()):
        with pytest.raises(StageError, match="another crop .* is writing"):
            crop(none_params(), raw, out)
    crop(none_params(), raw, out)  # released with its holder


def test_shards_write_the_same_names_and_a_failed_shard_leaves_the_previous_state(world):
    raw, ref, tmp_path = world
    out = tmp_path / "faces"
    shutil.copytree(ref[16], out)

    def lost_worker(fn, args_list):
        done = [fn(*args) for args in args_list[:2]]  # two shards wrote their faces, then the cluster went away
        raise OSError(f"lost the Dask worker after {len(done)} shards")

    with pytest.raises(OSError, match="lost"):
        crop(none_params(size=24), raw, out, map_shards=lost_worker, shards=3)
    assert files(out) == files(ref[16])
    r = crop(none_params(size=24), raw, out, map_shards=lambda fn, a: [fn(*x) for x in a], shards=3)
    assert (r.images, r.faces) == (6, 6)
    assert_as(out, ref[24])
